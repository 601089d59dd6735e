"""What each UI event and API endpoint does, as plain functions over a :class:`QAService`.

Kept free of Gradio so that they can be tested and reused; :mod:`rag.ui.layout` wires them
to components and turns :class:`rag.RagError` into messages the user reads.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from rag.answer.conversation import Turn
from rag.errors import QueryError, RagError, SourceNotFoundError
from rag.settings import K_DEFAULT, K_MAX, K_MIN
from rag.types import Progress

from rag.ui import render, viewer
from rag.ui.service import QAService
from rag.ui.uploads import Upload, display_name

History = list[dict[str, Any]]
Refs = tuple[tuple[viewer.ViewTarget, ...], ...]
"""What each reply of a browser session's chat can open in the document viewer (Gradio state):
reply ``i``'s buttons open ``refs[i]`` (:func:`rag.ui.viewer.view_targets`)."""

MAX_HISTORY = 50
"""The most earlier questions ``/ask`` takes (the last :data:`rag.answer.conversation.MAX_TURNS`
of them are asked again to understand the question)."""

EXAMPLES: tuple[str, ...] = (
    "前三季度规模以上工业增加值同比增长多少？",
    "國家技術轉移區域中心有幾個？",
    "How much did the total value of technology contracts reach in the first three quarters?",
)
"""Example questions from the seed article: Simplified, Traditional and English."""

__all__ = ["EXAMPLES", "K_DEFAULT", "K_MAX", "K_MIN", "Refs", "ViewerState", "add_files", "ask_json", "chat_reply",
           "chat_turn", "converse_reply", "documents_json", "documents_view", "excluded_view", "open_view",
           "progress_bar", "removable_choices", "remove_document", "restore_document", "widen_view"]
# ``k`` and ``mode`` are checked by :meth:`rag.QA.ask` (:func:`rag.settings.check_k`, one range
# for the API, the CLI and the slider): values outside it are refused in words, never clamped.


def chat_reply(service: QAService, question: str, history: History | None, k: Any, mode: Any) -> tuple[History, str]:
    """Append the question and its rendered answer (or the reason it cannot be answered) to
    the chat; returns the new history and the cleared question box."""
    history = list(history or [])
    q = (question or "").strip()
    if not q:
        return history, ""
    history.append({"role": "user", "content": render.render_question(q)})
    try:
        answer = service.ask(q, k=k, mode=mode)
        reply = render.render_answer(answer, service.document_text)
    except RagError as exc:
        reply = render.render_error(str(exc))
    history.append({"role": "assistant", "content": reply})
    return history, ""


def chat_turn(service: QAService, question: str, history: History | None, k: Any, mode: Any,
              turns: Sequence[Turn] | None, refs: Refs | None = None) -> tuple[History, str, tuple[Turn, ...], Refs]:
    """The next turn of the browser session's conversation (``turns``, kept in Gradio state):
    the question is understood from the turns before it, and how it was understood is shown
    under it; each source of the answer gets a button that opens it in the document viewer
    (what it opens is appended to ``refs``). Returns the chat, the cleared box, the turns with
    this one and the refs with this reply's."""
    history = list(history or [])
    turns = tuple(turns or ())
    refs = tuple(refs or ())
    q = (question or "").strip()
    if not q:
        return history, "", turns, refs
    targets: tuple[viewer.ViewTarget, ...] = ()
    try:
        answer, turns = service.converse(q, turns, k=k, mode=mode)
        asked = render.render_question(q, answer.understood)
        reply = render.render_answer(answer, service.document_text, reply=len(refs))
        targets = viewer.view_targets(answer)
    except RagError as exc:
        asked, reply = render.render_question(q), render.render_error(str(exc))
    history.append({"role": "user", "content": asked})
    history.append({"role": "assistant", "content": reply})
    return history, "", turns, refs + (targets,)


def converse_reply(service: QAService, question: str, history: History | None, k: Any, mode: Any,
                   turns: Sequence[Turn] | None) -> tuple[History, str, tuple[Turn, ...]]:
    """:func:`chat_turn` without the viewer's refs: the chat, the cleared box and the turns."""
    history, box, turns, _ = chat_turn(service, question, history, k, mode, turns)
    return history, box, turns


# -- the document viewer -------------------------------------------------------------------


@dataclass(frozen=True)
class ViewerState:
    """What the viewer shows (Gradio state): ``target`` in a document of ``length``
    characters, ``text[lo:hi]`` of it."""

    target: viewer.ViewTarget
    lo: int
    hi: int
    length: int

    @property
    def can_earlier(self) -> bool:
        return self.lo > 0

    @property
    def can_later(self) -> bool:
        return self.hi < self.length

    @property
    def whole(self) -> bool:
        return self.lo == 0 and self.hi == self.length

    @property
    def can_whole(self) -> bool:
        """Whether "Whole document" shows more: not shown whole, and short enough to be."""
        return not self.whole and self.length <= viewer.MAX_SHOWN_CHARS


