"""Unit tests of the UI's rendering (rag/ui/render.py), upload checks (rag/ui/uploads.py) and
the add-documents service (rag/ui/service.py) on the deterministic test embedder. No server."""

from __future__ import annotations

import re
import shutil
import time
from dataclasses import replace
from html.parser import HTMLParser
from pathlib import Path

import pytest

from rag.types import Answer, Citation, CleaningReport, Hit
from rag.ui import handlers, render, uploads, viewer
from rag.ui.service import DocumentOverview, IndexOverview, QAService

DOC = "第一句。前三季度规模以上工业增加值同比增长5.8%，增长较快。第三句在这里。"
SRC = "docs/a.txt"


def _answer(doc: str = DOC, quote: str = "前三季度规模以上工业增加值同比增长5.8%，增长较快。", span: str = "5.8%") -> Answer:
    start = doc.index(quote)
    c1 = Citation(1, SRC, 0, start, start + len(quote), quote)
    s = doc.index(span, start)
    sc = Citation(1, SRC, 0, s, s + len(span), span)
    hit = Hit(0, SRC, doc, 0, len(doc), 1.0)
    return Answer("增长多少？", True, quote, span, 0.9, (c1,), sc, (hit,))


def _visible_text(html_text: str) -> str:
    import html as h

    return h.unescape(re.sub(r"<[^>]+>", "", html_text))


def test_span_is_emphasised_and_citations_numbered() -> None:
    out = render.render_answer(_answer(), lambda s: DOC)
    assert '<mark class="rag-span">5&#46;8%</mark>' in out
    assert '<sup class="rag-ref">[1]</sup>' in out
    assert '<span class="rag-num">[1]</span>' in out
    assert 'class="rag-short-value">5&#46;8%<' in out
    assert "characters 4–31" in out  # position of the quote in the document
    # The passage shows the quote highlighted, in its context.
    passage = re.search(r'<div class="rag-passage">(.*?)</div>', out)
    assert passage is not None
    assert '<mark class="rag-quote">' in passage.group(1)
    assert "第一句" in _visible_text(passage.group(1))
    assert "\n" not in out and "\n\n" not in out  # one HTML block for the chat's Markdown


def test_several_citations_each_get_a_source() -> None:
    ans = _answer()
    q2 = "第三句在这里。"
    c2 = Citation(2, "docs/b.md", 3, 0, len(q2), q2)
    ans = Answer(ans.question, True, ans.text, ans.span, ans.score, ans.citations + (c2,), ans.span_citation, ans.passages)
    out = render.render_answer(ans, lambda s: DOC if s == SRC else q2)
    assert out.count('class="rag-source"') == 2
    assert '<span class="rag-num">[2]</span>' in out and "b&#46;md" in out
    assert "Also stated in" in out


def test_document_text_is_escaped() -> None:
    evil = "<script>alert(1)</script> **bold** $x$ [link](http://x) | a | `code` & \"q\" 'q'\n\n# head"
    doc = evil + "。答案是42。"
    ans = _answer(doc, "答案是42。", "42")
    out = render.render_answer(ans, lambda s: doc)
    assert "<script" not in out and "alert(1)</script>" not in out
    for raw in ("**", "$x$", "](", "`", "# head", "| a |"):
        assert raw not in out, raw
    assert _visible_text(out).count("<script>alert(1)</script>") >= 1  # shown as text, intact
    q = render.render_question("<img src=x onerror=alert(1)>")
    assert "<img" not in q and "&lt;img" in q
    assert "<b>" not in render.render_error("<b>bad</b>")


def test_source_names_are_escaped_in_attributes() -> None:
    ans = _answer()
    c = ans.citations[0]
    bad = Citation(1, 'x" onmouseover="alert(1).txt', c.chunk_id, c.start, c.end, c.quote)
    ans = Answer(ans.question, True, ans.text, ans.span, ans.score, (bad,), None, ())
    out = render.render_answer(ans)
    assert 'onmouseover="alert' not in out
    assert "&quot;" in out


