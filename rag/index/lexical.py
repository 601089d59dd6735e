"""BM25 over segmented, normalised text (jieba words and Han character bigrams, English words)."""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

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
        return cls.fit_tokens([tokenize(t) for t in texts])

    @classmethod
    def fit_tokens(cls, corpus: Sequence[Sequence[str]]) -> "BM25Index":
        """Index chunks already tokenised with :func:`tokenize` (an empty chunk gets a placeholder)."""
        import bm25s

        retriever = bm25s.BM25()
        retriever.index([list(t) or ["\u2400"] for t in corpus], show_progress=False)
        return cls(retriever, len(corpus))

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
