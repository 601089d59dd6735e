"""BM25 over segmented, normalised text (jieba words and Han character bigrams, English words).

Chunks' terms are kept as ids into one vocabulary (:class:`ChunkTerms`: an int32 array and row
offsets), not as Python strings: at 100k chunks the strings made the build peak at 4.9 GiB
(``benchmarks/bench_scale.py``), the ids take 4 bytes a term. BM25 is fitted from the ids.
"""

from __future__ import annotations

import logging
import re
from array import array
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from rag.normalize import fold

_HAN_RUN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+")
_WORD = re.compile(r"[a-z0-9]+(?:[.'][a-z0-9]+)*%?")

# Function words and question words: they say how a question is asked, not what about.
STOPWORDS = frozenset(
    """的 了 和 与 及 或 是 在 有 为 对 把 被 将 从 向 于 以 而 也 都 就 又 这 那 其 之 个 吗 呢 吧 啊
    什么 多少 哪 哪个 哪些 哪里 哪家 哪位 哪一 哪一年 哪年 几 几个 谁 如何 怎么 怎样 为什么 何 何时 何地 是否
    请问 一下 一个 这个 那个 我们 你们 他们 它们 可以 可能 应该 已经 目前 现在 还是 以及 并且
    a an the of to in on at by for with from and or is are was were be been being do does did
    what which who whom whose when where why how much many that this these those it its as
    into than then there their they he she his her we you i me my our your not no
    """.split()
)


def _jieba():
    import jieba

    jieba.setLogLevel(logging.WARNING)
    return jieba


@lru_cache(maxsize=1)
def jieba_ready():
    """jieba, quiet and with its dictionary loaded (once per process)."""
    jb = _jieba()
    jb.initialize()
    return jb


def words(text: str) -> list[str]:
    """Content words of ``text`` in matching form: jieba words for Han text, words for the rest,
    without stop words and punctuation."""
    folded = fold(text)
    out: list[str] = []
    jb = jieba_ready()
    for tok in jb.lcut(folded):
        tok = tok.strip()
        if not tok or tok in STOPWORDS:
            continue
        if _HAN_RUN.fullmatch(tok):
            out.append(tok)
        else:
            out.extend(w for w in _WORD.findall(tok) if w not in STOPWORDS)
    return out


def tokenize(text: str) -> list[str]:
    """BM25 terms: content words plus Han character bigrams (robust to segmentation)."""
    toks = words(text)
    folded = fold(text)
    for run in _HAN_RUN.findall(folded):
        toks.extend(run[i:i + 2] for i in range(len(run) - 1))
        if len(run) == 1 and run not in STOPWORDS:
            toks.append(run)
    return toks


#: The term of a chunk without any (bm25s needs one term per document).
EMPTY_TERM = "\u2400"


@dataclass(frozen=True, eq=False)
class ChunkTerms:
    """The BM25 terms of every chunk as ids into ``vocabulary``: chunk ``i``'s are
    ``ids[offsets[i]:offsets[i + 1]]`` (int32; ``offsets`` has one more entry than there are chunks)."""

    ids: np.ndarray
    offsets: np.ndarray
    vocabulary: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def row(self, i: int) -> np.ndarray:
        return self.ids[self.offsets[i]:self.offsets[i + 1]]

    def terms(self, i: int) -> tuple[str, ...]:
        return tuple(self.vocabulary[t] for t in self.row(i))

    def check(self) -> None:
        """ValueError unless the arrays are consistent (a stored index is refused then)."""
        if self.ids.ndim != 1 or self.offsets.ndim != 1 or len(self.offsets) < 1:
            raise ValueError("term arrays are not one-dimensional")
        if int(self.offsets[0]) != 0 or int(self.offsets[-1]) != len(self.ids) or np.any(np.diff(self.offsets) < 0):
            raise ValueError("term offsets do not cover the term ids")
        if len(self.ids) and (int(self.ids.min()) < 0 or int(self.ids.max()) >= len(self.vocabulary)):
            raise ValueError("a term id is outside the vocabulary")


