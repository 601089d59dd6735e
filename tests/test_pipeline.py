import pytest

import rag
from rag.errors import QueryError, SourceNotFoundError

ANSWERABLE = [
    ("前三季度规模以上工业增加值同比增长多少？", "5.8%"),
    ("工業投資連續幾個月保持兩位數增長？", "8个月"),
    ("我国累计培育孵化机构多少家？", "1.6万多家"),
    ("前三季度全国技术合同成交总额是多少？", "4.49万亿元"),
    ("When does the library open on weekdays?", "9 am"),
]


def check_citations(qa, ans):
    for c in ans.citations:
        assert qa.document(c.source).text[c.start:c.end] == c.quote
    if ans.span_citation:
        c = ans.span_citation
        assert qa.document(c.source).text[c.start:c.end] == c.quote == ans.span
        holder = next(x for x in ans.citations if x.n == c.n)
        assert holder.source == c.source and holder.start <= c.start and c.end <= holder.end


@pytest.mark.parametrize("question,gold", ANSWERABLE)
def test_answers_with_exact_citations(hash_qa, question, gold):
    from rag.normalize import fold

    ans = hash_qa.ask(question)
    assert ans.found, ans
    assert fold(gold).replace(" ", "") in fold(ans.text).replace(" ", "")
    assert ans.citations and ans.citations[0].n == 1
    # the answer text is the quoted sentence, or two neighbouring ones, each cited
    assert ans.text.startswith(ans.citations[0].quote)
    assert all(c.quote in ans.text for c in ans.citations if c.quote in ans.text) and ans.citations[0].quote in ans.text
    check_citations(hash_qa, ans)


@pytest.mark.parametrize("question", ["今年全国GDP同比增长多少？", "灵璧县属于哪个省？", "Who won the 2022 World Cup?"])
def test_refuses_what_documents_do_not_answer(hash_qa, question):
    ans = hash_qa.ask(question)
    assert not ans.found and not ans.citations and ans.span is None
    assert "not answer" in ans.text
    assert ans.passages  # the closest passages, for the user to judge


def test_never_answers_from_spam(hash_qa):
    for h in hash_qa.search("宁都县 武宁县 灵璧县 扫一扫 微信", k=10):
        assert "灵璧县" not in h.text and "掃一掃" not in h.text


def test_search_hits_have_offsets(hash_qa):
    hits = hash_qa.search("科技服务业", k=3)
    assert len(hits) == 3
    for h in hits:
        assert hash_qa.document(h.source).text[h.start:h.end] == h.text


def test_document_and_report(hash_qa):
    src = next(s for s in hash_qa.sources() if s.endswith(".txt"))
    doc = hash_qa.document(src)
    assert doc.report.original_chars > len(doc.text)
    assert "pinyin reading" in doc.report.counts()
    with pytest.raises(SourceNotFoundError):
        hash_qa.document("nope.txt")


@pytest.mark.parametrize("bad", ["", "   ", "x" * 5000])
def test_bad_questions(hash_qa, bad):
    with pytest.raises(QueryError):
        hash_qa.ask(bad)


def test_build_from_texts(tmp_path):
    items = [("a", "The bridge was built in 1890 by engineers."), ("b", "Cats sleep a lot.")]
    info = rag.IndexWriter(tmp_path / "i", model="test-hash").add_texts(items, replace_all=True).info
    assert info.documents == 2 and info.chunks == 2
    qa = rag.load(tmp_path / "i")
    ans = qa.ask("When was the bridge built?")
    assert ans.found and "1890" in ans.text and ans.span == "1890"


def test_bad_files_skipped_with_reasons(tmp_path, seed_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "good.txt").write_text("今年工业增长较快。", encoding="utf-8")
    (docs / "empty.txt").write_text("", encoding="utf-8")
    (docs / "bin.txt").write_bytes(b"\x00\x01\x02" * 100)
    info = rag.build_index([docs], index_dir=tmp_path / "i", model="test-hash")
    assert info.documents == 1
    assert sorted(s.split("/")[-1] for s in info.skipped) == ["bin.txt", "empty.txt"]
