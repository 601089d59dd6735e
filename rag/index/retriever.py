"""Hybrid search: BM25 and dense retrieval, fused by a gated, weighted score combination.

The dense side's weight is scaled by how much of the text the model can actually see: a
model that reads Chinese as ``[UNK]`` (all-MiniLM-L6-v2) gets no say on Chinese text, so
fusion is never dragged below its lexical part. Scores of each side are normalised over the
candidate set (max-scaled BM25, min-max cosine) before they are combined.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rag.index.embedding import Embedder
from rag.errors import QueryError
from rag.index.lexical import BM25Index
from rag.settings import MODES, IndexSettings
from rag.types import Chunk, Hit


@dataclass(frozen=True)
class QueryVector:
    """A query's embedding and the share of its tokens the model knows."""

    vector: np.ndarray
    visibility: float


def dense_gate(visibility: float, settings: IndexSettings) -> float:
    """0 when the model sees too little of the text, 1 when it sees nearly all of it."""
    lo, hi = settings.visibility_floor, settings.visibility_full
    if hi <= lo:
        return 1.0 if visibility >= lo else 0.0
    return float(np.clip((visibility - lo) / (hi - lo), 0.0, 1.0))


def query_vector(embedder: Embedder, query: str, corpus_visibility: float, settings: IndexSettings, *,
                 force: bool = False) -> QueryVector | None:
    """The query's vector, or None in hybrid search when the model cannot see enough of the
    query or corpus for its vote to count (then it is not worth computing); ``force``: always."""
    vis = float(embedder.visibility([query])[0])
    if not force and dense_gate(min(vis, corpus_visibility), settings) <= 0.0:
        return None
    return QueryVector(embedder.encode([query], kind="query")[0], vis)


def dense_weight(qv: QueryVector | None, corpus_visibility: float, settings: IndexSettings) -> float:
    """The dense side's weight in fusion for this query (0 without a query vector)."""
    if qv is None:
        return 0.0
    return settings.dense_weight * dense_gate(min(qv.visibility, corpus_visibility), settings)


class Retriever:
    """Searches one loaded index."""

    def __init__(
        self,
        chunks: tuple[Chunk, ...],
        vectors: np.ndarray,
        faiss_index: object,
        bm25: BM25Index,
        embedder: Embedder,
        settings: IndexSettings,
        corpus_visibility: float,
    ) -> None:
        self.chunks = chunks
        self.vectors = vectors
        self._faiss = faiss_index
        self.bm25 = bm25
        self.embedder = embedder
        self.settings = settings
        self.corpus_visibility = corpus_visibility

    def embed_query(self, query: str, settings: IndexSettings | None = None, *,
                    force: bool = False) -> QueryVector | None:
        """The query's vector, or None in hybrid search when the model cannot see enough
        of the query or corpus for its vote to count (then it is not worth computing)."""
        return query_vector(self.embedder, query, self.corpus_visibility, settings or self.settings, force=force)

    def dense_weight(self, qv: QueryVector | None, settings: IndexSettings) -> float:
        return dense_weight(qv, self.corpus_visibility, settings)

    def search(self, query: str, k: int = 5, mode: str | None = None,
               settings: IndexSettings | None = None) -> list[Hit]:
        settings = settings or self.settings
        mode = checked_mode(query, k, mode or settings.mode)
        n = len(self.chunks)
        if n == 0:
            return []
        k = min(k, n)
        n_cand = min(n, max(settings.candidates, 4 * k))

        lex = self.bm25.scores(query).scores if mode in ("hybrid", "bm25") else None
        qv = self.embed_query(query, settings, force=mode == "dense") if mode in ("hybrid", "dense") else None

        if mode == "bm25":
            assert lex is not None
            return self._hits(self._matching(lex, k), lex, None, lex)
        if mode == "dense":
            assert qv is not None
            ids, sims = self._dense_top(qv.vector, k)
            return [self._hit(int(i), float(s), 0.0, float(s), r) for r, (i, s) in enumerate(zip(ids, sims))]

        assert lex is not None
        w = self.dense_weight(qv, settings)
        if qv is None or w <= 0.0:
            return self._hits(self._matching(lex, k), lex, None, lex)
        cand = set(self._matching(lex, n_cand).tolist())
        d_ids, _ = self._dense_top(qv.vector, n_cand)
        cand.update(int(i) for i in d_ids)
        ids = np.fromiter(cand, dtype=np.int64)
        dense = self.vectors[ids] @ qv.vector
        lex_c = lex[ids]
        fused = fuse(lex_c, dense, w)
        order = np.argsort(-fused, kind="stable")[:k]
        return [
            self._hit(int(ids[j]), float(fused[j]), float(lex_c[j]), float(dense[j]), r)
            for r, j in enumerate(order)
        ]

    def _matching(self, scores: np.ndarray, k: int) -> np.ndarray:
        """The ``k`` best chunks by BM25 among those sharing a term with the query (a chunk
        that shares none is no lexical result, and would only shift the dense side's
        normalisation over the candidates): what a store with an inverted index finds too."""
        top = self._top(scores, k)
        return top[scores[top] > 0]

    def _top(self, scores: np.ndarray, k: int) -> np.ndarray:
        if k >= len(scores):
            return np.argsort(-scores, kind="stable")
        part = np.argpartition(-scores, k - 1)[:k]
        return part[np.argsort(-scores[part], kind="stable")]

    def _dense_top(self, vec: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        sims, ids = self._faiss.search(vec.reshape(1, -1).astype(np.float32), k)  # type: ignore[attr-defined]
        keep = ids[0] >= 0
        return ids[0][keep], sims[0][keep]

    def _hits(self, ids: np.ndarray, fused: np.ndarray, dense: np.ndarray | None, lex: np.ndarray) -> list[Hit]:
        return [
            self._hit(int(i), float(fused[i]), float(lex[i]), float(dense[i]) if dense is not None else 0.0, r)
            for r, i in enumerate(ids)
        ]

    def _hit(self, i: int, score: float, bm25: float, dense: float, rank: int) -> Hit:
        c = self.chunks[i]
        return Hit(c.chunk_id, c.source, c.text, c.start, c.end, score, bm25, dense, rank + 1)


def checked_mode(query: str, k: int, mode: str) -> str:
    """``mode``, once the search's arguments are known to be valid (:class:`QueryError` otherwise)."""
    if mode not in MODES:
        raise QueryError(f"unknown retrieval mode {mode!r}; choose one of {', '.join(MODES)}")
    if k < 1:
        raise QueryError(f"k must be at least 1, got {k}")
    if not query.strip():
        raise QueryError("the question is empty")
    return mode


def fuse(lexical: np.ndarray, dense: np.ndarray, w: float) -> np.ndarray:
    """The fused score of candidates from their BM25 and cosine scores: ``(1 - w)`` of the
    max-scaled BM25 plus ``w`` of the min-max-scaled cosine, both over the candidate set."""
    return (1.0 - w) * _max_scale(lexical) + w * _min_max(dense)


def _max_scale(x: np.ndarray) -> np.ndarray:
    m = float(x.max()) if len(x) else 0.0
    return x / m if m > 0 else np.zeros_like(x)


def _min_max(x: np.ndarray) -> np.ndarray:
    if not len(x):
        return x
    lo, hi = float(x.min()), float(x.max())
    return (x - lo) / (hi - lo) if hi > lo else np.zeros_like(x)
