"""What a new version's chunks and documents carry besides their text: vectors and
visibilities, BM25 terms, MinHash signatures. Each is taken from the version before where it
holds the same text and the :class:`BuildPlan` allows it, and computed otherwise, so that an
index changed step by step equals a fresh build of the same documents.

Used by :class:`rag.index.writer.IndexWriter` with the writer lock held; nothing here reads or
writes a store.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np

from rag.errors import IndexIncompatibleError
from rag.index.embedding import Embedder, load_embedder
from rag.index.heap import release_freed_memory, release_model_pages
from rag.index.lexical import BM25Index, ChunkTerms, TermsBuilder, tokenize
from rag.index.store import StoredIndex
from rag.ingest.neardup import Previous, signature
from rag.settings import IndexSettings
from rag.types import Document, Progress


@dataclass(frozen=True)
class BuildPlan:
    """What the new version is built with, and what of the old one may be reused."""

    model: str
    settings: IndexSettings
    fingerprint: str
    reuse_vectors: bool
    reuse_documents: bool
    embedder: Embedder | None
    refuse_mismatch: bool = False
    precision: str = "float32"


@dataclass(frozen=True)
class Vectors:
    """The vectors of a new version's chunks (row i is chunk i) and how they were made."""

    vectors: np.ndarray
    visibility: np.ndarray
    model: str
    dimension: int
    embedded: int  # chunks embedded now; the others took their vectors from the version before
    reused: bool  # False: nothing could be reused (a full rebuild)
    precision: str


def chunk_vectors(
    location: str, texts: list[str], plan: BuildPlan, prev: StoredIndex | None, progress: Progress
) -> Vectors:
    """Vectors and visibilities of ``texts``: reused by exact text from ``prev`` where the plan
    allows, embedded otherwise."""
    reuse = plan.reuse_vectors and prev is not None
    row_of: dict[str, int] = {}
    if reuse:
        assert prev is not None
        for c in prev.chunks:
            row_of.setdefault(c.text, c.chunk_id)
    unique = list(dict.fromkeys(texts))
    need = [t for t in unique if t not in row_of]
    need_visibility = reuse and prev is not None and prev.chunk_visibility is None
    emb = plan.embedder
    if need or need_visibility or not reuse:
        emb = emb or build_embedder(plan.model, plan.settings.batch_size, plan.precision)
        if reuse and prev is not None and emb.dimension != prev.manifest.dimension:
            message = (f"{location}: the index has dimension {prev.manifest.dimension}, model {emb.name!r} "
                       f"gives {emb.dimension}")
            if plan.refuse_mismatch:
                raise IndexIncompatibleError(f"{message}: rebuild needed (python -m rag build --full, or full=True)")
            reuse, row_of, need = False, {}, unique
    if emb is not None:
        name, dim = emb.name, emb.dimension
    else:
        assert prev is not None
        name, dim = prev.manifest.model, prev.manifest.dimension
    # the new vectors go straight into one array (a dict of row views kept every batch alive and
    # the final copy doubled them: 2 x 154 MB at 100k chunks)
    fresh_row = {t: i for i, t in enumerate(need)}
    fresh = np.zeros((len(need), dim), dtype=np.float32)
    fresh_vis = np.zeros(len(need), dtype=np.float64)
    if need:
        assert emb is not None
        step = max(1, plan.settings.batch_size * 4)
        for s in range(0, len(need), step):
            progress("embed", s, len(need))
            batch = need[s:s + step]
            fresh[s:s + len(batch)] = emb.encode(batch, kind="passage")
            fresh_vis[s:s + len(batch)] = [round(float(w), 6) for w in emb.visibility(batch)]
            release_freed_memory()  # the batch's activations (rag.index.heap)
            release_model_pages()  # the word-embedding rows it looked up (rag.index.heap)
        progress("embed", len(need), len(need))
    new_vis: dict[str, float] = {}
    if need_visibility and reuse:
        assert emb is not None
        old = [t for t in unique if t in row_of]
        for t, w in zip(old, emb.visibility(old)):
            new_vis.setdefault(t, round(float(w), 6))
    if len(need) == len(texts):  # every text new and distinct (a full build): already in order
        vectors, visibility = fresh, fresh_vis
    else:
        vectors = np.zeros((len(texts), dim), dtype=np.float32)
        visibility = np.zeros(len(texts), dtype=np.float64)
        for i, t in enumerate(texts):
            row = fresh_row.get(t)
            if row is not None:
                vectors[i] = fresh[row]
                visibility[i] = fresh_vis[row]
                continue
            assert prev is not None
            vectors[i] = prev.vectors[row_of[t]]
            if t in new_vis:
                visibility[i] = new_vis[t]
            else:
                assert prev.chunk_visibility is not None
                visibility[i] = prev.chunk_visibility[row_of[t]]
    embedded = sum(1 for t in texts if t in fresh_row)
    precision = getattr(emb, "precision", "float32") if emb is not None else plan.precision
    return Vectors(vectors, visibility, name, dim, embedded, reuse, precision)