def test_not_found_reply_marks_closest_passages() -> None:
    hits = tuple(Hit(i, SRC, f"段落{i}" + "很长的文字" * 60, i * 10, i * 10 + 300, 0.5 - i / 10) for i in range(5))
    ans = Answer("灵璧县属于哪个省？", False, "The documents do not answer this question. / 文档中没有找到答案。", None, 0.1,
                 (), None, hits)
    out = render.render_answer(ans)
    assert "Not found in the documents" in out
    assert "not an answer" in out and "rag-closest" in out
    assert out.count('class="rag-closest-item"') == 3  # the closest three, clipped
    assert 'class="rag-span"' not in out and 'class="rag-ref"' not in out  # nothing presented as an answer
    assert "…" in out
    none = render.render_answer(Answer("q", False, "no", None, 0.0, (), None, ()))
    assert "No passage comes close" in none


def test_context_window_cuts_at_sentences() -> None:
    text = "甲" * 300 + "。前一句。引文在此。后一句。" + "乙" * 300
    start = text.index("引文")
    end = start + len("引文在此。")
    lo, hi = render.context_window(text, start, end, reach=20)
    assert text[lo:hi] == "前一句。引文在此。后一句。"


def test_overview_and_reports_render() -> None:
    report = CleaningReport("docs/a.txt", 100, 80, ())
    ov = IndexOverview("index", "v-1", "test-hash", "2024-01-01T00:00:00", 1.5, 7, "hybrid",
                       (DocumentOverview("docs/<a>.txt", 7, 80, "utf-8", report),))
    out = render.render_overview(ov)
    assert "test-hash" in out and "1.5 s" in out and "&lt;a&gt;" in out and "<a>" not in out
    assert "Nothing needed cleaning" in out
    assert "1 document · 7 passages" in render.render_status_line(ov)


# -- uploads -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["../../x.txt", "..\\..\\x.txt", "/etc/passwd.txt", ".hidden.txt", "a/../../b.md",
                                  "CON.txt", "名字 with spaces!.md", "\x00evil\n.txt", "....txt", "-rf.txt"])
def test_safe_filename_stays_a_plain_name(name: str) -> None:
    out = uploads.safe_filename(name, "0123456789abcdef" * 4)
    assert "/" not in out and "\\" not in out and "\x00" not in out and "\n" not in out
    assert not out.startswith(".") and not out.startswith("-")
    assert out.endswith((".txt", ".md"))
    assert re.fullmatch(r"[\w\-]+-0123456789\.(txt|md)", out), out
    assert uploads.safe_filename("../r.PDF", "0123456789abcdef" * 4) == "r-0123456789.pdf"


def test_safe_filename_keeps_readable_names() -> None:
    assert uploads.safe_filename("报告 2024.md", "ab" * 32) == "报告_2024-abababab" + "ab" + ".md"
    assert uploads.display_name("../../x.txt") == "x.txt"


@pytest.mark.parametrize("name,size,ok", [
    ("a.txt", 10, True), ("a.MD", 10, True), ("a.pdf", 10, True), ("a.HTML", 10, True), ("a.htm", 10, True),
    ("a.docx", 10, True), ("a.doc", 10, False), ("a", 10, False), ("a.txt.exe", 10, False),
    ("a.txt", uploads.MAX_UPLOAD_BYTES, True), ("a.txt", uploads.MAX_UPLOAD_BYTES + 1, False), ("a.txt", 0, False),
])
def test_type_and_size_caps(name: str, size: int, ok: bool) -> None:
    assert (uploads.check_name_and_size(name, size) is None) is ok


def test_save_uploads_checks_each_file(tmp_path: Path) -> None:
    src = tmp_path / "in"
    src.mkdir()
    good = src / "good.txt"
    good.write_text("这是一个测试文档。The library opens at 9 am.", encoding="utf-8")
    big = src / "big.txt"
    big.write_bytes(b"a" * (uploads.MAX_UPLOAD_BYTES + 1))
    binary = src / "bin.txt"
    binary.write_bytes(b"\x00\x01\x02\x03" * 10)
    pdf = src / "x.pdf"
    pdf.write_bytes(b"%PDF-1.4")
    blank = src / "blank.md"
    blank.write_text("  \n\n ", encoding="utf-8")
    dest = tmp_path / "uploads"
    batch = uploads.save_uploads(
        [uploads.Upload("../../good.txt", good), uploads.Upload("big.txt", big), uploads.Upload("bin.txt", binary),
         uploads.Upload("x.pdf", pdf), uploads.Upload("blank.md", blank), uploads.Upload("again.txt", good)],
        dest,
    )
    assert [s.name for s in batch.saved] == ["good.txt"]
    saved = batch.saved[0].path
    assert saved.parent == dest and saved.read_bytes() == good.read_bytes()
    assert saved.name.startswith("good-") and saved.suffix == ".txt"
    reasons = {r.name: r.reason for r in batch.refused}
    assert "over the 5.0 MB limit" in reasons["big.txt"]
    assert "binary" in reasons["bin.txt"]
    assert "PDF" in reasons["x.pdf"] or "pdf" in reasons["x.pdf"]
    assert "empty" in reasons["blank.md"]
    assert "already in the index" in reasons["again.txt"]
    assert sorted(p.name for p in dest.iterdir()) == [saved.name]  # nothing else, no temp files
    assert not (tmp_path / "good.txt").exists()


