"""Near-duplicate documents: MinHash over character 5-grams of the matching form.

A document's shingles are the 5-grams of its text in matching form (NFKC, Simplified, lower
case) with everything but letters, digits and Han characters removed, so a re-posted article
with a changed headline, a few edited words or other punctuation still shares most of them.
MinHash signatures (stored in the index, so an incremental build computes only the new ones)
propose candidate pairs by banding; each candidate's exact Jaccard similarity decides.

Band buckets are bounded (:data:`BUCKET_CAP`): on templated text, where thousands of documents
share a band, each one is compared with the bucket's first :data:`BUCKET_CAP` documents in a
fixed order, not with all of them. The result depends only on the documents, never on the
order they came in, so an incremental update (``previous=``: the index before and what was
found in it) reuses the earlier decisions, compares only what the change brings, and still
gives exactly the pairs a full pass over the same documents gives.
"""

from __future__ import annotations

import re
import unicodedata
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from rag.normalize import to_simplified

SHINGLE_CHARS = 5
PERMUTATIONS = 64
BANDS = 16
THRESHOLD = 0.8

BUCKET_CAP = 32
"""How many documents of one band bucket are compared with the others.

The documents of a bucket (those whose band of the signature is equal) are taken in a fixed
order (CRC-32 of the source name, then the name). A pair sharing the bucket is compared when
one of the two is among its first ``BUCKET_CAP``. Buckets of at most ``BUCKET_CAP`` documents
therefore compare every pair, exactly as unbounded banding does: on ordinary corpora nothing
changes. What it costs: each document is compared with at most ``BANDS * BUCKET_CAP`` others
(512), so a full pass does at most ``n * 512`` exact Jaccard computations instead of up to
``n**2 / 2``; adding a document compares it with at most 512 others, plus every member of a
large bucket in which it lands among the first ``BUCKET_CAP`` (for a bucket of ``m`` documents
that happens with probability ``BUCKET_CAP / m``, so about ``BUCKET_CAP`` comparisons per band
on average). What it gives up: in a bucket of more than ``BUCKET_CAP`` documents, two members
outside its first ``BUCKET_CAP`` are not compared through that bucket (they still are through
any other band they share in a smaller bucket), so a cluster of many mutually similar
documents is reported through its representatives rather than as every pair.
"""

_PRIME = np.uint64(4294967311)  # smallest prime above 2**32
_rng = np.random.default_rng(20240505)
_A = _rng.integers(1, 2**31, size=PERMUTATIONS, dtype=np.uint64)
_B = _rng.integers(0, 2**31, size=PERMUTATIONS, dtype=np.uint64)
_EMPTY = np.full(PERMUTATIONS, np.iinfo(np.uint64).max, dtype=np.uint64)
_NOT_WORD = re.compile(r"[\W_]+")


@dataclass(frozen=True)
class NearDuplicate:
    """Two indexed documents whose shingle sets have Jaccard similarity >= the threshold."""

    source: str
    similar_to: str
    jaccard: float


@dataclass(frozen=True, eq=False)
class Previous:
    """An index's documents before a change and the near-duplicates found among them.

    ``sources``, ``texts`` and the rows of ``sigs`` match; ``found`` is what
    :func:`find_near_duplicates` returned for them with ``threshold`` (and this module's code:
    the caller must pass only results of the same code, as the index's fingerprint ensures).
    """

    sources: Sequence[str]
    texts: Sequence[str]
    sigs: np.ndarray
    found: Sequence[NearDuplicate]
    threshold: float = THRESHOLD


def shingles(text: str) -> set[int]:
    """Hashed character 5-grams of the matching form of ``text`` (letters, digits, Han only)."""
    s = _NOT_WORD.sub("", to_simplified(unicodedata.normalize("NFKC", text)).lower())
    return {zlib.crc32(s[i:i + SHINGLE_CHARS].encode("utf-8")) for i in range(len(s) - SHINGLE_CHARS + 1)}


