"""Answers, sources and reports as HTML for the chat and the Documents tab.

Every piece of document or user text goes through :func:`esc`, which escapes HTML *and* the
characters Markdown, tables and LaTeX would act on, and turns line breaks into ``<br>``. The
output never holds a blank line, so the chat's Markdown renderer passes each message through
as one HTML block. What goes into a ``gr.HTML`` (the Documents tab, the viewer) goes through
:func:`escape_html`: HTML escaping, and the characters of Gradio's HTML templates (``{ } $ ` \\``) as
entities. No Gradio import here: these are plain functions, unit-tested directly.

The document viewer is :mod:`rag.ui.viewer`'s.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Sequence
from pathlib import PurePosixPath

from rag.types import Answer, Citation, Hit

from rag.ui.service import AddResult, DocumentOverview, ExcludedDocument, IndexOverview

DocumentText = Callable[[str], str]
"""Looks up the cleaned text of a document by its source name."""

NOT_FOUND_TITLE = "Not found in the documents · 文档中没有找到答案"
CLOSEST_TITLE = "Closest passages — not an answer, judge for yourself · 最接近的段落（并非答案，仅供参考）"
SOURCES_TITLE = "Sources · 来源"
_CONTEXT_CHARS = 220
_PASSAGE_MAX_CHARS = 700
CLOSEST_SHOWN = 3

# Characters that Markdown (emphasis, code, links, tables, headings, lists), GFM strikethrough
# and LaTeX delimiters act on; written as numeric entities they are shown as-is.
_MARKDOWN_CHARS = "\\`*_{}[]()#+-.!|~$:"
_ENTITY = {ord(c): f"&#{ord(c)};" for c in _MARKDOWN_CHARS}


_BLANK_LINES = re.compile(r"\n[ \t\u3000]*(?:\n[ \t\u3000]*)+")


def esc(text: str) -> str:
    """Text made inert for the chat: HTML-escaped, Markdown/LaTeX characters as entities,
    line breaks as ``<br>`` (a run of blank lines as one)."""
    escaped = html.escape(text, quote=True).translate(_ENTITY)
    escaped = _BLANK_LINES.sub("\n", escaped.replace("\r\n", "\n").replace("\r", "\n"))
    return escaped.replace("\n", "<br>")


def short_name(source: str) -> str:
    """The file name of a source, for display (the full source is shown as a tooltip)."""
    return PurePosixPath(source.replace("\\", "/")).name or source


def _doc_label(source: str) -> str:
    return f'<span class="rag-doc" title="{esc(source)}">{esc(short_name(source))}</span>'


def _position(start: int, end: int) -> str:
    return f'<span class="rag-pos">characters {start}–{end} · 字符 {start}–{end}</span>'


def _with_marks(text: str, marks: Sequence[tuple[int, int, str]]) -> str:
    """``text`` escaped, with each (start, end, css class) range wrapped in ``<mark>``.
    Ranges must be sorted and either disjoint or nested (inner after outer)."""
    events: list[tuple[int, int, str]] = []  # (position, order, html)
    for start, end, cls in marks:
        start, end = max(0, start), min(len(text), end)
        if start >= end:
            continue
        events.append((start, 1, f'<mark class="{cls}">'))
        events.append((end, 0, "</mark>"))
    events.sort(key=lambda e: (e[0], e[1]))
    out: list[str] = []
    pos = 0
    for at, _, tag in events:
        out.append(esc(text[pos:at]))
        out.append(tag)
        pos = at
    out.append(esc(text[pos:]))
    return "".join(out)


def _span_range(answer: Answer, citation: Citation) -> tuple[int, int] | None:
    """Where the short answer sits inside ``citation.quote`` (relative offsets), if it does."""
    sc = answer.span_citation
    if sc is not None and sc.source == citation.source and citation.start <= sc.start and sc.end <= citation.end:
        return sc.start - citation.start, sc.end - citation.start
    if answer.span:
        i = citation.quote.find(answer.span)
        if i >= 0:
            return i, i + len(answer.span)
    return None


_SENTENCE_END = "。！？!?；;\n"


def context_window(text: str, start: int, end: int, reach: int = _CONTEXT_CHARS) -> tuple[int, int]:
    """The stretch of ``text`` to show around ``text[start:end]``: up to ``reach`` characters
    either side, cut at sentence ends when there is one, so the quote reads in context."""
    lo = max(0, start - reach)
    if lo > 0:
        cut = max((i for i in range(lo, start) if text[i] in _SENTENCE_END), default=-1)
        # Keep the sentence just before the quote: start after the sentence end before it.
        earlier = max((i for i in range(lo, cut) if text[i] in _SENTENCE_END), default=-1) if cut >= 0 else -1
        if earlier >= 0:
            lo = earlier + 1
    hi = min(len(text), end + reach)
    if hi < len(text):
        ends = [i for i in range(end, hi) if text[i] in _SENTENCE_END]
        if ends:
            hi = ends[0] + 1
    while lo < start and text[lo].isspace():
        lo += 1
    while hi > end and text[hi - 1].isspace():
        hi -= 1
    return lo, hi


def _passage_for(answer: Answer, c: Citation, document_text: DocumentText | None) -> tuple[str, int, int, bool]:
    """The passage to show around citation ``c``: (text, its offset in the document, the quote's
    offset in it, whether the document goes on after it). Falls back to the quote alone."""
    full = ""
    if document_text is not None:
        try:
            full = document_text(c.source)
        except Exception:  # noqa: BLE001 - a missing document only loses the context
            full = ""
    if full[c.start:c.end] != c.quote:
        for h in answer.passages:  # the retrieved chunk holds the quote too
            rel = c.start - h.start
            if h.source == c.source and 0 <= rel and h.text[rel:rel + len(c.quote)] == c.quote:
                full, offset = h.text, h.start
                lo, hi = context_window(full, rel, rel + len(c.quote), _CONTEXT_CHARS // 2)
                return full[lo:hi], offset + lo, rel - lo, hi < len(full)
        return c.quote, c.start, 0, False
    lo, hi = context_window(full, c.start, c.end, _CONTEXT_CHARS // 2)
    return full[lo:hi], lo, c.start - lo, hi < len(full)


OPEN_LABEL = "Open in document · 查看原文"
OPEN_TITLE = "Show the whole document, this passage highlighted · 打开全文并高亮此处"
_KEY = re.compile(r"(?:rag-key-)?(\d{1,6})-(\d{1,4})")


def view_key(reply: int, item: int) -> str:
    """The class that names a place to open: reply ``reply`` of the chat, its target ``item``
    (the chat's sanitiser keeps classes, not ``data-`` attributes)."""
    return f"rag-key-{reply}-{item}"


def parse_view_key(key: str | None) -> tuple[int, int] | None:
    """``(reply, item)`` from :func:`view_key`'s class (with or without its prefix), else None."""
    m = _KEY.fullmatch((key or "").strip())
    return (int(m.group(1)), int(m.group(2))) if m else None


def _open_button(key: str | None, text: str = OPEN_LABEL, cls: str = "rag-open-btn") -> str:
    if key is None:
        return ""
    return f'<button type="button" class="rag-open {cls} {key}" title="{esc(OPEN_TITLE)}">{esc(text)}</button>'


def _ref(n: int, key: str | None) -> str:
    if key is None:
        return f'<sup class="rag-ref">[{n}]</sup>'
    return f'<sup class="rag-ref">{_open_button(key, f"[{n}]", "rag-open-ref")}</sup>'


def render_citation(answer: Answer, c: Citation, document_text: DocumentText | None = None,
                    key: str | None = None) -> str:
    passage, base, rel, more = _passage_for(answer, c, document_text)
    marks = [(rel, rel + len(c.quote), "rag-quote")]
    span = _span_range(answer, c)
    if span is not None:
        marks.append((rel + span[0], rel + span[1], "rag-span"))
    before = "…" if base > 0 else ""
    after = "…" if more else ""
    return (
        f'<div class="rag-source"><div class="rag-source-head"><span class="rag-num">[{c.n}]</span> '
        f"{_doc_label(c.source)} {_position(c.start, c.end)} {_open_button(key)}</div>"
        f'<div class="rag-passage">{before}{_with_marks(passage, marks)}{after}</div></div>'
    )


def render_found(answer: Answer, document_text: DocumentText | None = None, reply: int | None = None) -> str:
    first = answer.citations[0] if answer.citations else None

    def key(i: int) -> str | None:
        return view_key(reply, i) if reply is not None else None

    parts = ['<div class="rag-answer rag-found">']
    if answer.span:
        parts.append(f'<div class="rag-short">Answer · 答案：<strong class="rag-short-value">{esc(answer.span)}</strong></div>')
    if first is not None:
        span = _span_range(answer, first)
        marks = [(span[0], span[1], "rag-span")] if span else []
        body = _with_marks(first.quote, marks)
    else:
        body = esc(answer.text)
    refs = "".join(_ref(c.n, key(i)) for i, c in enumerate(answer.citations[:1]))
    parts.append(f'<p class="rag-text">{body}{refs}</p>')
    if len(answer.citations) > 1:
        also = ", ".join(_ref(c.n, key(i)) for i, c in enumerate(answer.citations) if i > 0)
        parts.append(f'<p class="rag-also">Also stated in · 另见 {also}</p>')
    if answer.citations:
        parts.append(f'<div class="rag-sources"><div class="rag-sources-title">{SOURCES_TITLE}</div>')
        parts.extend(render_citation(answer, c, document_text, key(i)) for i, c in enumerate(answer.citations))
        parts.append("</div>")
    parts.append("</div>")
    return "".join(parts)


def _clip(text: str, limit: int = 180) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def render_closest(hits: Sequence[Hit], reply: int | None = None) -> str:
    if not hits:
        return '<p class="rag-closest-none">No passage comes close. · 没有相近的段落。</p>'
    items = []
    for i, h in enumerate(hits[:CLOSEST_SHOWN], start=1):
        key = view_key(reply, i - 1) if reply is not None else None
        items.append(
            f'<div class="rag-closest-item"><div class="rag-source-head"><span class="rag-num">{i}.</span> '
            f"{_doc_label(h.source)} {_position(h.start, h.end)} {_open_button(key)}</div>"
            f'<div class="rag-passage">{esc(_clip(h.text))}</div></div>'
        )
    return f'<div class="rag-closest"><div class="rag-closest-title">{CLOSEST_TITLE}</div>{"".join(items)}</div>'


def render_not_found(answer: Answer, reply: int | None = None) -> str:
    return (
        '<div class="rag-answer rag-notfound">'
        f'<p class="rag-refusal"><strong>{NOT_FOUND_TITLE}</strong></p>'
        f'<p class="rag-refusal-detail">{esc(answer.text)}</p>'
        f"{render_closest(answer.passages, reply)}</div>"
    )


def render_answer(answer: Answer, document_text: DocumentText | None = None, reply: int | None = None) -> str:
    """One chat reply: the answer with its sources, or the refusal with the closest passages.
    With ``reply`` (its number in the conversation) each source gets a button that opens it
    in the document viewer: the targets are :func:`rag.ui.viewer.view_targets` ``(answer)``, in order."""
    return render_found(answer, document_text, reply) if answer.found else render_not_found(answer, reply)


# -- the document viewer -------------------------------------------------------------------


def render_question(question: str, understood: str | None = None) -> str:
    """The user's question; under it, for a follow-up, how it was understood."""
    shown = f'<div class="rag-question">{esc(question)}</div>'
    if understood and understood != question:
        shown += f'<div class="rag-understood">理解为 · understood as: {esc(understood)}</div>'
    return shown


def render_error(message: str) -> str:
    return f'<div class="rag-answer rag-error"><p><strong>Could not answer · 无法回答：</strong>{esc(message)}</p></div>'


def render_failure(message: str) -> str:
    """A Documents-tab action (remove, restore, list) that could not be done, in one line."""
    return f'<div class="rag-error"><p><strong>Not done · 未完成：</strong>{escape_html(message)}</p></div>'


# -- Documents tab (gr.HTML, no Markdown pass: plain HTML escaping is enough) ------------


_TEMPLATE_CHARS = {ord(c): f"&#{ord(c)};" for c in "{}$`\\"}


def escape_html(text: str) -> str:
    """Text made inert for ``gr.HTML``: HTML-escaped, and the characters Gradio's HTML templates
    act on (``${…}``, ``{{…}}``, backquotes, backslashes) as entities, which show as themselves."""
    return html.escape(text, quote=True).translate(_TEMPLATE_CHARS)


def _doc_label_html(source: str) -> str:
    return f'<span class="rag-doc" title="{escape_html(source)}">{escape_html(short_name(source))}</span>'


def render_status_line(ov: IndexOverview) -> str:
    n = len(ov.documents)
    return (
        f'<div class="rag-status">{n} document{"s" if n != 1 else ""} · {ov.chunks} passages · '
        f"model {escape_html(ov.model)} · default mode {escape_html(ov.mode)}</div>"
    )


def render_report(doc: DocumentOverview) -> str:
    r = doc.report
    counts, chars = r.counts(), r.chars_by_reason()
    rows = "".join(
        f"<tr><td>{escape_html(reason)}</td><td>{counts[reason]}</td><td>{chars[reason]}</td></tr>" for reason in sorted(counts)
    )
    table = (
        '<table class="rag-table"><thead><tr><th>What was removed</th><th>Edits</th><th>Characters</th></tr></thead>'
        f"<tbody>{rows}</tbody></table>"
        if rows else '<p class="rag-muted">Nothing needed cleaning.</p>'
    )
    return (
        f'<details class="rag-report"><summary>{_doc_label_html(doc.source)} — cleaning report: '
        f"{r.original_chars} → {r.cleaned_chars} characters</summary>"
        f'<pre class="rag-summary">{html.escape(r.summary())}</pre>{table}</details>'
    )


def render_overview(ov: IndexOverview) -> str:
    rows = "".join(
        f"<tr><td>{_doc_label_html(d.source)}</td><td>{d.chunks}</td><td>{d.chars}</td>"
        f'<td>{d.report.removed_chars}</td><td class="rag-col-extra">{escape_html(d.encoding)}</td></tr>'
        for d in ov.documents
    )
    head = (
        f'<div class="rag-index-info"><b>Model</b> {escape_html(ov.model)} · <b>Built</b> {escape_html(ov.created)} '
        f"in {ov.build_seconds:.1f} s · <b>Passages</b> {ov.chunks} · <b>Version</b> {escape_html(ov.version)}</div>"
    )
    table = (
        '<table class="rag-table"><thead><tr><th>Document</th><th>Passages</th><th>Characters</th>'
        f'<th>Removed by cleaning</th><th class="rag-col-extra">Encoding</th></tr></thead><tbody>{rows}</tbody></table>'
    )
    reports = "".join(render_report(d) for d in ov.documents)
    return f'<div class="rag-overview">{head}{table}<div class="rag-reports">{reports}</div></div>'


def render_add_result(result: AddResult) -> str:
    lines: list[str] = []
    if result.error:
        lines.append(f'<p class="rag-bad"><strong>Nothing was added.</strong> {escape_html(result.error)}</p>')
    for s in result.added:
        lines.append(f'<li class="rag-good">✓ {escape_html(s.name)} — added as {escape_html(s.path.name)} ({s.chars} characters)</li>')
    for r in result.refused:
        lines.append(f'<li class="rag-bad">✗ {escape_html(r.name)} — {escape_html(r.reason)}</li>')
    for w in result.warnings:
        lines.append(f'<li class="rag-muted">note: {escape_html(w)}</li>')
    if not lines:
        lines.append('<p class="rag-muted">No file was given.</p>')
    summary = ""
    if result.added and not result.error:
        summary = (
            f"<p>The chat now uses the new index: {result.documents} documents, {result.chunks} passages "
            f"(took {result.seconds:.1f} s).</p>"
        )
    items = "".join(x for x in lines if x.startswith("<li"))
    others = "".join(x for x in lines if not x.startswith("<li"))
    return f'<div class="rag-upload-result">{others}{f"<ul>{items}</ul>" if items else ""}{summary}</div>'


def render_excluded(items: Sequence[ExcludedDocument]) -> str:
    """The Documents tab's list of documents-folder files taken out of the index."""
    if not items:
        return ('<p class="rag-muted">No document is excluded. Removing a file of the documents folder excludes it '
                "here (the file is kept). 没有被排除的文档。</p>")
    rows = "".join(
        f"<tr><td>{_doc_label_html(e.source)}</td><td>{escape_html(e.excluded_at or '—')}</td>"
        f"<td>{'in the folder · 文件仍在' if e.present else 'no longer in the folder · 文件已不在'}</td></tr>"
        for e in items
    )
    return (
        '<div class="rag-excluded"><table class="rag-table"><thead><tr><th>Excluded document · 已排除</th>'
        f"<th>Since (UTC)</th><th>File</th></tr></thead><tbody>{rows}</tbody></table></div>"
    )