# -- service: adding documents on the test embedder ----------------------------------------


@pytest.fixture()
def service(tmp_path: Path, seed_path: Path) -> QAService:
    import rag

    docs = tmp_path / "docs"
    docs.mkdir()
    shutil.copy(seed_path, docs / seed_path.name)
    rag.build_index([docs], index_dir=tmp_path / "index", model="test-hash")
    svc = QAService(tmp_path / "index", docs, tmp_path / "uploads")
    svc.load()
    return svc


def test_add_uploads_swaps_in_the_new_index(service: QAService, tmp_path: Path) -> None:
    f = tmp_path / "museum.txt"
    f.write_text("The city museum was founded in 1887 by Anna Berg. It opens at 10 am on Saturdays.", encoding="utf-8")
    before = service.current()
    steps: list[float] = []
    words: list[str] = []
    stages: list[str] = []

    def bar(frac: float, desc: str) -> None:
        steps.append(frac)
        words.append(desc)

    def both(stage: str, done: int, total: int) -> None:
        stages.append(stage)
        handlers.progress_bar(bar)(stage, done, total)

    result = service.add_uploads([uploads.Upload("museum.txt", f)], both)
    assert result.ok and result.error is None, result
    assert service.current() is not before
    assert steps and steps[-1] == 1.0 and steps == sorted(steps)
    # one callback, (stage, done, total): the service's steps around the writer's stages
    assert list(dict.fromkeys(stages)) == ["check", "read", "chunk", "embed", "bm25", "write", "load", "done"]
    assert words[0] == "Checking files" and words[-1] == "Done" and "Loading the new index" in words
    assert "Reading documents (1/1)" in words and "Embedding passages (0/1)" in words
    ans = service.ask("Who founded the city museum?")
    assert ans.found and "Anna Berg" in ans.text
    assert any("museum" in d.source for d in service.overview().documents)
    html_out, data = handlers.add_files(service, [str(f)])
    assert data["ok"] is False and "already in the index" in data["refused"][0]["reason"]
    assert "already in the index" in html_out