def signature(text: str) -> np.ndarray:
    """MinHash signature (``PERMUTATIONS`` uint64 values) of ``text``'s shingles."""
    sh = shingles(text)
    if not sh:
        return _EMPTY.copy()
    x = np.fromiter(sh, dtype=np.uint64, count=len(sh))
    return ((np.outer(_A, x) + _B[:, None]) % _PRIME).min(axis=1)


def signatures(texts: Sequence[str]) -> np.ndarray:
    out = np.empty((len(texts), PERMUTATIONS), dtype=np.uint64)
    for i, t in enumerate(texts):
        out[i] = signature(t)
    return out


def jaccard(a: set[int], b: set[int]) -> float:
    if not a or not b:
        return 0.0
    return len(a & b) / len(a | b)


def find_near_duplicates(
    sources: Sequence[str],
    texts: Sequence[str],
    sigs: np.ndarray,
    threshold: float = THRESHOLD,
    *,
    previous: Previous | None = None,
) -> list[NearDuplicate]:
    """Pairs of documents with Jaccard similarity >= ``threshold``, each pair once, sorted.

    ``sigs`` are the documents' signatures (rows match ``sources`` and ``texts``); candidate
    pairs come from banding with bounded buckets (:data:`BUCKET_CAP`). With ``previous`` (the
    same index before a change), documents unchanged since (same source and text) keep the
    decisions made then and only pairs the change makes candidates are compared; the result is
    the same as without it.
    """
    if len(sources) != len(texts) or len(sources) != len(sigs):
        raise ValueError(f"{len(sources)} sources, {len(texts)} texts and {len(sigs)} signatures: they must match")
    if not len(sources):
        return []
    judge = _Judge(sources, texts, threshold)
    new = _Buckets(sigs, sources)
    update = _Update.of(previous, sources, texts, sigs, threshold) if previous is not None else None
    if update is None:
        judge.pairs(*_candidate_pairs(new, len(sources)))
        return judge.result([])
    return judge.result(update.run(new, judge))


# ---------------------------------------------------------------- internals


class _Judge:
    """Exact Jaccard of candidate pairs (shingles computed once per document, when needed)."""

    def __init__(self, sources: Sequence[str], texts: Sequence[str], threshold: float) -> None:
        self.sources = sources
        self.texts = texts
        self.threshold = threshold
        self.cache: dict[int, set[int]] = {}
        self.found: list[NearDuplicate] = []

    def sh(self, i: int) -> set[int]:
        s = self.cache.get(i)
        if s is None:
            s = self.cache[i] = shingles(self.texts[i])
        return s

    def pairs(self, lo: np.ndarray, hi: np.ndarray) -> None:
        """Judge each pair ``(lo[k], hi[k])``; those at or above the threshold go to ``found``."""
        if not len(lo):
            return
        sh = self.sh
        for i in np.unique(np.concatenate([lo, hi])).tolist():
            sh(i)
        cache, t, sources, found = self.cache, self.threshold, self.sources, self.found
        bound = t - 1e-9
        for i, j in zip(lo.tolist(), hi.tolist()):
            a, b = cache[i], cache[j]
            la, lb = len(a), len(b)
            # Jaccard <= smaller size / larger size: skip pairs that cannot reach the threshold
            # (with a margin, so that rounding never skips one that the division would keep)
            if la < lb:
                if la < bound * lb or not la:
                    continue
            elif lb < bound * la or not lb:
                continue
            inter = len(a & b)
            sim = inter / (la + lb - inter)
            if sim >= t:
                x, y = sorted((sources[i], sources[j]))
                found.append(NearDuplicate(y, x, round(sim, 4)))

    def result(self, kept: list[NearDuplicate]) -> list[NearDuplicate]:
        return sorted(kept + self.found, key=lambda n: (n.similar_to, n.source))