class TermsBuilder:
    """Collects chunks' terms as ids, growing a vocabulary (started from an earlier index's, so
    that its chunks' ids stay valid and can be reused without re-tokenising).

    The ids go straight into one growing int32 buffer, which :meth:`build` hands over without a
    copy: at 100k chunks (28M terms) a list of per-chunk arrays joined at the end held the
    terms twice, 110 MiB more at the build's high-water mark (``benchmarks/README.md``)."""

    def __init__(self, vocabulary: Sequence[str] = ()) -> None:
        self._vocab: dict[str, int] = {t: i for i, t in enumerate(vocabulary)}
        self._ids = array("i")
        self._offsets = array("q", [0])

    def encode(self, terms: Iterable[str]) -> np.ndarray:
        vocab = self._vocab
        return np.fromiter((vocab.setdefault(t, len(vocab)) for t in terms), dtype=np.int32)

    def append(self, ids: np.ndarray) -> None:
        self._ids.frombytes(np.ascontiguousarray(ids, dtype=np.int32).tobytes())
        self._offsets.append(len(self._ids))

    def build(self) -> ChunkTerms:
        ids = np.frombuffer(self._ids, dtype=np.int32) if len(self._ids) else np.zeros(0, np.int32)
        offsets = np.frombuffer(self._offsets, dtype=np.int64)
        vocabulary = tuple(sorted(self._vocab, key=self._vocab.__getitem__))
        return ChunkTerms(ids, offsets, vocabulary)


def chunk_terms(texts: Iterable[str]) -> ChunkTerms:
    """:func:`tokenize` every text into one :class:`ChunkTerms`."""
    builder = TermsBuilder()
    for t in texts:
        builder.append(builder.encode(tokenize(t)))
    return builder.build()


#: chunks whose (term, chunk) pairs are counted at once by :func:`score_matrix`
_SCORE_BATCH = 4096


def _pairs(ids: np.ndarray, starts: np.ndarray, lengths: np.ndarray, start: int, end: int, remap: np.ndarray,
           empty: int) -> tuple[np.ndarray, ...]:
    """The distinct (term, chunk) pairs of chunks ``start:end``, ordered by term then chunk:
    (terms after ``remap``, chunks, term frequencies). An empty chunk has ``empty`` once."""
    n = end - start
    counts = lengths[start:end]
    seg = remap[ids[starts[start]:starts[end]]].astype(np.int64)
    rows = np.repeat(np.arange(n, dtype=np.int64), counts)
    if not counts.all():
        gaps = np.flatnonzero(counts == 0)
        seg = np.concatenate([seg, np.full(len(gaps), empty, dtype=np.int64)])
        rows = np.concatenate([rows, gaps])
    keys, tf = np.unique(seg * n + rows, return_counts=True)
    return keys // n, keys % n + start, tf


def score_matrix(terms: ChunkTerms, remap: np.ndarray, n_vocab: int, empty: int, k1: float,
                 b: float) -> dict[str, Any]:
    """bm25s's "lucene" score matrix (CSC over terms: ``data``, ``indices``, ``indptr``,
    ``num_docs``) of ``terms``, whose ids ``remap`` turns into the matrix's ``n_vocab`` columns
    (an empty chunk holds the term ``empty``, as bm25s does it), made in batches of
    :data:`_SCORE_BATCH` chunks with NumPy. ``bm25s.BM25.index`` builds the same matrix from
    Python lists and sets per chunk and COO copies: at 100k chunks its peak was 870 MiB above
    the terms themselves; this one's is the matrix plus a batch (``benchmarks/bench_scale.py``).
    Same arithmetic as bm25s (float64 term-frequency part, float32 idf and scores), so the
    scores are bm25s's (tested)."""
    ids, starts = terms.ids, terms.offsets
    lengths = np.diff(starts)
    n_docs = len(lengths)
    batches = [(s, min(s + _SCORE_BATCH, n_docs)) for s in range(0, n_docs, _SCORE_BATCH)]
    df = np.zeros(n_vocab, dtype=np.int64)
    for s, e in batches:
        df += np.bincount(_pairs(ids, starts, lengths, s, e, remap, empty)[0], minlength=n_vocab)
    with np.errstate(divide="ignore"):
        idf = np.log(1 + (n_docs - df + 0.5) / (df + 0.5)).astype(np.float32)
    idf[df == 0] = 0
    indptr = np.zeros(n_vocab + 1, dtype=np.int64)
    np.cumsum(df, out=indptr[1:])
    data = np.empty(int(indptr[-1]), dtype=np.float32)
    indices = np.empty(int(indptr[-1]), dtype=np.int32)
    cursor = indptr[:-1].copy()
    doc_len = np.maximum(lengths, 1)
    avg = float(doc_len.mean()) if n_docs else 1.0
    for s, e in batches:
        cols, rows, tf = _pairs(ids, starts, lengths, s, e, remap, empty)
        present, run_start, run_len = np.unique(cols, return_index=True, return_counts=True)
        dest = cursor[cols] + (np.arange(len(cols)) - np.repeat(run_start, run_len))
        cursor[present] += run_len
        tfc = tf / (k1 * ((1 - b) + b * doc_len[rows] / avg) + tf)
        data[dest] = (idf[cols].astype(np.float64) * tfc).astype(np.float32)
        indices[dest] = rows
    return {"data": data, "indices": indices, "indptr": indptr, "num_docs": n_docs}


