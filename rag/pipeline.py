"""The public API: build an index from documents, load it, search, ask, read documents."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

from .e5_runtime import E5Embedder
from .embedding import Embedder, SentenceTransformerEmbedder, canonical_name, load_embedder, load_query_embedder
from .errors import IndexIncompatibleError, QueryError, SourceNotFoundError
from .lifecycle import BuildReport, Progress, add_texts, clean_raw, sync_index
from .loaders import read_document
from .reader import Reader, ReaderSettings, corpus_cjk_share
from .retriever import Retriever, dense_gate
from .settings import Settings
from .span_answer import SpanAnswerer
from .store import Manifest, load_index
from .types import Answer, Document, Hit, IndexInfo

MAX_QUESTION_CHARS = 2000


def clean_file(path: str | os.PathLike[str], settings: Settings | None = None) -> Document:
    """Read (decode or extract) and clean one file (what ``rag clean FILE`` shows)."""
    settings = settings or Settings()
    return clean_raw(read_document(path, max_bytes=settings.max_file_bytes))


def build_index(
    paths: Sequence[str | os.PathLike[str]],
    index_dir: str | os.PathLike[str] = "index",
    model: str | None = None,
    *,
    settings: Settings | None = None,
    embedder: Embedder | None = None,
    progress: Progress | None = None,
    strict: bool = False,
    full: bool = False,
) -> IndexInfo:
    """Make the index hold exactly the files and folders in ``paths``, incrementally.

    Only new and changed documents are embedded; removed ones are dropped (see
    :func:`rag.lifecycle.sync_index`). ``full=True`` re-reads and re-embeds everything. An
    index built with another model or chunking is rebuilt in full. ``model=None`` and
    ``settings=None`` mean the existing index's, or the defaults for a new one.

    Files that cannot be used are skipped with their reason (see ``IndexInfo.skipped``);
    with ``strict=True`` the first one raises instead. A build that yields no chunks raises
    :class:`NoDocumentsError` and leaves any existing index untouched.
    """
    return build_index_report(
        paths, index_dir, model, settings=settings, embedder=embedder, progress=progress, strict=strict, full=full
    ).info


def build_index_report(
    paths: Sequence[str | os.PathLike[str]],
    index_dir: str | os.PathLike[str] = "index",
    model: str | None = None,
    *,
    settings: Settings | None = None,
    embedder: Embedder | None = None,
    progress: Progress | None = None,
    strict: bool = False,
    full: bool = False,
    lock_timeout: float | None = None,
) -> BuildReport:
    """:func:`build_index`, returning the full :class:`BuildReport` (refused files with
    reasons, what was added, updated, removed, duplicates, near-duplicates, reuse counts)."""
    return sync_index(paths, index_dir, model, settings=settings, embedder=embedder, progress=progress,
                      strict=strict, full=full, lock_timeout=lock_timeout)


def build_index_from_texts(
    items: Iterable[tuple[str, str]],
    index_dir: str | os.PathLike[str] = "index",
    model: str | None = None,
    *,
    settings: Settings | None = None,
    embedder: Embedder | None = None,
    progress: Progress | None = None,
    full: bool = False,
) -> IndexInfo:
    """Index in-memory texts given as (source name, text) pairs: the index holds exactly them
    (incrementally, like :func:`build_index`)."""
    return add_texts(items, index_dir, model, progress, settings=settings, embedder=embedder,
                     replace_all=True, full=full).info


class QA:
    """A loaded index: search it, ask it, read its documents."""

    def __init__(self, index_dir: Path, stored: "object", embedder: Embedder, span: SpanAnswerer | None = None) -> None:
        from .store import StoredIndex

        assert isinstance(stored, StoredIndex)
        self.index_dir = index_dir
        self._stored = stored
        self.manifest: Manifest = stored.manifest
        self.settings: Settings = stored.manifest.settings
        self.embedder = embedder
        # Set when the published version was unreadable and the previous good one was loaded.
        self.warning = stored.warning
        self.retriever = Retriever(
            stored.chunks, stored.vectors, stored.faiss_index, stored.bm25, embedder, self.settings,
            stored.manifest.visibility,
        )
        self.reader = Reader(
            stored.documents,
            stored.bm25.document_frequency,
            len(stored.chunks),
            embedder,
            corpus_cjk_share(stored.documents),
            self._dense_usable,
            ReaderSettings(),
        )
        # The learned span reader (None: answers are whole sentences from the sentence reader).
        self.span = span

    @property
    def version_path(self) -> Path:
        return self._stored.path

    def _dense_usable(self, question: str) -> bool:
        vis = min(float(self.embedder.visibility([question])[0]), self.manifest.visibility)
        return dense_gate(vis, self.settings) > 0.0

    def _check(self, question: str, k: int) -> None:
        if not isinstance(question, str) or not question.strip():
            raise QueryError("the question is empty")
        if len(question) > MAX_QUESTION_CHARS:
            raise QueryError(f"the question is {len(question)} characters long; the limit is {MAX_QUESTION_CHARS}")
        if not isinstance(k, int) or k < 1 or k > 100:
            raise QueryError(f"k must be an integer from 1 to 100, got {k!r}")

    def search(self, question: str, k: int = 5, mode: str | None = None) -> list[Hit]:
        """The ``k`` best chunks for ``question``."""
        self._check(question, k)
        return self.retriever.search(question, k=k, mode=mode)

    def ask(self, question: str, k: int = 5, mode: str | None = None) -> Answer:
        """An extractive answer with citations, or ``found=False`` when the documents do not answer."""
        self._check(question, k)
        hits = self.retriever.search(question, k=k, mode=mode)
        if self.span is None:
            return self.reader.read(question, hits)
        sentences = self.reader.answers(question, hits, self.span.settings.alternatives)
        if not sentences[0].found and self.reader.names_unknown(question, hits):
            # it asks about what the documents never mention: no reader can answer (confidence 0,
            # as calibrate_reader.py counts it)
            return dataclasses.replace(sentences[0], score=0.0)
        return self.span.answer(question, hits, sentences[0], sentences[1:],
                                same_language=not self.reader.across_languages(question, hits))

    def document(self, source: str) -> Document:
        """The cleaned document (``.text``, ``.report``) that citations point into."""
        try:
            return self._stored.documents[source]
        except KeyError:
            raise SourceNotFoundError(f"{source}: not in this index") from None

    def sources(self) -> list[str]:
        return list(self._stored.documents)

    @property
    def chunk_count(self) -> int:
        return len(self._stored.chunks)


def load(
    index_dir: str | os.PathLike[str] = "index",
    *,
    model: str | None = None,
    embedder: Embedder | None = None,
    verify: bool = True,
    reader: str | None = None,
) -> QA:
    """Load an index and its model. A different ``model`` than the index's is refused.

    ``reader``: ``"span"`` answers with the learned span reader (short answer + its sentence),
    ``"sentence"`` with whole sentences only; ``None`` picks ``"span"`` for real embedding
    models and ``"sentence"`` for the ``test-hash`` test embedder. The span reader runs on the
    default multilingual encoder, shared with the retriever when the index uses it.
    """
    if reader not in (None, "span", "sentence"):
        raise QueryError(f"reader must be 'span' or 'sentence', not {reader!r}")
    path = Path(index_dir)
    stored = load_index(path, verify=verify)
    built_with = stored.manifest.model
    if model is not None and canonical_name(model) != built_with:
        raise IndexIncompatibleError(
            f"{path}: index was built with model {built_with!r}, not {canonical_name(model)!r}: rebuild needed"
        )
    if embedder is None:
        embedder = load_query_embedder(built_with, batch_size=stored.manifest.settings.batch_size)
    elif embedder.name != built_with:
        raise IndexIncompatibleError(
            f"{path}: index was built with model {built_with!r}, not {embedder.name!r}: rebuild needed"
        )
    if embedder.dimension != stored.manifest.dimension:
        raise IndexIncompatibleError(
            f"{path}: index has dimension {stored.manifest.dimension}, model {embedder.name!r} gives "
            f"{embedder.dimension}: rebuild needed"
        )
    if reader is None:
        reader = "span" if isinstance(embedder, (SentenceTransformerEmbedder, E5Embedder)) else "sentence"
    qa = QA(path, stored, embedder)
    if reader == "span":
        qa.span = _span_answerer(embedder, stored.documents, qa.reader)
    return qa


def _span_answerer(embedder: Embedder, documents: "dict[str, Document]", sentence_reader: Reader) -> SpanAnswerer:
    from .span_reader import READER_DIR, SpanReader, calibration_of

    shared = embedder if isinstance(embedder, E5Embedder) else None
    folder = Path(os.environ["RAG_READER_DIR"]) if os.environ.get("RAG_READER_DIR") else READER_DIR
    span_reader = SpanReader.load(shared, folder)
    return SpanAnswerer(span_reader, documents, calibration_of(span_reader.card), coverage=sentence_reader.coverage)
