"""Near-duplicate documents: MinHash over character 5-grams of the matching form.

A document's shingles are the 5-grams of its text in matching form (NFKC, Simplified, lower
case) with everything but letters, digits and Han characters removed, so a re-posted article
with a changed headline, a few edited words or other punctuation still shares most of them.
MinHash signatures (stored in the index, so an incremental build computes only the new ones)
propose candidate pairs by banding; each candidate's exact Jaccard similarity decides.
"""

from __future__ import annotations

import re
import unicodedata
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .normalize import to_simplified

SHINGLE_CHARS = 5
PERMUTATIONS = 64
BANDS = 16
THRESHOLD = 0.8

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
    sources: Sequence[str], texts: Sequence[str], sigs: np.ndarray, threshold: float = THRESHOLD
) -> list[NearDuplicate]:
    """Pairs of documents with Jaccard similarity >= ``threshold``, each pair once, sorted.

    ``sigs`` are the documents' signatures (rows match ``sources`` and ``texts``).
    """
    rows = PERMUTATIONS // BANDS
    candidates: set[tuple[int, int]] = set()
    for b in range(BANDS):
        buckets: dict[bytes, list[int]] = {}
        for i in range(len(sources)):
            band = sigs[i, b * rows:(b + 1) * rows]
            if band[0] == _EMPTY[0]:
                continue
            buckets.setdefault(band.tobytes(), []).append(i)
        for members in buckets.values():
            if len(members) > 1:
                candidates.update((i, j) for k, i in enumerate(members) for j in members[k + 1:])
    cache: dict[int, set[int]] = {}

    def sh(i: int) -> set[int]:
        if i not in cache:
            cache[i] = shingles(texts[i])
        return cache[i]

    out: list[NearDuplicate] = []
    for i, j in candidates:
        sim = jaccard(sh(i), sh(j))
        if sim >= threshold:
            a, b2 = sorted((sources[i], sources[j]))
            out.append(NearDuplicate(b2, a, round(sim, 4)))
    return sorted(out, key=lambda n: (n.similar_to, n.source))