@dataclass(frozen=True)
class LexicalScores:
    """BM25 scores of every chunk for one query, and the query's terms."""

    scores: np.ndarray
    terms: tuple[str, ...]


class BM25Index:
    """A bm25s index over chunk texts, saved and loaded without pickle."""

    def __init__(self, retriever: "object", n_docs: int) -> None:
        self._bm25 = retriever
        self.n_docs = n_docs

    @classmethod
    def fit(cls, texts: Sequence[str]) -> "BM25Index":
        return cls.fit_terms(chunk_terms(texts))

    @classmethod
    def fit_tokens(cls, corpus: Sequence[Sequence[str]]) -> "BM25Index":
        """Index chunks already tokenised with :func:`tokenize` (an empty chunk gets a placeholder)."""
        builder = TermsBuilder()
        for toks in corpus:
            builder.append(builder.encode(toks))
        return cls.fit_terms(builder.build())

    @classmethod
    def fit_terms(cls, terms: ChunkTerms) -> "BM25Index":
        """Index chunks' term ids. The bm25s vocabulary holds the terms that occur (ids renumbered
        densely), plus :data:`EMPTY_TERM` when a chunk has no term."""
        import bm25s

        counts = np.bincount(terms.ids, minlength=len(terms.vocabulary)) if len(terms.ids) else np.zeros(0, np.int64)
        used = np.flatnonzero(counts)
        dense = np.full(len(terms.vocabulary), -1, dtype=np.int32)
        dense[used] = np.arange(len(used), dtype=np.int32)
        vocab = {terms.vocabulary[t]: i for i, t in enumerate(used.tolist())}
        empty = vocab.setdefault(EMPTY_TERM, len(vocab))
        retriever = bm25s.BM25()
        retriever.scores = score_matrix(terms, dense, len(vocab), empty, retriever.k1, retriever.b)
        retriever.vocab_dict = vocab
        retriever.unique_token_ids_set = set(vocab.values())
        retriever.nonoccurrence_array = None  # lucene BM25 has none
        return cls(retriever, len(terms))

    def document_frequency(self, term: str) -> int:
        """In how many chunks ``term`` (matching form) occurs."""
        vocab = self._bm25.vocab_dict  # type: ignore[attr-defined]
        tid = vocab.get(term)
        if tid is None:
            return 0
        indptr = self._bm25.scores["indptr"]  # type: ignore[attr-defined]
        return int(indptr[tid + 1] - indptr[tid])

    def scores(self, query: str) -> LexicalScores:
        terms = tokenize(query)
        known = [t for t in terms if t in self._bm25.vocab_dict]  # type: ignore[attr-defined]
        if not known:
            return LexicalScores(np.zeros(self.n_docs, dtype=np.float32), tuple(terms))
        s = self._bm25.get_scores(known)  # type: ignore[attr-defined]
        return LexicalScores(np.asarray(s, dtype=np.float32), tuple(terms))

    def save(self, folder: Path) -> None:
        self._bm25.save(str(folder), allow_pickle=False, show_progress=False)  # type: ignore[attr-defined]

    @classmethod
    def load(cls, folder: Path, n_docs: int) -> "BM25Index":
        import bm25s

        retriever = bm25s.BM25.load(str(folder), allow_pickle=False, mmap=False)
        return cls(retriever, n_docs)
