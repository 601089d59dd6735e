"""The document viewer as HTML: a cleaned document with the quoted sentence and the answer
span marked at the offsets the citation carries (``document.text[start:end] == quote``), never
found by searching the text. A document of up to :data:`WHOLE_DOCUMENT_CHARS` characters is
shown whole; a longer one in a window of :data:`VIEW_WINDOW_CHARS` around the quote, which
:func:`widen_view` extends (earlier, later, or to the whole document). Plain functions, like
:mod:`rag.ui.render`'s, unit-tested directly.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from rag.types import Answer
from rag.ui.render import CLOSEST_SHOWN, escape_html, short_name

WHOLE_DOCUMENT_CHARS = 150_000
"""Documents up to this many characters are shown whole; longer ones in a window."""
VIEW_WINDOW_CHARS = 30_000
"""The window a long document is first shown in, around the quote."""
MAX_SHOWN_CHARS = 2_000_000
"""The most the viewer shows at once (a document of 20 MB is not sent to the browser whole):
widening a window past it moves the window instead."""
_BLOCK_CHARS = 4_000
_SNAP_CHARS = 800


@dataclass(frozen=True)
class ViewTarget:
    """A place to show in a document: ``text[start:end] == quote`` (a citation's offsets, or a
    retrieved passage's), and ``span``, the answer's offsets inside it, when there is one.
    ``label`` names it ("[1]", "closest 2"); ``passage`` marks a passage that is not an answer."""

    source: str
    start: int
    end: int
    quote: str
    span: tuple[int, int] | None = None
    label: str = ""
    passage: bool = False


@dataclass(frozen=True)
class DocumentView:
    """The viewer's content: ``target`` in the document ``text``, showing ``text[lo:hi]``."""

    target: ViewTarget
    text: str
    lo: int
    hi: int

    @property
    def whole(self) -> bool:
        return self.lo == 0 and self.hi == len(self.text)


def view_targets(answer: Answer) -> tuple[ViewTarget, ...]:
    """What the buttons of :func:`render_answer` open, in their order: each citation with the
    answer span where :attr:`Answer.span_citation` puts it inside the citation (offsets only,
    never a search), or for a refusal the closest passages shown."""
    if not answer.found:
        return tuple(ViewTarget(h.source, h.start, h.end, h.text, None, f"closest {i}", True)
                     for i, h in enumerate(answer.passages[:CLOSEST_SHOWN], start=1))
    sc = answer.span_citation
    out = []
    for c in answer.citations:
        span = None
        if sc is not None and sc.source == c.source and c.start <= sc.start < sc.end <= c.end:
            span = (sc.start, sc.end)
        out.append(ViewTarget(c.source, c.start, c.end, c.quote, span, f"[{c.n}]"))
    return tuple(out)


def _snap_back(text: str, at: int, limit: int) -> int:
    """``at`` moved back to the start of its line (at most ``_SNAP_CHARS`` and never past
    ``limit``), so a window starts with a whole line."""
    if at <= 0:
        return 0
    nl = text.rfind("\n", max(0, at - _SNAP_CHARS), at)
    return nl + 1 if nl >= 0 and nl + 1 <= limit else at


def _snap_forward(text: str, at: int, limit: int) -> int:
    """``at`` moved forward past the end of its line (at most ``_SNAP_CHARS``, never before ``limit``)."""
    if at >= len(text):
        return len(text)
    nl = text.find("\n", at, min(len(text), at + _SNAP_CHARS))
    return nl + 1 if nl >= 0 and nl + 1 >= limit else at


def view_window(text: str, start: int, end: int, size: int = VIEW_WINDOW_CHARS,
                whole_up_to: int = WHOLE_DOCUMENT_CHARS) -> tuple[int, int]:
    """The part of ``text`` the viewer shows first for ``text[start:end]``: all of it when it
    has at most ``whole_up_to`` characters, else about ``size`` characters around the quote
    (more when the quote is longer), cut at line ends where one is near. Always holds the quote."""
    n = len(text)
    start, end = max(0, min(start, n)), max(0, min(end, n))
    if n <= whole_up_to:
        return 0, n
    extra = max(0, size - (end - start))
    lo = max(0, start - extra // 2)
    hi = min(n, end + (extra - (start - lo)))
    lo = max(0, min(lo, hi - max(size, end - start)))
    return _snap_back(text, lo, start), _snap_forward(text, hi, end)


def widen_view(view: DocumentView, how: str, step: int | None = None,
               most: int = MAX_SHOWN_CHARS) -> DocumentView:
    """``view`` extended ``"earlier"`` or ``"later"`` by ``step`` characters (default: as much
    as it shows, at least :data:`VIEW_WINDOW_CHARS`, so each step doubles it), or to the
    ``"whole"`` document. It never shows more than ``most`` characters: past that the window
    moves instead (the far side is dropped, the quote too once it is passed), and "whole" shows
    ``most`` characters around the quote."""
    text, lo, hi = view.text, view.lo, view.hi
    n = len(text)
    step = step if step is not None else max(VIEW_WINDOW_CHARS, hi - lo)
    if how == "whole":
        if n <= most:
            lo, hi = 0, n
        else:
            t = view.target
            lo, hi = view_window(text, t.start, t.end, size=most, whole_up_to=most)
    elif how == "earlier":
        lo = _snap_back(text, max(0, lo - step), lo)
        if hi - lo > most:
            hi = max(lo, _snap_back(text, lo + most, lo + most))
    elif how == "later":
        hi = _snap_forward(text, min(n, hi + step), hi)
        if hi - lo > most:
            lo = min(hi, _snap_forward(text, hi - most, hi - most))
    else:
        raise ValueError(f"widen_view: how must be 'earlier', 'later' or 'whole', not {how!r}")
    return DocumentView(view.target, text, lo, hi)


def _blocks(lo: int, hi: int, text: str) -> list[tuple[int, int]]:
    """``text[lo:hi]`` cut into blocks of about ``_BLOCK_CHARS`` that end at line ends where
    one is near (each block lays out on its own: ``content-visibility: auto``)."""
    out = []
    at = lo
    while at < hi:
        end = min(hi, at + _BLOCK_CHARS)
        if end < hi:
            nl = text.rfind("\n", at + _BLOCK_CHARS // 2, end)
            if nl >= 0:
                end = nl + 1
        out.append((at, end))
        at = end
    return out


def _marked_block(text: str, lo: int, hi: int, marks: Sequence[tuple[int, int, str]], first: list[bool]) -> str:
    """``text[lo:hi]`` escaped for ``gr.HTML``, each mark (document offsets, nested inside the
    ones before it) that overlaps it wrapped in ``<mark>``; the first piece of the first mark
    also gets ``rag-view-hit`` (what the viewer scrolls to)."""
    events: list[tuple[int, int, str]] = []
    for start, end, cls in marks:
        s, e = max(lo, start), min(hi, end)
        if s >= e:
            continue
        extra = ""
        if first[0] and cls == marks[0][2]:
            extra = " rag-view-hit"
            first[0] = False
        events.append((s, 1, f'<mark class="{cls}{extra}">'))
        events.append((e, 0, "</mark>"))
    events.sort(key=lambda ev: (ev[0], ev[1]))
    out: list[str] = []
    pos = lo
    for at, _, tag in events:
        out.append(escape_html(text[pos:at]))
        out.append(tag)
        pos = at
    out.append(escape_html(text[pos:hi]))
    return "".join(out)


def _count(n: int) -> str:
    return f"{n:,}"


def render_document_view(view: DocumentView) -> str:
    """The viewer: the document's name and where the quote is, then ``text[lo:hi]`` with the
    quote (``mark.rag-view-quote``) and the answer span inside it (``mark.rag-view-span``)
    marked at their offsets, the text exactly as indexed (``white-space: pre-wrap``). What the
    window leaves out is said before and after it."""
    t, text, lo, hi = view.target, view.text, view.lo, view.hi
    n = len(text)
    quote_cls = "rag-view-passage" if t.passage else "rag-view-quote"
    marks: list[tuple[int, int, str]] = [(t.start, t.end, quote_cls)]
    if t.span is not None:
        marks.append((t.span[0], t.span[1], "rag-view-span"))
    first = [True]
    body = "".join(f'<div class="rag-vb">{_marked_block(text, a, b, marks, first)}</div>'
                   for a, b in _blocks(lo, hi, text))
    what = "passage · 段落" if t.passage else "quote · 引文"
    meta = [f"{what}: characters {_count(t.start)}–{_count(t.end)} of {_count(n)}"]
    if t.span is not None:
        meta.append(f"answer · 答案: {_count(t.span[0])}–{_count(t.span[1])}")
    meta.append("whole document · 全文" if view.whole else f"showing {_count(lo)}–{_count(hi)} · 显示部分")
    shown = "closest passage, not an answer · 最接近的段落" if t.passage else "quoted sentence · 引文"
    legend = (f'<span class="rag-viewer-key {quote_cls}">{shown}</span> '
              + ('<span class="rag-viewer-key rag-view-span">answer · 答案</span>' if t.span is not None else ""))
    label = f'<span class="rag-num">{escape_html(t.label)}</span> ' if t.label else ""
    head = (
        f'<div class="rag-viewer-head"><div class="rag-viewer-title">{label}'
        f'<span class="rag-doc" title="{escape_html(t.source)}">{escape_html(short_name(t.source))}</span></div>'
        f'<div class="rag-viewer-meta">{" · ".join(meta)}</div>'
        f'<div class="rag-viewer-legend">{legend}</div></div>'
    )
    more = "“Earlier” shows them" if n > MAX_SHOWN_CHARS else "“Earlier” or “Whole document” shows them"
    before = (f'<p class="rag-viewer-cut">… {_count(lo)} characters before this are not shown: {more} · 前文未显示</p>'
              if lo > 0 else "")
    more = "“Later” shows them" if n > MAX_SHOWN_CHARS else "“Later” or “Whole document” shows them"
    after = (f'<p class="rag-viewer-cut">… {_count(n - hi)} characters after this are not shown: {more} · 后文未显示</p>'
             if hi < n else "")
    if t.end <= lo or t.start >= hi:
        where = "before" if t.end <= lo else "after"
        note = (f'<p class="rag-viewer-cut rag-viewer-away">The {"passage" if t.passage else "quote"} (characters '
                f"{_count(t.start)}–{_count(t.end)}) is {where} the part shown · 引文不在显示范围内</p>")
        before = note + before
    return (f'<div class="rag-viewer" data-source="{escape_html(t.source)}" data-lo="{lo}" data-hi="{hi}">{head}{before}'
            f'<div class="rag-viewer-text">{body}</div>{after}</div>')


def render_view_message(message: str, title: str = "Cannot show the document · 无法显示原文") -> str:
    """What the viewer shows instead of a document (gone from the index, changed since)."""
    return f'<div class="rag-viewer rag-viewer-error"><p><strong>{escape_html(title)}</strong></p><p>{escape_html(message)}</p></div>'