def _document_for(service: QAService, target: viewer.ViewTarget) -> tuple[str | None, str]:
    """The document's text, checked against the target's offsets, or (None, what is wrong)."""
    try:
        text = service.document_text(target.source)
    except SourceNotFoundError:
        return None, (f"{target.source} is no longer in the index (it was removed after this answer); "
                      "ask again to get sources from the documents indexed now.")
    except RagError as exc:
        return None, str(exc)
    if not 0 <= target.start <= target.end <= len(text) or text[target.start:target.end] != target.quote:
        return None, (f"{target.source} has changed since this answer: its text at characters "
                      f"{target.start}–{target.end} is no longer the quoted passage. Ask again to see it in the "
                      "document as it is now.")
    return text, ""


def open_view(service: QAService, key: str | None, refs: Refs | None) -> tuple[str, ViewerState | None]:
    """What a source's button opens: the viewer's HTML (the document with the quote and the
    answer marked, or why it cannot be shown) and its state. ``key`` is the button's
    :func:`rag.ui.render.view_key` class: only the places this session's replies hold open."""
    parsed = render.parse_view_key(key)
    refs = tuple(refs or ())
    if parsed is None or parsed[0] >= len(refs) or parsed[1] >= len(refs[parsed[0]]):
        return viewer.render_view_message("This source belongs to a conversation that has ended; ask the question "
                                          "again to open its sources."), None
    target = refs[parsed[0]][parsed[1]]
    text, problem = _document_for(service, target)
    if text is None:
        return viewer.render_view_message(problem), None
    lo, hi = viewer.view_window(text, target.start, target.end)
    return viewer.render_document_view(viewer.DocumentView(target, text, lo, hi)), ViewerState(target, lo, hi, len(text))


def widen_view(service: QAService, state: ViewerState | None, how: str) -> tuple[str, ViewerState | None]:
    """The viewer extended ``"earlier"``, ``"later"`` or to the ``"whole"`` document."""
    if state is None:
        return viewer.render_view_message("Open a source of an answer first."), None
    text, problem = _document_for(service, state.target)
    if text is None:
        return viewer.render_view_message(problem), None
    view = viewer.widen_view(viewer.DocumentView(state.target, text, min(state.lo, len(text)),
                                                 min(state.hi, len(text))), how)
    return viewer.render_document_view(view), ViewerState(state.target, view.lo, view.hi, len(text))


def check_history(history: Any) -> list[str]:
    """The ``/ask`` endpoint's earlier questions: a list of strings (or None), oldest first."""
    if history is None:
        return []
    if isinstance(history, str) or not isinstance(history, (list, tuple)) or not all(
            isinstance(h, str) for h in history):
        raise QueryError("history must be a list of the earlier questions (strings), oldest first")
    if len(history) > MAX_HISTORY:
        raise QueryError(f"history holds {len(history)} questions; the limit is {MAX_HISTORY}")
    return [h for h in history if h.strip()]


def ask_json(service: QAService, question: str, k: Any = K_DEFAULT, mode: Any = None,
             history: Any = None) -> dict[str, Any]:
    """The structured answer, as :func:`dataclasses.asdict` of :class:`rag.Answer`; with
    ``history`` (the earlier questions of a conversation, oldest first) a follow-up question is
    understood from them (``understood``). Raises :class:`rag.RagError` for an unusable
    question, ``k``, ``mode`` or history."""
    earlier = check_history(history)
    if not earlier:
        return asdict(service.ask(question, k=k, mode=mode))
    return asdict(service.ask_after(question, earlier, k=k, mode=mode))


def documents_json(service: QAService) -> dict[str, Any]:
    ov = service.overview()
    return {
        "model": ov.model,
        "created": ov.created,
        "build_seconds": ov.build_seconds,
        "version": ov.version,
        "chunks": ov.chunks,
        "documents": [
            {"source": d.source, "chunks": d.chunks, "chars": d.chars, "encoding": d.encoding,
             "removed_chars": d.report.removed_chars, "cleaning": d.report.chars_by_reason()}
            for d in ov.documents
        ],
    }


def documents_view(service: QAService) -> tuple[str, str]:
    """The status line and the Documents tab's overview, or the loading problem in words."""
    try:
        ov = service.overview()
    except RagError as exc:
        message = render.render_error(str(exc))
        return message, message
    return render.render_status_line(ov), render.render_overview(ov)


BarUpdate = Callable[[float, str], None]
"""What a progress bar shows: (fraction done from 0 to 1, what is happening, in words)."""