def _ranks(sources: Sequence[str]) -> np.ndarray:
    """Each document's place in the fixed order buckets keep: CRC-32 of the name, then the name."""
    order = sorted(range(len(sources)), key=lambda i: (zlib.crc32(sources[i].encode("utf-8")), sources[i]))
    rank = np.empty(len(sources), dtype=np.int64)
    rank[order] = np.arange(len(sources), dtype=np.int64)
    return rank


class _Buckets:
    """The band buckets of a set of documents.

    ``group[i, b]`` is document ``i``'s bucket in band ``b`` (-1: an empty signature, in no
    bucket); ``kept[i, b]`` says whether it is among that bucket's first ``BUCKET_CAP``.
    ``members(b, g)`` are bucket ``g``'s documents in the fixed order.
    """

    def __init__(self, sigs: np.ndarray, sources: Sequence[str]) -> None:
        n = len(sigs)
        rows = PERMUTATIONS // BANDS
        rank = _ranks(sources)
        cap = BUCKET_CAP
        self.group = np.full((n, BANDS), -1, dtype=np.int64)
        self.kept = np.zeros((n, BANDS), dtype=bool)
        self.order: list[np.ndarray] = []
        self.start: list[np.ndarray] = []
        for b in range(BANDS):
            band = np.ascontiguousarray(sigs[:, b * rows:(b + 1) * rows], dtype=np.uint64)
            live = np.flatnonzero(band[:, 0] != _EMPTY[0])
            if not len(live):
                self.order.append(live)
                self.start.append(np.zeros(1, dtype=np.int64))
                continue
            keys = np.ascontiguousarray(band[live]).view(np.dtype((np.void, 8 * rows))).ravel()
            _, inverse = np.unique(keys, return_inverse=True)
            inverse = inverse.ravel().astype(np.int64)
            o = np.lexsort((rank[live], inverse))
            docs, groups = live[o], inverse[o]
            first = np.flatnonzero(np.r_[True, groups[1:] != groups[:-1]])
            bounds = np.r_[first, len(docs)]
            position = np.arange(len(docs)) - np.repeat(first, np.diff(bounds))
            self.group[docs, b] = groups
            self.kept[docs, b] = position < cap
            self.order.append(docs)
            self.start.append(bounds)

    def members(self, b: int, g: int) -> np.ndarray:
        return self.order[b][self.start[b][g]:self.start[b][g + 1]]

    def candidates_of(self, i: int) -> set[int]:
        """Every document ``i`` is compared with: the first ``BUCKET_CAP`` of each of its
        buckets, and all members of those where it is among them itself."""
        out: set[int] = set()
        for b in range(BANDS):
            g = int(self.group[i, b])
            if g < 0:
                continue
            m = self.members(b, g)
            out.update((m if self.kept[i, b] else m[:BUCKET_CAP]).tolist())
        out.discard(i)
        return out

    def candidate(self, i: int, j: int) -> bool:
        """Whether ``i`` and ``j`` are compared: a shared bucket holds one of them in its first
        ``BUCKET_CAP``."""
        gi = self.group[i]
        return bool(np.any((gi == self.group[j]) & (gi >= 0) & (self.kept[i] | self.kept[j])))


def _candidate_pairs(bk: _Buckets, n: int) -> tuple[np.ndarray, np.ndarray]:
    """All candidate pairs (``lo < hi``), each once."""
    cap = BUCKET_CAP
    codes: list[np.ndarray] = []
    for b in range(BANDS):
        docs, bounds = bk.order[b], bk.start[b]
        sizes = np.diff(bounds)
        for size in np.unique(sizes[sizes > 1]).tolist():
            firsts = bounds[:-1][sizes == size]
            block = docs[firsts[:, None] + np.arange(size)]  # one row per bucket of this size
            ii, jj = _pair_pattern(size, cap)
            a, c = block[:, ii].ravel(), block[:, jj].ravel()
            codes.append(np.minimum(a, c) * n + np.maximum(a, c))
    if not codes:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty
    unique = np.unique(np.concatenate(codes))
    return unique // n, unique % n