def test_failed_add_leaves_index_untouched(service: QAService, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from rag.index.writer import IndexWriter

    f = tmp_path / "note.md"
    f.write_text("# Note\n\nThe bridge is 42 metres long.", encoding="utf-8")
    before = service.current()
    version = before.version_path

    def boom(*args: object, **kwargs: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(IndexWriter, "add", boom)
    result = service.add_uploads([uploads.Upload("note.md", f)])
    assert not result.ok and "the index was not changed" in (result.error or "")
    assert "disk full" in (result.error or "")
    assert service.current() is before and service.current().version_path == version
    assert not any(service.uploads_dir.glob("note-*"))  # the saved copy is removed again
    assert not service.ask("How long is the bridge?").found


def test_chat_reply_appends_rendered_messages(service: QAService) -> None:
    history, box = handlers.chat_reply(service, "前三季度规模以上工业增加值同比增长多少？", [], 5, "hybrid")
    assert box == "" and [m["role"] for m in history] == ["user", "assistant"]
    assert "rag-span" in history[1]["content"]
    history, _ = handlers.chat_reply(service, "   ", history, 5, "hybrid")
    assert len(history) == 2  # an empty question adds nothing
    history, _ = handlers.chat_reply(service, "x" * 3000, history, 5, "nonsense")
    assert "Could not answer" in history[-1]["content"] and "limit" in history[-1]["content"]
    history, _ = handlers.chat_reply(service, "前三季度增长多少？", history, 99, "hybrid")
    assert "Could not answer" in history[-1]["content"] and "from 1 to 50" in history[-1]["content"]


def test_converse_reply_keeps_the_session_conversation(service: QAService) -> None:
    history, box, turns = handlers.converse_reply(service, "赵志国是谁？", [], 5, "hybrid", ())
    assert box == "" and len(turns) == 1 and "rag-understood" not in history[0]["content"]
    history, _, turns = handlers.converse_reply(service, "他认为下一步应该怎么做？", history, 5, "hybrid", turns)
    assert len(turns) == 2 and turns[-1].understood == "赵志国认为下一步应该怎么做？"
    asked = history[-2]["content"]
    assert "rag-understood" in asked and "理解为" in asked and "赵志国认为下一步应该怎么做？" in asked
    assert "趙志國" in history[-1]["content"]
    # a new conversation (empty turns): the same words are asked as written
    fresh, _, again = handlers.converse_reply(service, "他认为下一步应该怎么做？", [], 5, "hybrid", ())
    assert "rag-understood" not in fresh[0]["content"] and again[-1].understood == "他认为下一步应该怎么做？"
    # an unusable question: an error message, the turns unchanged
    history, _, same = handlers.converse_reply(service, "x" * 3000, history, 5, "hybrid", turns)
    assert "Could not answer" in history[-1]["content"] and same == turns


def test_ask_json_with_history(service: QAService) -> None:
    from rag.errors import QueryError

    data = handlers.ask_json(service, "他认为下一步应该怎么做？", 5, "hybrid", ["赵志国是谁？"])
    assert data["understood"] == "赵志国认为下一步应该怎么做？" and "趙志國" in data["text"]
    assert handlers.ask_json(service, "陶青是谁？", 5, "hybrid", ["赵志国是谁？"]) == handlers.ask_json(
        service, "陶青是谁？", 5, "hybrid")
    with pytest.raises(QueryError, match="history"):
        handlers.ask_json(service, "他是谁？", 5, "hybrid", "赵志国是谁？")


def test_save_uploads_takes_every_format_the_engine_reads(tmp_path: Path) -> None:
    from tests.test_extractors import make_docx, make_pdf

    src = tmp_path / "in"
    src.mkdir()
    (src / "a.pdf").write_bytes(make_pdf([["The harbour museum opened in 1964."]]))
    make_docx(src / "b.docx")
    (src / "c.html").write_text("<html><head><title>t</title></head><body><article><h1>Ferry</h1><p>"
                                + "The ferry to the island leaves every hour from the north quay. " * 5
                                + "</p></article></body></html>", encoding="utf-8")
    (src / "d.md").write_text("# Notes\n\nThe quay was rebuilt in 1990.\n", encoding="utf-8")
    (src / "e.exe").write_bytes(b"MZ\x00\x00")
    (src / "f.docx").write_bytes(b"PK\x03\x04 not a real docx")
    (src / "g.pdf").write_bytes(b"%PDF-1.4 broken")
    names = ["a.pdf", "b.docx", "c.html", "d.md", "e.exe", "f.docx", "g.pdf"]
    batch = uploads.save_uploads([uploads.Upload(n, src / n) for n in names], tmp_path / "uploads")
    assert [s.name for s in batch.saved] == ["a.pdf", "b.docx", "c.html", "d.md"]
    assert {s.path.suffix for s in batch.saved} == {".pdf", ".docx", ".html", ".md"}
    assert [s.encoding for s in batch.saved][:2] == ["pdf", "docx"]
    reasons = {r.name: r.reason for r in batch.refused}
    assert set(reasons) == {"e.exe", "f.docx", "g.pdf"}  # each failed alone, with its reason
    assert "not accepted" in reasons["e.exe"] and all(reasons.values())


def test_add_uploads_of_mixed_formats_one_message(service: QAService, tmp_path: Path) -> None:
    from tests.test_extractors import make_pdf

    src = tmp_path / "mixed"
    src.mkdir()
    (src / "ok.pdf").write_bytes(make_pdf([["The lighthouse keeper was Ada Quill."]]))
    (src / "bad.pdf").write_bytes(b"%PDF-1.4 broken")
    (src / "big.txt").write_bytes(b"a" * (uploads.MAX_UPLOAD_BYTES + 1))
    (src / "x.exe").write_bytes(b"MZ")
    html, result = handlers.add_files(service, [str(src / n) for n in ("ok.pdf", "bad.pdf", "big.txt", "x.exe")])
    assert result["ok"] and [a["name"] for a in result["added"]] == ["ok.pdf"]
    assert sorted(r["name"] for r in result["refused"]) == ["bad.pdf", "big.txt", "x.exe"]
    # one message lists every refusal with its reason
    assert html.count("rag-bad") == 3 and "over the 5.0 MB limit" in html and "not accepted" in html
    assert service.ask("Who was the lighthouse keeper?", k=3).found


def test_remove_an_uploaded_document(service: QAService, tmp_path: Path) -> None:
    note = tmp_path / "keeper.txt"
    note.write_text("The lighthouse keeper was Ada Quill, from 1901 to 1933.\n", encoding="utf-8")
    _, result = handlers.add_files(service, [str(note)])
    assert result["ok"]
    saved = service.uploads_dir / result["added"][0]["saved_as"]
    (source,) = [s for s in service.current().sources() if s.endswith(saved.name)]
    choices = dict((value, label) for label, value in handlers.removable_choices(service))
    assert set(choices) == set(service.current().sources()) and "removing deletes it" in choices[source]
    assert service.ask("Who was the lighthouse keeper?", k=3).found
    assert saved.is_file()
    html = handlers.remove_document(service, source)
    assert "Removed" in html and "1 documents" in html
    assert source not in service.current().sources() and not saved.exists()
    # the last document is kept, and unknown names are refused
    (seed,) = service.current().sources()
    assert "only document" in handlers.remove_document(service, seed)
    assert "not in the index" in handlers.remove_document(service, "nope.txt")
    assert "Choose a document" in handlers.remove_document(service, None)
    assert service.current().sources() == [seed]


# -- the document viewer --------------------------------------------------------------------


class _Marks(HTMLParser):
    """The viewer's text (inside ``.rag-viewer-text``), each character with the classes of the
    ``<mark>`` elements around it."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.depth = 0  # inside .rag-viewer-text when > 0
        self.stack: list[str] = []
        self.chars: list[tuple[str, frozenset[str]]] = []
        self.hits = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        cls = dict(attrs).get("class") or ""
        if self.depth:
            self.depth += 1
            self.stack.append(cls if tag == "mark" else "")
            self.hits += "rag-view-hit" in cls.split()
        elif "rag-viewer-text" in cls.split():
            self.depth = 1

    def handle_endtag(self, tag: str) -> None:
        if self.depth:
            self.depth -= 1
            if self.stack and self.depth:
                self.stack.pop()

    def handle_data(self, data: str) -> None:
        if self.depth:
            marks = frozenset(c for cls in self.stack for c in cls.split() if c.startswith("rag-view-"))
            self.chars.extend((ch, marks) for ch in data)

    @property
    def text(self) -> str:
        return "".join(ch for ch, _ in self.chars)

    def marked(self, cls: str) -> list[int]:
        return [i for i, (_, marks) in enumerate(self.chars) if cls in marks]


def _parse_view(html_text: str) -> _Marks:
    p = _Marks()
    p.feed(html_text)
    p.close()
    return p


def _targets_answer(doc: str, quote: str, span_at: int, span: str) -> Answer:
    start = doc.index(quote)
    c1 = Citation(1, SRC, 0, start, start + len(quote), quote)
    sc = Citation(1, SRC, 0, span_at, span_at + len(span), span)
    return Answer("q", True, quote, span, 0.9, (c1,), sc, (Hit(0, SRC, doc, 0, len(doc), 1.0),))


def test_viewer_marks_the_quote_and_span_at_their_offsets() -> None:
    doc = "第一句。\n\n前三季度规模以上工业增加值同比增长5.8%，增长较快。\n第三句在这里。"
    ans = _answer(doc)
    (target,) = viewer.view_targets(ans)
    assert (target.start, target.end) == (ans.citations[0].start, ans.citations[0].end)
    assert target.span == (ans.span_citation.start, ans.span_citation.end)
    lo, hi = viewer.view_window(doc, target.start, target.end)
    assert (lo, hi) == (0, len(doc))  # a short document is shown whole
    out = viewer.render_document_view(viewer.DocumentView(target, doc, lo, hi))
    view = _parse_view(out)
    assert view.text == doc  # the whole cleaned document, exactly (line breaks included)
    quote = view.marked("rag-view-quote")
    assert quote == list(range(target.start, target.end))
    assert view.marked("rag-view-span") == list(range(*target.span))
    # text before + highlighted quote + after == the document
    assert doc[:quote[0]] + "".join(view.text[i] for i in quote) + doc[quote[-1] + 1:] == doc
    assert "".join(view.text[i] for i in quote) == ans.citations[0].quote
    assert view.hits == 1 and f"characters {target.start}–{target.end} of {len(doc)}" in out
    assert "whole document" in out
    assert "\n" in out  # the text's own line breaks, shown by white-space: pre-wrap


def test_viewer_uses_the_span_offsets_never_a_search() -> None:
    # "5.8%" occurs twice in the quote: the span citation says it is the second one
    doc = "开头。去年增长5.8%，今年同比增长5.8%，增长较快。结尾。"
    quote = "去年增长5.8%，今年同比增长5.8%，增长较快。"
    second = doc.index("5.8%", doc.index("今年"))
    ans = _targets_answer(doc, quote, second, "5.8%")
    (target,) = viewer.view_targets(ans)
    assert target.span == (second, second + 4)
    view = _parse_view(viewer.render_document_view(viewer.DocumentView(target, doc, 0, len(doc))))
    assert view.marked("rag-view-span") == list(range(second, second + 4))
    # no span citation: nothing is marked as the answer, although the span's text is in the quote
    bare = Answer("q", True, quote, "5.8%", 0.9, ans.citations, None, ans.passages)
    (target,) = viewer.view_targets(bare)
    assert target.span is None
    view = _parse_view(viewer.render_document_view(viewer.DocumentView(target, doc, 0, len(doc))))
    assert view.marked("rag-view-span") == [] and view.marked("rag-view-quote")
    # a span citation in another document, or outside the quote, is not used either
    other = Answer("q", True, quote, "5.8%", 0.9, ans.citations, Citation(1, "docs/b.txt", 0, second, second + 4, "5.8%"),
                   ans.passages)
    assert viewer.view_targets(other)[0].span is None
    outside = Answer("q", True, quote, "开头", 0.9, ans.citations, Citation(1, SRC, 0, 0, 2, "开头"), ans.passages)
    assert viewer.view_targets(outside)[0].span is None


def test_viewer_shows_a_long_document_in_a_window_that_widens_to_all_of_it() -> None:
    lines = [f"第{i}行：这是一段很长的文档中的一行文字，用来测试窗口。" for i in range(20000)]
    doc = "\n".join(lines)  # about 600,000 characters
    assert len(doc) > viewer.WHOLE_DOCUMENT_CHARS
    quote = "第12345行：这是一段很长的文档中的一行文字，用来测试窗口。\n第12346行"  # crosses a line break
    start = doc.index(quote)
    end = start + len(quote)
    span = doc.index("12346", start)
    target = viewer.ViewTarget(SRC, start, end, quote, (span, span + 5), "[1]")
    lo, hi = viewer.view_window(doc, start, end)
    assert lo < start and end < hi and hi - lo <= viewer.VIEW_WINDOW_CHARS + 2 * 800
    assert lo == 0 or doc[lo - 1] == "\n"  # cut at line ends
    assert hi == len(doc) or doc[hi - 1] == "\n"
    view = viewer.DocumentView(target, doc, lo, hi)
    out = viewer.render_document_view(view)
    parsed = _parse_view(out)
    assert parsed.text == doc[lo:hi]
    assert [lo + i for i in parsed.marked("rag-view-quote")] == list(range(start, end))
    assert [lo + i for i in parsed.marked("rag-view-span")] == list(range(span, span + 5))
    assert parsed.hits == 1  # one scroll target, although the quote is split across lines
    assert "characters before this are not shown" in out and "characters after this are not shown" in out
    earlier = viewer.widen_view(view, "earlier")
    assert earlier.lo < lo and earlier.hi == hi and (earlier.lo == 0 or doc[earlier.lo - 1] == "\n")
    later = viewer.widen_view(earlier, "later")
    assert later.lo == earlier.lo and later.hi > hi
    whole = viewer.widen_view(later, "whole")
    assert whole.whole and (whole.lo, whole.hi) == (0, len(doc))
    t0 = time.perf_counter()
    out = viewer.render_document_view(whole)
    seconds = time.perf_counter() - t0
    parsed = _parse_view(out)
    assert parsed.text == doc
    assert parsed.marked("rag-view-quote") == list(range(start, end))
    # efficient: plain escaped text in blocks of a few thousand characters, no markup per line
    blocks = out.count('class="rag-vb"')
    assert len(doc) / 5000 < blocks < len(doc) / 1500, blocks
    assert len(out.encode("utf-8")) < 1.1 * len(doc.encode("utf-8")) + 200 * blocks
    print(f"whole {len(doc):,}-character document rendered in {seconds * 1000:.0f} ms, "
          f"{len(out.encode('utf-8')):,} bytes, {blocks} blocks")
    with pytest.raises(ValueError):
        viewer.widen_view(view, "sideways")


def test_viewer_of_a_huge_document_never_sends_more_than_the_cap() -> None:
    doc = "".join(f"line {i:07d} of a very long text file\n" for i in range(160_000))  # about 5.8 million characters
    assert len(doc) > 2 * viewer.MAX_SHOWN_CHARS
    quote = "line 0080000 of a very long text file"
    start = doc.index(quote)
    target = viewer.ViewTarget(SRC, start, start + len(quote), quote, None, "[1]")
    view = viewer.DocumentView(target, doc, *viewer.view_window(doc, start, start + len(quote)))
    sizes = []
    while view.lo > 0:  # each step doubles the window up to the cap, then moves it
        view = viewer.widen_view(view, "earlier")
        sizes.append(view.hi - view.lo)
        assert view.hi - view.lo <= viewer.MAX_SHOWN_CHARS and (view.lo == 0 or doc[view.lo - 1] == "\n")
    assert len(sizes) < 12 and max(sizes) > viewer.MAX_SHOWN_CHARS * 0.99, sizes
    assert view.hi <= start  # the window has moved past the quote
    out = viewer.render_document_view(view)
    parsed = _parse_view(out)
    assert parsed.text == doc[view.lo:view.hi] and not parsed.marked("rag-view-quote") and parsed.hits == 0
    assert "is after the part shown" in out and "“Later” shows them" in out and "Whole document" not in out
    while view.hi < len(doc):
        view = viewer.widen_view(view, "later")
        assert view.hi - view.lo <= viewer.MAX_SHOWN_CHARS
    assert view.lo > start  # every character was shown on the way, none more than the cap at once
    whole = viewer.widen_view(view, "whole")  # too long to show whole: the most there is, around the quote
    assert whole.hi - whole.lo <= viewer.MAX_SHOWN_CHARS + 1600 and whole.lo < start < whole.hi
    parsed = _parse_view(viewer.render_document_view(whole))
    assert [whole.lo + i for i in parsed.marked("rag-view-quote")] == list(range(start, start + len(quote)))


def test_viewer_window_at_the_edges_and_for_long_quotes() -> None:
    doc = "x" * 400_000
    assert viewer.view_window(doc, 0, 10) == (0, viewer.VIEW_WINDOW_CHARS)
    lo, hi = viewer.view_window(doc, len(doc) - 10, len(doc))
    assert hi == len(doc) and hi - lo == viewer.VIEW_WINDOW_CHARS
    lo, hi = viewer.view_window(doc, 1000, 100_000)  # a quote longer than the window is shown whole
    assert lo <= 1000 and hi >= 100_000


def test_viewer_escapes_the_document_and_gradio_template_syntax() -> None:
    doc = "<script>alert(1)</script> ${window.x} {{value}} `tick` \\n & \"q\"。答案是42。<img src=x onerror=alert(1)>"
    quote = "答案是42。"
    start = doc.index(quote)
    target = viewer.ViewTarget('docs/x" onmouseover="alert(1).txt', start, start + len(quote), quote,
                               (start + 3, start + 5), "[1]")
    out = viewer.render_document_view(viewer.DocumentView(target, doc, 0, len(doc)))
    for raw in ("<script", "<img", "${", "{{", "`", 'onmouseover="'):
        assert raw not in out, raw
    assert _parse_view(out).text == doc  # shown as text, intact
    assert "rag-viewer-error" in viewer.render_view_message("<b>${x}</b>")
    assert "<b>" not in viewer.render_view_message("<b>${x}</b>") and "${" not in viewer.render_view_message("${x}")


def test_answer_sources_get_open_buttons_keyed_by_reply() -> None:
    ans = _answer()
    q2 = "第三句在这里。"
    c2 = Citation(2, SRC, 3, DOC.index(q2), DOC.index(q2) + len(q2), q2)
    ans = Answer(ans.question, True, ans.text, ans.span, ans.score, ans.citations + (c2,), ans.span_citation,
                 ans.passages)
    out = render.render_answer(ans, lambda s: DOC, reply=4)
    assert out.count('class="rag-open rag-open-btn rag-key-4-0"') == 1 and "rag-key-4-1" in out
    assert out.count("rag-key-4-0") == 2  # the [1] reference and the source's button
    assert "\n" not in out
    assert "rag-open" not in render.render_answer(ans, lambda s: DOC)  # without a reply number: no buttons
    targets = viewer.view_targets(ans)
    assert [t.label for t in targets] == ["[1]", "[2]"] and targets[1].span is None
    assert render.parse_view_key("rag-key-4-1") == (4, 1) and render.parse_view_key("4-1") == (4, 1)
    for bad in ("rag-key-4", "rag-key--1-0", "x", "", None, "rag-key-4-1 extra", "rag-key-1e9-0"):
        assert render.parse_view_key(bad) is None, bad
    hits = tuple(Hit(i, SRC, DOC[i * 5:i * 5 + 10], i * 5, i * 5 + 10, 0.5) for i in range(5))
    refusal = Answer("q", False, "no", None, 0.1, (), None, hits)
    out = render.render_answer(refusal, reply=0)
    assert out.count("rag-open-btn") == 3  # the closest three
    targets = viewer.view_targets(refusal)
    assert len(targets) == 3 and all(t.passage and t.span is None for t in targets)
    assert [(t.start, t.end) for t in targets] == [(0, 10), (5, 15), (10, 20)]
    view = _parse_view(viewer.render_document_view(viewer.DocumentView(targets[1], DOC, 0, len(DOC))))
    assert view.marked("rag-view-passage") == list(range(5, 15)) and not view.marked("rag-view-quote")


def test_open_view_checks_the_session_refs_and_the_document(service: QAService) -> None:
    history, _, turns, refs = handlers.chat_turn(service, "前三季度规模以上工业增加值同比增长多少？", [], 5, "hybrid", (), ())
    assert len(refs) == 1 and refs[0] and "rag-key-0-0" in history[-1]["content"]
    history, _, turns, refs = handlers.chat_turn(service, "x" * 3000, history, 5, "hybrid", turns, refs)
    assert len(refs) == 2 and refs[1] == ()  # an error reply holds nothing to open
    target = refs[0][0]
    out, state = handlers.open_view(service, "rag-key-0-0", refs)
    assert state is not None and state.whole and (state.lo, state.hi) == (0, state.length)
    assert not (state.can_earlier or state.can_later or state.can_whole)
    text = service.document_text(target.source)
    parsed = _parse_view(out)
    assert parsed.text == text and parsed.marked("rag-view-quote") == list(range(target.start, target.end))
    assert target.span and parsed.marked("rag-view-span") == list(range(*target.span))
    for key in ("rag-key-1-0", "rag-key-9-0", "rag-key-0-9", "bogus", ""):
        out, state = handlers.open_view(service, key, refs)
        assert state is None and "conversation that has ended" in out, key
    # a document that changed or left the index since the answer: said so, nothing highlighted by guessing
    moved = replace(target, start=target.start + 1, end=target.end + 1)
    out, state = handlers.open_view(service, "rag-key-0-0", ((moved,),))
    assert state is None and "has changed since this answer" in out and "rag-view-quote" not in out
    gone = replace(target, source="docs/gone.txt")
    out, state = handlers.open_view(service, "rag-key-0-0", ((gone,),))
    assert state is None and "no longer in the index" in out
    out, state = handlers.widen_view(service, None, "whole")
    assert state is None and "Open a source" in out