_EMBEDDERS: dict[tuple[str, int, str], Embedder] = {}
_EMBEDDERS_LOCK = threading.Lock()


def build_embedder(model: str, batch_size: int, precision: str) -> Embedder:
    """The model for a build, loaded once per process (a load is 2-5 s: measured as most of a
    small build's time in ``benchmarks/bench_build.py``); the packaged models' weights were
    verified when it was loaded."""
    key = (model, batch_size, precision)
    with _EMBEDDERS_LOCK:
        if key not in _EMBEDDERS:
            _EMBEDDERS[key] = load_embedder(model, batch_size=batch_size, precision=precision)
        return _EMBEDDERS[key]


def chunk_tokens(texts: list[str], prev: StoredIndex | None, progress: Progress) -> ChunkTerms:
    """BM25 term ids of each chunk text: from ``prev`` for texts it holds (its vocabulary is
    kept, so its ids stay valid), tokenised otherwise. Terms are ids as they are made, never a
    list of strings per chunk (:mod:`rag.index.lexical`)."""
    prev_terms = prev.tokens if prev is not None else None
    builder = TermsBuilder(prev_terms.vocabulary if prev_terms is not None else ())
    known: dict[str, np.ndarray] = {}
    if prev is not None and prev_terms is not None:
        known = {c.text: prev_terms.row(i) for i, c in enumerate(prev.chunks)}
    for i, t in enumerate(texts):
        if i % 256 == 0:
            progress("bm25", i, len(texts))
        ids = known.get(t)
        builder.append(ids if ids is not None else builder.encode(tokenize(t)))  # new rows are not kept twice
    progress("bm25", len(texts), len(texts))
    terms = builder.build()
    release_freed_memory()  # the per-chunk rows and the tokeniser's strings (rag.index.heap)
    return terms


def fit_bm25(tokens: ChunkTerms) -> BM25Index:
    bm25 = BM25Index.fit_terms(tokens)
    release_freed_memory()
    return bm25


def near_previous(prev: StoredIndex | None) -> Previous | None:
    """The index before and its near-duplicates, so that only what changed is compared again."""
    if prev is None or prev.signatures is None or len(prev.signatures) != len(prev.documents):
        return None
    return Previous(tuple(prev.documents), tuple(d.text for d in prev.documents.values()), prev.signatures,
                    prev.manifest.near_duplicates)


def document_signatures(primaries: list[Document], prev: StoredIndex | None) -> np.ndarray:
    """MinHash signatures of ``primaries`` (rows in their order): from ``prev`` by exact text."""
    known: dict[str, np.ndarray] = {}
    if prev is not None and prev.signatures is not None:
        for row, d in enumerate(prev.documents.values()):
            known[d.text] = prev.signatures[row]
    out = np.empty((len(primaries), len(signature(""))), dtype=np.uint64)
    for i, d in enumerate(primaries):
        out[i] = known[d.text] if d.text in known else signature(d.text)
    return out


__all__ = ["BuildPlan", "Vectors", "build_embedder", "chunk_tokens", "chunk_vectors", "document_signatures",
           "fit_bm25", "near_previous"]