def _pair_pattern(size: int, cap: int) -> tuple[np.ndarray, np.ndarray]:
    """Positions (i < j) of the compared pairs in a bucket of ``size``: i among the first ``cap``."""
    firsts = np.arange(min(cap, size - 1))
    ii = np.repeat(firsts, size - 1 - firsts)
    jj = np.concatenate([np.arange(i + 1, size) for i in firsts.tolist()])
    return ii, jj


@dataclass
class _Update:
    """What changed since ``previous``: which documents are the same (by source and text)."""

    previous: Previous
    same: np.ndarray  # bool per new document: unchanged since previous
    old_of: np.ndarray  # new index -> previous index (-1 when new or changed)
    index_of: dict[str, int]

    @classmethod
    def of(cls, previous: Previous, sources: Sequence[str], texts: Sequence[str], sigs: np.ndarray,
           threshold: float) -> "_Update | None":
        """The update, or None when a full pass is as cheap or ``previous`` cannot be trusted."""
        n_old = len(previous.sources)
        if (previous.threshold != threshold or len(previous.texts) != n_old or len(previous.sigs) != n_old
                or not n_old or len(set(previous.sources)) != n_old or len(set(sources)) != len(sources)):
            return None
        old_index = {s: i for i, s in enumerate(previous.sources)}
        same = np.zeros(len(sources), dtype=bool)
        old_of = np.full(len(sources), -1, dtype=np.int64)
        for i, s in enumerate(sources):
            j = old_index.get(s)
            if j is not None and previous.texts[j] == texts[i]:
                same[i], old_of[i] = True, j
        if same.sum() < len(sources) / 2:
            return None  # mostly new documents: a full pass costs no more
        if not np.array_equal(np.asarray(previous.sigs)[old_of[same]], sigs[same]):
            return None
        return cls(previous, same, old_of, {s: i for i, s in enumerate(sources)})

    def run(self, new: _Buckets, judge: _Judge) -> list[NearDuplicate]:
        """The pairs kept from ``previous``; the new ones are judged into ``judge``."""
        prev = self.previous
        old = _Buckets(np.asarray(prev.sigs), prev.sources)
        same = np.flatnonzero(self.same)
        old_same = self.old_of[same]
        # Unchanged documents that left some bucket's first BUCKET_CAP (pushed out by an added
        # one): their earlier pairs may no longer be candidates.
        evicted = set(same[(old.kept[old_same] & ~new.kept[same]).any(axis=1)].tolist())
        kept: list[NearDuplicate] = []
        for nd in prev.found:
            i, j = self.index_of.get(nd.source), self.index_of.get(nd.similar_to)
            if i is None or j is None or not (self.same[i] and self.same[j]):
                continue
            if (i in evicted or j in evicted) and not new.candidate(i, j):
                continue
            kept.append(nd)
        todo: set[tuple[int, int]] = set()
        # Added or changed documents: compared with all their candidates.
        for a in np.flatnonzero(~self.same).tolist():
            todo.update((a, c) if a < c else (c, a) for c in new.candidates_of(a))
        # Unchanged documents that entered some bucket's first BUCKET_CAP (one before them was
        # removed): compared with that bucket's unchanged members they were not compared with.
        entered_doc, entered_band = np.nonzero(new.kept[same] & ~old.kept[old_same])
        for x, b in zip(same[entered_doc].tolist(), entered_band.tolist()):
            m = new.members(b, int(new.group[x, b]))
            m = m[self.same[m] & (m != x)]
            if not len(m):
                continue
            ox, om = self.old_of[x], self.old_of[m]
            gx = old.group[ox]
            was = ((old.group[om] == gx) & (gx >= 0) & (old.kept[om] | old.kept[ox])).any(axis=1)
            todo.update((x, y) if x < y else (y, x) for y in m[~was].tolist())
        if todo:
            lo, hi = np.array(sorted(todo), dtype=np.int64).T
            judge.pairs(lo, hi)
        return kept
