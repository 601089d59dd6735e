"""What each UI event and API endpoint does, as plain functions over a :class:`QAService`.

Kept free of Gradio so that they can be tested and reused; :mod:`rag.ui.layout` wires them
to components and turns :class:`rag.RagError` into messages the user reads.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from rag.answer.conversation import Turn
from rag.errors import QueryError, RagError
from rag.settings import K_DEFAULT, K_MAX, K_MIN
from rag.types import Progress

from rag.ui import render
from rag.ui.service import QAService
from rag.ui.uploads import Upload, display_name

History = list[dict[str, Any]]

MAX_HISTORY = 50
"""The most earlier questions ``/ask`` takes (the last :data:`rag.answer.conversation.MAX_TURNS`
of them are asked again to understand the question)."""

EXAMPLES: tuple[str, ...] = (
    "前三季度规模以上工业增加值同比增长多少？",
    "國家技術轉移區域中心有幾個？",
    "How much did the total value of technology contracts reach in the first three quarters?",
)
"""Example questions from the seed article: Simplified, Traditional and English."""

__all__ = ["EXAMPLES", "K_DEFAULT", "K_MAX", "K_MIN", "add_files", "ask_json", "chat_reply", "converse_reply", "remove_document", "removable_choices", "documents_json",
           "documents_view", "progress_bar"]
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


def converse_reply(service: QAService, question: str, history: History | None, k: Any, mode: Any,
                   turns: Sequence[Turn] | None) -> tuple[History, str, tuple[Turn, ...]]:
    """:func:`chat_reply` as the next turn of the browser session's conversation (``turns``, kept
    in Gradio state): the question is understood from the turns before it, and how it was
    understood is shown under it. Returns the chat, the cleared box and the turns with this one."""
    history = list(history or [])
    turns = tuple(turns or ())
    q = (question or "").strip()
    if not q:
        return history, "", turns
    try:
        answer, turns = service.converse(q, turns, k=k, mode=mode)
        asked = render.render_question(q, answer.understood)
        reply = render.render_answer(answer, service.document_text)
    except RagError as exc:
        asked, reply = render.render_question(q), render.render_error(str(exc))
    history.append({"role": "user", "content": asked})
    history.append({"role": "assistant", "content": reply})
    return history, "", turns


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


def removable_choices(service: QAService) -> list[str]:
    """The documents the Documents tab offers to remove (those added through the chat)."""
    try:
        return service.removable()
    except RagError:
        return []


def remove_document(service: QAService, source: str | None) -> str:
    """Remove one uploaded document; the outcome in words (HTML)."""
    if not source:
        return '<p class="rag-muted">Choose a document to remove first. 请先选择要删除的文档。</p>'
    try:
        result = service.remove_document(source)
    except RagError as exc:
        return render.render_error(f"the index was not changed: {exc}")
    if not result.ok:
        return render.render_error(result.error or "the document was not removed")
    return (f'<p class="rag-good">✓ Removed {render.esc(result.source)}. The chat now uses the new index: '
            f"{result.documents} documents, {result.chunks} passages.</p>")


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
