"""BM25 for an index whose chunks are not in memory (the database store): per-term postings
with their BM25 contributions ("impacts"), and the exact score of a few chunks from their term ids.

The arithmetic is bm25s's "lucene" BM25 as :func:`rag.index.lexical.score_matrix` computes it
(float32 idf, float64 term-frequency part, float32 products summed in float32 in the query's
term order), so a chunk scores here what it scores in the folder store's BM25 (tested).

* :func:`impact_heads`: for each term, the chunks holding it and their impacts, highest first,
  at most ``head`` of them. A search sums the heads of the question's terms to propose
  candidates; the rest of a long list holds only the chunks where a frequent term (low idf)
  counts least.
* :func:`exact_scores`: the BM25 score of candidate chunks from their term ids, the corpus's
  document frequencies and its mean chunk length: the candidates' ranking is exact.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from rag.index.lexical import ChunkTerms, score_matrix

#: bm25s's defaults (``bm25s.BM25()``), which the folder store's BM25 uses
K1 = 1.5
B = 0.75


@dataclass(frozen=True)
class LexicalStats:
    """What BM25 needs of a corpus besides document frequencies."""

    chunks: int
    mean_terms: float
    k1: float = K1
    b: float = B


def corpus_stats(terms: ChunkTerms) -> LexicalStats:
    """The chunk count and mean chunk length (an empty chunk counts as one term, as in bm25s)."""
    lengths = np.maximum(np.diff(terms.offsets), 1)
    return LexicalStats(len(lengths), float(lengths.mean()) if len(lengths) else 1.0)


@dataclass(frozen=True, eq=False)
class Impacts:
    """Every chunk's BM25 contribution per term (CSC over the vocabulary: term ``t``'s chunks are
    ``chunks[starts[t]:starts[t + 1]]``), and each term's document frequency."""

    impacts: np.ndarray
    chunks: np.ndarray
    starts: np.ndarray
    df: np.ndarray


def impacts(terms: ChunkTerms, stats: LexicalStats) -> Impacts:
    """:func:`rag.index.lexical.score_matrix` over the vocabulary of ``terms`` as it is."""
    n_vocab = len(terms.vocabulary)
    matrix = score_matrix(terms, np.arange(n_vocab, dtype=np.int32), n_vocab + 1, n_vocab, stats.k1, stats.b)
    starts = matrix["indptr"][:n_vocab + 1]
    return Impacts(matrix["data"], matrix["indices"], starts, np.diff(starts))


def impact_heads(terms: ChunkTerms | Impacts, head: int, stats: LexicalStats | None = None, *,
                 big_endian: bool = False) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """``(term id, chunk ids, impacts)`` for every term that occurs: all its chunks when they
    are at most ``head`` (in chunk order), else its ``head`` highest impacts, highest first
    (ties: lower chunk id first). ``big_endian``: as int32 / float32 big-endian (as the
    database stores them), converted once for all terms."""
    if isinstance(terms, ChunkTerms):
        assert stats is not None
        terms = impacts(terms, stats)
    data, indices, indptr = terms.impacts, terms.chunks, terms.starts
    if big_endian:
        data, indices = data.astype(">f4"), indices.astype(">i4")
    for t in np.flatnonzero(terms.df).tolist():
        s, e = int(indptr[t]), int(indptr[t + 1])
        imp, ids = data[s:e], indices[s:e]
        if e - s > head:
            keep = np.argpartition(-imp, head - 1)[:head]
            imp, ids = imp[keep], ids[keep]
            order = np.lexsort((ids, -imp))
            imp, ids = imp[order], ids[order]
        yield t, ids, imp


def idf(df: int, n_docs: int) -> np.float32:
    """bm25s's lucene idf, in float32."""
    return np.float32(np.log(1 + (n_docs - df + 0.5) / (df + 0.5))) if df > 0 else np.float32(0.0)


def exact_scores(query_ids: Sequence[int], chunk_terms: Sequence[np.ndarray], df: Mapping[int, int],
                 stats: LexicalStats) -> np.ndarray:
    """The BM25 score of each chunk (its term ids in ``chunk_terms``) for the query's term ids
    (repeats count, as in bm25s; ids of terms the corpus lacks are left out by the caller)."""
    scores = np.zeros(len(chunk_terms), dtype=np.float32)
    if not query_ids or not chunk_terms:
        return scores
    wanted = np.unique(np.asarray(query_ids, dtype=np.int64))
    sizes = np.fromiter((len(t) for t in chunk_terms), dtype=np.int64, count=len(chunk_terms))
    lengths = np.maximum(sizes, 1).astype(np.float64)
    norm = stats.k1 * ((1 - stats.b) + stats.b * lengths / stats.mean_terms)
    flat = np.concatenate(chunk_terms).astype(np.int64) if sizes.sum() else np.zeros(0, np.int64)
    owner = np.repeat(np.arange(len(chunk_terms), dtype=np.int64), sizes)
    col = np.searchsorted(wanted, flat)
    hit = (col < len(wanted)) & (wanted[np.minimum(col, len(wanted) - 1)] == flat)
    tf = np.bincount(owner[hit] * len(wanted) + col[hit], minlength=len(chunk_terms) * len(wanted))
    tf = tf.reshape(len(chunk_terms), len(wanted)).astype(np.float64)
    column = {int(t): j for j, t in enumerate(wanted)}
    for t in query_ids:
        j = column[int(t)]
        weight = np.float64(idf(int(df.get(int(t), 0)), stats.chunks))
        scores += (weight * (tf[:, j] / (norm + tf[:, j]))).astype(np.float32)
    return scores


def head_scores(query_ids: Sequence[int], heads: Mapping[int, tuple[np.ndarray, np.ndarray]],
                limit: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The chunks in the query terms' heads and the sum of their impacts there (a lower bound
    of their BM25 scores: the candidates a search then scores exactly), highest first (ties:
    lower chunk id first), at most ``limit`` of them."""
    parts = [heads[int(t)] for t in query_ids if int(t) in heads]
    if not parts:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float64)
    ids = np.concatenate([p[0] for p in parts]).astype(np.int64)
    imp = np.concatenate([p[1] for p in parts]).astype(np.float64)
    uniq, inverse = np.unique(ids, return_inverse=True)
    total = np.bincount(inverse, weights=imp, minlength=len(uniq))
    if limit is not None and len(uniq) > limit:
        keep = np.argpartition(-total, limit - 1)[:limit]
        uniq, total = uniq[keep], total[keep]
    order = np.lexsort((uniq, -total))
    return uniq[order], total[order]


__all__ = ["B", "K1", "Impacts", "LexicalStats", "corpus_stats", "exact_scores", "head_scores", "idf", "impact_heads",
           "impacts"]
