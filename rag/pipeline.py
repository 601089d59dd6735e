"""The public API: build an index from documents, load it, search, ask, read documents."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from rag import environment
from rag.encoder.e5_runtime import E5Embedder
from rag.index.embedding import (TEST_HASH, Embedder, SentenceTransformerEmbedder, canonical_name,
                        load_query_embedder)
from rag.errors import IndexIncompatibleError, QueryError, SourceNotFoundError
from rag.index.inputs import Paths, clean_raw
from rag.index.writer import IndexWriter
from rag.ingest.loaders import read_document
from rag.answer.reader import Reader
from rag.index.collection import Collection
from rag.index.retriever import dense_gate
from rag.settings import (IndexSettings, Settings, SpanAnswerSettings, WindowSettings, check_k, check_mode,
                          index_settings)
from rag.answer.conversation import Conversation, Turn, mentions, names_someone_else
from rag.answer.decision import consider, decide
from rag.answer.span_answer import SpanAnswerer
from rag.index.folder_store import FolderStore, open_store
from rag.index.store import Manifest
from rag.index.store_api import Store
from rag.types import Answer, Document, Hit, IndexInfo, Progress

MAX_QUESTION_CHARS = 2000


def clean_file(path: str | os.PathLike[str], settings: Settings | IndexSettings | None = None) -> Document:
    """Read (decode or extract) and clean one file (what ``rag clean FILE`` shows)."""
    limits = index_settings(settings) or IndexSettings()
    return clean_raw(read_document(path, max_bytes=limits.max_file_bytes))


def build_index(
    paths: Paths,
    index_dir: str | os.PathLike[str] = "index",
    model: str | None = None,
    *,
    settings: Settings | IndexSettings | None = None,
    embedder: Embedder | None = None,
    progress: Progress | None = None,
    strict: bool = False,
    full: bool = False,
    precision: str | None = None,
) -> IndexInfo:
    """Make the index hold exactly the files and folders in ``paths`` (one path, ``str`` or
    ``os.PathLike``, or a sequence of them; other types raise ``TypeError``), incrementally.

    Only new and changed documents are embedded; removed ones are dropped (see
    :meth:`rag.IndexWriter.sync`, which returns the full :class:`BuildReport`). ``full=True``
    re-reads and re-embeds everything. An index built with another model or chunking is rebuilt
    in full. ``model=None`` and ``settings=None`` mean the existing index's, or the defaults for a
    new one (of a :class:`Settings`, its ``index`` part counts). ``precision``
    (:mod:`rag.encoder.precision`: "float32", "bf16", "int8"; default ``RAG_PRECISION``, else the
    existing index's, else what this CPU runs best) is recorded in the manifest; an index built at
    another one is rebuilt in full.

    Files that cannot be used are skipped with their reason (see ``IndexInfo.skipped``);
    with ``strict=True`` the first one raises instead. A build that yields no chunks raises
    :class:`NoDocumentsError` and leaves any existing index untouched.
    """
    writer = IndexWriter(index_dir, model=model, settings=settings, embedder=embedder, precision=precision,
                         progress=progress)
    return writer.sync(paths, strict=strict, full=full).info


def check_question(question: object) -> str:
    """``question`` when it is usable text; else :class:`QueryError` says why."""
    if not isinstance(question, str) or not question.strip():
        raise QueryError("the question is empty")
    if len(question) > MAX_QUESTION_CHARS:
        raise QueryError(f"the question is {len(question)} characters long; the limit is {MAX_QUESTION_CHARS}")
    try:
        question.encode("utf-8")
    except UnicodeEncodeError as exc:  # a lone surrogate: not text any encoder or tokenizer takes
        raise QueryError(
            f"the question contains a lone surrogate (U+{ord(question[exc.start]):04X} at position {exc.start}), "
            "which is not valid text"
        ) from None
    return question


def check_query(question: object, k: object, mode: object) -> tuple[int, str | None]:
    """Check a question and its ``k`` and ``mode`` (in that order) as :meth:`QA.ask` does,
    without an index; returns ``k`` as an int and the mode."""
    check_question(question)
    return check_k(k), check_mode(mode)


class QA:
    """A loaded index: search it, ask it, read its documents.

    ``settings``: what it answers with: ``index`` from the manifest, the other parts the
    defaults (:mod:`rag.settings`), ``windows`` those of the span reader's model card once
    :func:`load` has loaded one."""

    def __init__(self, index_dir: Path | str, collection: Collection, embedder: Embedder,
                 span: SpanAnswerer | None = None) -> None:
        """``index_dir``: the index folder, or a database index's URL (password masked);
        ``collection``: the published version (:mod:`rag.index.collection`)."""
        self.index_dir = index_dir
        self.collection = collection
        self.manifest: Manifest = collection.manifest
        self.settings: Settings = Settings(index=collection.manifest.settings)
        self.embedder = embedder
        # Set when the published version was unreadable and the previous good one was loaded.
        self.warning = collection.warning
        self.retriever = collection.searcher(embedder, self.settings.index)
        self.reader = Reader(
            collection.documents,
            collection.document_frequency,
            collection.chunk_count,
            embedder,
            collection.cjk_share(),
            self._dense_usable,
            self.settings.reader,
            mentions=collection.mentions,
        )
        # The learned span reader (None: answers are whole sentences from the sentence reader).
        self.span = span

    def close(self) -> None:
        """Release what the loaded index holds outside the process (a database index's
        connection); a closed QA of a database index reconnects when asked again."""
        close = getattr(self.collection, "close", None)
        if close is not None:
            close()

    def __enter__(self) -> "QA":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def version_path(self) -> Path:
        return self.collection.path

    def _dense_usable(self, question: str) -> bool:
        vis = min(float(self.embedder.visibility([question])[0]), self.manifest.visibility)
        return dense_gate(vis, self.settings.index) > 0.0

    def search(self, question: str, k: int = 5, mode: str | None = None) -> list[Hit]:
        """The ``k`` best chunks for ``question`` (``k`` from 1 to :data:`rag.settings.K_MAX`;
        ``mode`` one of :data:`rag.settings.MODES`, or None for the index's)."""
        k, mode = check_query(question, k, mode)
        return self.retriever.search(question, k=k, mode=mode)

    def ask(self, question: str, k: int = 5, mode: str | None = None) -> Answer:
        """An extractive answer with citations, or ``found=False`` when the documents do not answer."""
        k, mode = check_query(question, k, mode)
        hits = self.retriever.search(question, k=k, mode=mode)
        return decide(consider(question, hits, self.reader, self.span), self.span)  # one place decides

    def conversation(self, turns: Sequence[Turn] = ()) -> Conversation:
        """A conversation: its ``ask(question, k, mode)`` answers follow-up questions ("他认为…？",
        "What did he say?") from what the earlier turns established (:mod:`rag.answer.conversation`);
        ``turns`` continues one (``conversation.turns`` of an earlier one)."""
        return Conversation(self.ask, turns, ask_about=self.ask_about)

    def ask_about(self, question: str, subject: str, k: int = 5, mode: str | None = None) -> Answer:
        """:meth:`ask`, for a question about ``subject`` (the person or thing a follow-up's pronoun
        stands for): when the answer's quote names another person and not the subject, but one of
        the sentence reader's best sentences names the subject, that sentence is quoted instead (the span is looked for
        inside it). Otherwise, and whenever the answer mentions the subject, exactly :meth:`ask`."""
        answer = self.ask(question, k=k, mode=mode)
        if not answer.found or not names_someone_else(answer.text, subject):
            return answer  # it names the subject, or no one (a sentence that says "she" or "it")
        k, mode = check_query(question, k, mode)
        hits = self.retriever.search(question, k=k, mode=mode)
        n = self.span.settings.alternatives if self.span is not None else 3
        about = [s for s in self.reader.answers(question, hits, max(n, 3)) if s.found and mentions(s.text, subject)]
        if not about:
            return answer
        if self.span is None:
            return about[0]
        # the quote stays on the sentence about the subject: no alternatives, no move elsewhere
        chosen = self.span.answer(question, hits, about[0], (), same_language=False)
        return chosen if chosen.found and mentions(chosen.text, subject) else answer

    def document(self, source: str) -> Document:
        """The cleaned document (``.text``, ``.report``) that citations point into."""
        try:
            return self.collection.documents[source]
        except KeyError:
            raise SourceNotFoundError(f"{source}: not in this index") from None

    def sources(self) -> list[str]:
        return list(self.collection.documents)

    @property
    def chunk_count(self) -> int:
        return self.collection.chunk_count


def load(
    index_dir: str | os.PathLike[str] | Store = "index",
    *,
    model: str | None = None,
    embedder: Embedder | None = None,
    verify: bool = True,
    reader: str | None = None,
    read_url: str | None = None,
) -> QA:
    """Load an index (a folder, a ``postgresql://`` URL, or any :class:`rag.index.store_api.Store`)
    and its model. A different ``model`` than the index's is refused. ``read_url``: a read
    replica of a database index to read from (writes always go to ``index_dir``).

    ``reader``: ``"span"`` answers with the learned span reader (short answer + its sentence),
    ``"sentence"`` with whole sentences only; ``None`` picks ``"span"`` for real embedding
    models and ``"sentence"`` for the ``test-hash`` test embedder. The span reader runs on the
    default multilingual encoder, shared with the retriever when the index uses it.
    """
    if reader not in (None, "span", "sentence"):
        raise QueryError(f"reader must be 'span' or 'sentence', not {reader!r}")
    if not isinstance(index_dir, Store):
        folder = os.fspath(index_dir) if isinstance(index_dir, (str, os.PathLike)) else None
        if not isinstance(folder, str):  # None, a number, bytes: not a folder name
            raise QueryError(f"the index folder must be a path (str or os.PathLike), not {type(index_dir).__name__}")
    store = open_store(index_dir, read_url=read_url)
    collection = store.collection(verify=verify)
    manifest = collection.manifest
    built_with = manifest.model
    if model is not None and canonical_name(model) != built_with:
        raise IndexIncompatibleError(
            f"{store.location}: index was built with model {built_with!r}, not {canonical_name(model)!r}: "
            "rebuild needed"
        )
    if embedder is None:
        embedder = load_query_embedder(built_with, batch_size=manifest.settings.batch_size,
                                       precision=manifest.precision)
    elif embedder.name != built_with:
        raise IndexIncompatibleError(
            f"{store.location}: index was built with model {built_with!r}, not {embedder.name!r}: rebuild needed"
        )
    elif getattr(embedder, "precision", "float32") != manifest.precision and built_with != TEST_HASH:
        raise IndexIncompatibleError(
            f"{store.location}: index vectors were computed in {manifest.precision}, the model given runs in "
            f"{getattr(embedder, 'precision', 'float32')}: rebuild needed (python -m rag build --full) or load it "
            "without a model"
        )
    if embedder.dimension != manifest.dimension:
        raise IndexIncompatibleError(
            f"{store.location}: index has dimension {manifest.dimension}, model {embedder.name!r} gives "
            f"{embedder.dimension}: rebuild needed"
        )
    if reader is None:
        reader = "span" if isinstance(embedder, (SentenceTransformerEmbedder, E5Embedder)) else "sentence"
    qa = QA(Path(store.location) if isinstance(store, FolderStore) else store.location, collection, embedder)
    if reader == "span":
        qa.span, windows = _span_answerer(embedder, collection.documents, qa.reader, qa.settings.span)
        qa.settings = dataclasses.replace(qa.settings, windows=windows)
    return qa


def _span_answerer(embedder: Embedder, documents: "Mapping[str, Document]", sentence_reader: Reader,
                   settings: SpanAnswerSettings) -> tuple[SpanAnswerer, WindowSettings]:
    """The span answerer and its reader's windows (its model card's); the reader from
    ``RAG_READER_DIR`` (:func:`rag.environment.reader_dir`), else the shipped one."""
    from rag.answer.span_reader import READER_DIR, SpanReader, calibration_of

    shared = embedder if isinstance(embedder, E5Embedder) else None
    span_reader = SpanReader.load(shared, environment.reader_dir() or READER_DIR)
    answerer = SpanAnswerer(span_reader, documents, calibration_of(span_reader.card), settings,
                            coverage=sentence_reader.coverage)
    return answerer, span_reader.settings