# Where each stage of adding uploads (the service's and the index writer's) lies on one smooth
# bar, and its words. A stage whose span is empty is one step: its words without a count.
_BAR: dict[str, tuple[float, float, str]] = {
    "check": (0.0, 0.0, "Checking files"),
    "model": (0.03, 0.03, "Loading the embedding model"),
    "read": (0.05, 0.20, "Reading documents"),
    "chunk": (0.20, 0.30, "Splitting into passages"),
    "embed": (0.30, 0.80, "Embedding passages"),
    "bm25": (0.80, 0.85, "Building the keyword index"),
    "write": (0.85, 0.92, "Writing the new index"),
    "load": (0.94, 0.94, "Loading the new index"),
    "done": (1.0, 1.0, "Done"),
}


def progress_bar(update: BarUpdate) -> Progress:
    """The :class:`rag.types.Progress` callback that drives a progress bar (Gradio's): each
    stage of :meth:`QAService.add_uploads` moves it along its share of the bar."""

    def progress(stage: str, done: int, total: int) -> None:
        lo, hi, words = _BAR.get(stage, (0.0, 0.92, stage))
        if lo == hi:
            update(lo, words)
            return
        frac = lo + (hi - lo) * (done / total if total else 1.0)
        update(frac, f"{words} ({done}/{total})")

    return progress


def removable_choices(service: QAService) -> list[tuple[str, str]]:
    """The documents the Documents tab offers to remove, as (label, source): every indexed one,
    the label saying what removing it does."""
    try:
        sources = service.removable()
    except RagError:
        return []
    return [(f"{render.short_name(s)} — added here: removing deletes it" if service.is_upload(s)
             else f"{s} — documents folder: removing excludes it, the file is kept", s) for s in sources]


def remove_document(service: QAService, source: str | None) -> str:
    """Remove one document (an upload is deleted, a documents-folder file excluded); the outcome in words (HTML)."""
    if not source:
        return '<p class="rag-muted">Choose a document to remove first. 请先选择要删除的文档。</p>'
    try:
        result = service.remove_document(source)
    except RagError as exc:
        return render.render_failure(f"the index was not changed: {exc}")
    if not result.ok:
        return render.render_failure(result.error or "the document was not removed")
    if result.excluded:
        return (f'<p class="rag-good">✓ Excluded {render.esc(result.source)}: it is no longer in the index, and the '
                "file stays in the documents folder (the next start does not index it again; restore it below). "
                f"The chat now uses the new index: {result.documents} documents, {result.chunks} passages. "
                "已从索引中排除，文件保留。</p>")
    return (f'<p class="rag-good">✓ Removed {render.esc(result.source)}. The chat now uses the new index: '
            f"{result.documents} documents, {result.chunks} passages.</p>")


def excluded_view(service: QAService) -> tuple[str, list[str]]:
    """The Documents tab's list of excluded documents (HTML) and the sources the Restore
    choice offers; an unreadable record in words (and nothing to restore)."""
    try:
        items = service.excluded()
    except RagError as exc:
        return render.render_failure(str(exc)), []
    return render.render_excluded(items), [e.source for e in items]


def restore_document(service: QAService, source: str | None, progress: Progress | None = None) -> str:
    """Index an excluded document again; the outcome in words (HTML)."""
    if not source:
        return '<p class="rag-muted">Choose an excluded document to restore first. 请先选择要恢复的文档。</p>'
    try:
        result = service.restore_document(source, progress)
    except RagError as exc:
        return render.render_failure(f"the index was not changed: {exc}")
    if not result.ok:
        return render.render_failure(result.error or "the document was not restored")
    if result.note:
        return f'<p class="rag-muted">✓ {render.esc(result.note)}</p>'
    return (f'<p class="rag-good">✓ Restored {render.esc(result.source)}: it is indexed again. The chat now uses the '
            f"new index: {result.documents} documents, {result.chunks} passages. 已恢复。</p>")


def add_files(service: QAService, files: Sequence[str] | None, progress: Progress | None = None) -> tuple[str, dict[str, Any]]:
    """Add uploaded files (server paths of the uploads, named as the user named them)."""
    uploads = [Upload(display_name(Path(f).name), Path(f)) for f in (files or [])]
    if not uploads:
        return '<p class="rag-muted">Choose one or more .txt or .md files first.</p>', {"ok": False, "added": [],
                                                                                          "refused": [], "error": "no file given"}
    try:
        result = service.add_uploads(uploads, progress)
    except RagError as exc:
        message = f"the index was not changed: {exc}"
        return render.render_error(message), {"ok": False, "added": [], "refused": [], "error": message}
    return render.render_add_result(result), result.to_dict()
