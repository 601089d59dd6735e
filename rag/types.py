"""Frozen dataclasses that flow between the modules of :mod:`rag`.

Offsets (``start``/``end``) are always character offsets into the *cleaned* text of the
document named by ``source`` (see :class:`Document`), so that
``document.text[start:end] == quote`` holds for every :class:`Citation`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any, Protocol


@dataclass(frozen=True)
class Edit:
    """One change the cleaner made: ``original[start:end]`` became ``replacement``.

    ``start``/``end`` index the *original* (decoded) text; ``clean_start`` is where the
    replacement begins in the cleaned text.
    """

    start: int
    end: int
    removed: str
    replacement: str
    reason: str
    clean_start: int


@dataclass(frozen=True)
class CleaningReport:
    """What cleaning did to one document, and why; ``encoding`` is how its file was decoded
    (``""`` where unknown: a report made without a file). A :class:`Document` keeps it equal
    to its own ``encoding``, so documents stored before the field existed load with it."""

    source: str
    original_chars: int
    cleaned_chars: int
    edits: tuple[Edit, ...] = ()
    encoding: str = ""

    @property
    def removed_chars(self) -> int:
        return sum(len(e.removed) - len(e.replacement) for e in self.edits)

    def counts(self) -> dict[str, int]:
        """Number of edits per reason."""
        out: dict[str, int] = {}
        for e in self.edits:
            out[e.reason] = out.get(e.reason, 0) + 1
        return out

    def chars_by_reason(self) -> dict[str, int]:
        """Characters removed per reason (net of replacements)."""
        out: dict[str, int] = {}
        for e in self.edits:
            out[e.reason] = out.get(e.reason, 0) + len(e.removed) - len(e.replacement)
        return out

    def summary(self) -> str:
        parts = [
            f"{self.source}: {self.original_chars} -> {self.cleaned_chars} characters"
            + (f" (decoded as {self.encoding})" if self.encoding else "")
        ]
        counts = self.counts()
        chars = self.chars_by_reason()
        for reason in sorted(counts):
            parts.append(f"  {reason}: {counts[reason]} edit(s), {chars[reason]} character(s)")
        return "\n".join(parts)


@dataclass(frozen=True)
class Document:
    """A cleaned document. ``text`` is what citations point into."""

    source: str
    text: str
    report: CleaningReport
    sha256: str = ""
    encoding: str = "utf-8"

    def __post_init__(self) -> None:
        if self.report.encoding != self.encoding:  # the report names the encoding of its document
            object.__setattr__(self, "report", replace(self.report, encoding=self.encoding))


@dataclass(frozen=True)
class Chunk:
    """A piece of a document's cleaned text: ``document.text[start:end] == text``."""

    chunk_id: int
    source: str
    start: int
    end: int
    text: str


@dataclass(frozen=True)
class Hit:
    """A retrieved chunk with its fused score and the scores of each retriever."""

    chunk_id: int
    source: str
    text: str
    start: int
    end: int
    score: float
    bm25_score: float = 0.0
    dense_score: float = 0.0
    rank: int = 0


@dataclass(frozen=True)
class Citation:
    """A numbered quote of a document: ``document(source).text[start:end] == quote``."""

    n: int
    source: str
    chunk_id: int
    start: int
    end: int
    quote: str


@dataclass(frozen=True)
class Answer:
    """An extractive answer.

    ``text`` is the answering sentence(s) quoted from the documents, ``span`` the short
    answer inside it (or ``None``), ``citations`` where each quoted piece comes from.
    When the documents do not answer, ``found`` is False, ``text`` says so and
    ``citations`` is empty; ``passages`` still carries the closest hits for the user to judge.
    ``understood`` is set on a follow-up question of a conversation (:meth:`rag.QA.conversation`):
    the question as it was understood from the turns before it, which retrieval and reading used
    (``question`` stays the user's words); ``None`` when the question was asked as written.
    """

    question: str
    found: bool
    text: str
    span: str | None
    score: float
    citations: tuple[Citation, ...] = ()
    span_citation: Citation | None = None
    passages: tuple[Hit, ...] = field(default=())
    understood: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class IndexInfo:
    """What :func:`rag.build_index` built."""

    index_dir: str
    model: str
    dimension: int
    documents: int
    chunks: int
    seconds: float
    skipped: tuple[str, ...] = ()


class Progress(Protocol):
    """The one progress callback of the library: ``progress(stage, done, total)``.

    Called with ``done`` from 0 to ``total`` for each stage, ending with ``done == total``.
    An index write (:class:`rag.IndexWriter`) reports the stages ``read``, ``chunk``, ``embed``,
    ``bm25`` and ``write``; a caller that does more around it (the chat's uploads) reports its
    own stages through the same callback. The terminal shows it with
    :func:`rag.terminal.progress_printer`, the chat's progress bar adapts it
    (:func:`rag.ui.handlers.progress_bar`).
    """

    def __call__(self, stage: str, done: int, total: int, /) -> None: ...


def to_jsonable(obj: Any) -> Any:
    """Dataclasses (and tuples/lists of them) to plain JSON-able structures."""
    if hasattr(obj, "__dataclass_fields__"):
        return asdict(obj)
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(o) for o in obj]
    return obj
