"""The public API: build an index from documents, load it, search, ask, read documents."""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .chunking import chunk_document
from .clean import clean_text
from .embedding import Embedder, canonical_name, load_embedder
from .errors import DocumentError, IndexIncompatibleError, NoDocumentsError, QueryError, SourceNotFoundError
from .lexical import BM25Index
from .loaders import collect_paths, read_document
from .reader import Reader, ReaderSettings, corpus_cjk_share
from .retriever import Retriever, dense_gate
from .settings import Settings
from .store import Manifest, load_index, write_index
from .types import Answer, Chunk, Document, Hit, IndexInfo

Progress = Callable[[str, int, int], None]
"""Progress callback: (stage, done, total)."""

MAX_QUESTION_CHARS = 2000


@dataclass(frozen=True)
class BuildReport:
    """Documents built and the files refused, each with its reason."""

    info: IndexInfo
    errors: tuple[DocumentError, ...]


def _noop(stage: str, done: int, total: int) -> None:
    return None


def clean_file(path: str | os.PathLike[str], settings: Settings | None = None) -> Document:
    """Read and clean one file (what ``rag clean FILE`` shows)."""
    settings = settings or Settings()
    raw = read_document(path, max_bytes=settings.max_file_bytes)
    doc = clean_text(raw.text, raw.source)
    return Document(doc.source, doc.text, doc.report, raw.sha256, raw.encoding)


def build_index(
    paths: Sequence[str | os.PathLike[str]],
    index_dir: str | os.PathLike[str] = "index",
    model: str | None = None,
    *,
    settings: Settings | None = None,
    embedder: Embedder | None = None,
    progress: Progress | None = None,
    strict: bool = False,
) -> IndexInfo:
    """Read, clean, chunk, embed and index the files and folders in ``paths``.

    Files that cannot be used are skipped with their reason (see ``IndexInfo.skipped``);
    with ``strict=True`` the first one raises instead. A build that yields no chunks raises
    :class:`NoDocumentsError` and leaves any existing index untouched.
    """
    return build_index_report(
        paths, index_dir, model, settings=settings, embedder=embedder, progress=progress, strict=strict
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
) -> BuildReport:
    settings = settings or Settings()
    progress = progress or _noop
    files, errors = collect_paths(paths)
    if strict and errors:
        raise errors[0]
    docs: list[Document] = []
    for i, f in enumerate(files):
        progress("read", i, len(files))
        try:
            docs.append(clean_file(f, settings))
        except DocumentError as exc:
            if strict:
                raise
            errors.append(exc)
    progress("read", len(files), len(files))
    info = _build(docs, Path(index_dir), model, settings, embedder, progress, [e.path for e in errors])
    return BuildReport(info, tuple(errors))


def build_index_from_texts(
    items: Iterable[tuple[str, str]],
    index_dir: str | os.PathLike[str] = "index",
    model: str | None = None,
    *,
    settings: Settings | None = None,
    embedder: Embedder | None = None,
    progress: Progress | None = None,
) -> IndexInfo:
    """Index in-memory texts given as (source name, text) pairs."""
    settings = settings or Settings()
    docs = []
    for source, text in items:
        doc = clean_text(text, source)
        sha = hashlib.sha256(text.encode("utf-8")).hexdigest()
        docs.append(Document(doc.source, doc.text, doc.report, sha, "utf-8"))
    return _build(docs, Path(index_dir), model, settings, embedder, progress or _noop, [])


def _build(
    docs: list[Document],
    index_dir: Path,
    model: str | None,
    settings: Settings,
    embedder: Embedder | None,
    progress: Progress,
    skipped: list[str],
) -> IndexInfo:
    t0 = time.perf_counter()
    seen: dict[str, Document] = {}
    for d in docs:
        if d.source in seen:
            continue
        seen[d.source] = d
    docs = list(seen.values())
    chunks: list[Chunk] = []
    for i, d in enumerate(docs):
        progress("chunk", i, len(docs))
        chunks.extend(chunk_document(d, chunk_chars=settings.chunk_chars, overlap=settings.chunk_overlap, first_id=len(chunks)))
    progress("chunk", len(docs), len(docs))
    if not chunks:
        raise NoDocumentsError(
            "nothing to index: no readable document with text"
            + (f" (skipped: {', '.join(skipped)})" if skipped else "")
        )
    emb = embedder or load_embedder(model, batch_size=settings.batch_size)
    texts = [c.text for c in chunks]
    vectors = np.zeros((len(texts), emb.dimension), dtype=np.float32)
    step = max(1, settings.batch_size * 4)
    for s in range(0, len(texts), step):
        progress("embed", s, len(texts))
        vectors[s:s + step] = emb.encode(texts[s:s + step], kind="passage")
    progress("embed", len(texts), len(texts))
    progress("bm25", 0, 1)
    bm25 = BM25Index.fit(texts)
    progress("bm25", 1, 1)
    sample = texts if len(texts) <= 2000 else [texts[i] for i in np.linspace(0, len(texts) - 1, 2000).astype(int)]
    visibility = float(np.mean(emb.visibility(sample))) if sample else 1.0
    progress("write", 0, 1)
    seconds = time.perf_counter() - t0
    version = write_index(
        index_dir,
        model=emb.name,
        dimension=emb.dimension,
        settings=settings,
        documents=docs,
        chunks=chunks,
        vectors=vectors,
        bm25=bm25,
        visibility=visibility,
        build_seconds=seconds,
    )
    progress("write", 1, 1)
    return IndexInfo(str(version), emb.name, emb.dimension, len(docs), len(chunks), round(seconds, 3), tuple(skipped))


class QA:
    """A loaded index: search it, ask it, read its documents."""

    def __init__(self, index_dir: Path, stored: "object", embedder: Embedder) -> None:
        from .store import StoredIndex

        assert isinstance(stored, StoredIndex)
        self.index_dir = index_dir
        self._stored = stored
        self.manifest: Manifest = stored.manifest
        self.settings: Settings = stored.manifest.settings
        self.embedder = embedder
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
        return self.reader.read(question, hits)

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
) -> QA:
    """Load an index and its model. A different ``model`` than the index's is refused."""
    path = Path(index_dir)
    stored = load_index(path, verify=verify)
    built_with = stored.manifest.model
    if model is not None and canonical_name(model) != built_with:
        raise IndexIncompatibleError(
            f"{path}: index was built with model {built_with!r}, not {canonical_name(model)!r}: rebuild needed"
        )
    if embedder is None:
        embedder = load_embedder(built_with, batch_size=stored.manifest.settings.batch_size)
    elif embedder.name != built_with:
        raise IndexIncompatibleError(
            f"{path}: index was built with model {built_with!r}, not {embedder.name!r}: rebuild needed"
        )
    if embedder.dimension != stored.manifest.dimension:
        raise IndexIncompatibleError(
            f"{path}: index has dimension {stored.manifest.dimension}, model {embedder.name!r} gives "
            f"{embedder.dimension}: rebuild needed"
        )
    return QA(path, stored, embedder)
