"""Scoring functions for extractive QA and retrieval evaluation.

Answer strings are compared in a *normalised* form (:func:`normalize_answer`):
Traditional Chinese to Simplified (OpenCC ``t2s``), full-width to half-width (NFKC), lower
case, and whitespace, punctuation and symbols (Chinese and ASCII) removed. A ``.`` between two
digits is kept, so ``"5.8%"`` normalises to ``"5.8"`` and does not collide with ``"58"``.

Empty gold lists (a question the documents do not answer), by definition:

* :func:`exact_match` and :func:`char_f1` return 1.0 when the prediction normalises to the
  empty string (the system abstained) and 0.0 otherwise (SQuAD 2.0 convention);
* :func:`contains_answer` returns False (there is nothing to contain);
* :func:`recall_at_k` and :func:`reciprocal_rank` raise :class:`ValueError` (a retrieval
  metric without a gold passage is undefined; callers leave such questions out).

A gold answer that normalises to the empty string (e.g. ``"。"``) is ignored; a gold list
made only of such answers counts as empty.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Collection, Hashable, Iterable, Sequence
from functools import lru_cache

__all__ = [
    "normalize_answer",
    "segment",
    "exact_match",
    "char_f1",
    "contains_answer",
    "first_gold_rank",
    "recall_at_k",
    "reciprocal_rank",
    "percentile",
]

# Characters scored one per unit: CJK ideographs (incl. extension A, compatibility and the
# supplementary planes), kana and hangul syllables. Every other letter/digit run is a "word".
_CJK_RE = re.compile(
    "[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff"
    "\U00020000-\U0002ffff\U00030000-\U0003134f]"
)


@lru_cache(maxsize=1)
def _t2s():  # type: ignore[no-untyped-def]
    import opencc

    return opencc.OpenCC("t2s")


@lru_cache(maxsize=8192)
def _prepare(s: str) -> str:
    """Width, script and case folding; whitespace and punctuation still in place."""
    s = unicodedata.normalize("NFKC", s)
    s = _t2s().convert(s)
    return s.lower()


def _is_word_char(s: str, i: int) -> bool:
    """True when ``s[i]`` belongs to a word: a letter/digit, or ``.`` between two digits."""
    ch = s[i]
    if ch == ".":
        return 0 < i < len(s) - 1 and s[i - 1].isdigit() and s[i + 1].isdigit()
    cat = unicodedata.category(ch)
    return cat[0] in "LN" or cat == "Mn" or cat == "Mc"


def segment(s: str) -> list[str]:
    """Mixed segmentation (CMRC 2018): each CJK character is a unit, each run of other
    letters/digits is a unit (English words, numbers such as ``5.8``); whitespace,
    punctuation and symbols separate units and are dropped. Works on the folded form
    (Simplified, half-width, lower case)."""
    p = _prepare(s)
    units: list[str] = []
    word: list[str] = []
    for i, ch in enumerate(p):
        if _CJK_RE.match(ch):
            if word:
                units.append("".join(word))
                word = []
            units.append(ch)
        elif _is_word_char(p, i):
            word.append(ch)
        elif word:
            units.append("".join(word))
            word = []
    if word:
        units.append("".join(word))
    return units


def normalize_answer(s: str) -> str:
    """Matching form of an answer: ``t2s``, NFKC, lower case, no whitespace/punctuation.

    >>> normalize_answer("５．８％")
    '5.8'
    >>> normalize_answer("  八個 月 。")
    '八个月'
    """
    return "".join(segment(s))


def _as_list(golds: str | Iterable[str]) -> list[str]:
    """A single gold string is one gold, not a sequence of characters."""
    return [golds] if isinstance(golds, str) else list(golds)


def _golds(golds: str | Iterable[str]) -> list[str]:
    """Gold answers that survive normalisation, de-duplicated in order."""
    out: list[str] = []
    for g in _as_list(golds):
        n = normalize_answer(g)
        if n and n not in out:
            out.append(n)
    return out


def exact_match(pred: str, golds: str | Iterable[str]) -> float:
    """1.0 when the normalised prediction equals some normalised gold, else 0.0.

    With no (non-empty) gold: 1.0 iff the prediction normalises to ``""``.
    """
    norm_golds = _golds(golds)
    p = normalize_answer(pred)
    if not norm_golds:
        return 1.0 if not p else 0.0
    return 1.0 if p in norm_golds else 0.0


def _longest_common_run(a: Sequence[str], b: Sequence[str]) -> int:
    """Length of the longest common contiguous run of units (CMRC's ``find_lcs``)."""
    if not a or not b:
        return 0
    best = 0
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0] * (len(b) + 1)
        for j, y in enumerate(b, start=1):
            if x == y:
                cur[j] = prev[j - 1] + 1
                if cur[j] > best:
                    best = cur[j]
        prev = cur
    return best


def char_f1(pred: str, golds: str | Iterable[str]) -> float:
    """CMRC 2018 F1: max over golds of the F1 of the longest common run of units.

    Units come from :func:`segment` (one per Chinese character, one per English word or
    number). Precision = common/len(pred units), recall = common/len(gold units). As in the
    official CMRC 2018 script the overlap is the longest common *contiguous* run, not a bag
    of units, so ``"民人"`` against ``"人民"`` scores 0.5, not 1.0.

    A prediction that matches a gold exactly (:func:`exact_match`) scores 1.0 even where
    whitespace removal joins English words that segment apart (``"new york"``/``"newyork"``),
    so F1 >= EM always holds.

    With no (non-empty) gold: 1.0 iff the prediction has no units, else 0.0.
    """
    gold_units = [u for u in (segment(g) for g in _as_list(golds)) if u]
    pred_units = segment(pred)
    if not gold_units:
        return 1.0 if not pred_units else 0.0
    pred_norm = "".join(pred_units)
    best = 0.0
    for g in gold_units:
        if "".join(g) == pred_norm:
            return 1.0
        common = _longest_common_run(g, pred_units)
        if common == 0:
            continue
        precision = common / len(pred_units)
        recall = common / len(g)
        best = max(best, 2 * precision * recall / (precision + recall))
    return best


def contains_answer(text: str, golds: str | Iterable[str]) -> bool:
    """True when some normalised gold is a substring of the normalised ``text``.

    False when there is no (non-empty) gold.
    """
    norm_golds = _golds(golds)
    if not norm_golds:
        return False
    t = normalize_answer(text)
    return any(g in t for g in norm_golds)


def first_gold_rank(
    ranked: Sequence[Hashable], golds: Collection[Hashable], k: int | None = None
) -> int | None:
    """1-based rank of the first gold item in ``ranked`` (within the first ``k`` when given),
    ``None`` when absent. Raises :class:`ValueError` for empty ``golds`` or ``k`` < 1."""
    if not golds:
        raise ValueError("retrieval metric needs at least one gold source")
    if k is not None and k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    gold_set = set(golds)
    limit = len(ranked) if k is None else min(k, len(ranked))
    for i in range(limit):
        if ranked[i] in gold_set:
            return i + 1
    return None


def recall_at_k(ranked: Sequence[Hashable], golds: Collection[Hashable], k: int) -> float:
    """1.0 when any gold source is among the first ``k`` ranked sources, else 0.0.

    Gold sources are alternatives (any one holds the answer), so this is the usual
    open-domain "hit@k"; with exactly one gold it equals recall@k.
    """
    return 0.0 if first_gold_rank(ranked, golds, k) is None else 1.0


def reciprocal_rank(
    ranked: Sequence[Hashable], golds: Collection[Hashable], k: int | None = None
) -> float:
    """1/rank of the first gold source (within the first ``k`` when given), 0.0 if absent."""
    r = first_gold_rank(ranked, golds, k)
    return 0.0 if r is None else 1.0 / r


def percentile(values: Iterable[float], q: float) -> float:
    """The ``q``-th percentile (0..100) with linear interpolation (numpy's default).

    Raises :class:`ValueError` for an empty input or ``q`` outside [0, 100].
    """
    xs = sorted(values)
    if not xs:
        raise ValueError("percentile of an empty sequence")
    if not 0.0 <= q <= 100.0 or math.isnan(q):
        raise ValueError(f"percentile q must be in [0, 100], got {q}")
    pos = (len(xs) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


_ARTICLES_RE = re.compile(r"\b(a|an|the)\b")


def squad_tokens(s: str) -> list[str]:
    """SQuAD's official answer normalisation, then whitespace tokens: lower case, punctuation
    removed, articles (a/an/the) removed (here after width folding, as for Chinese)."""
    p = _prepare(s)
    p = "".join(ch for ch in p if unicodedata.category(ch)[0] not in "PS")  # removed, as SQuAD's script does
    return _ARTICLES_RE.sub(" ", p).split()


def token_f1(pred: str, golds: str | Iterable[str]) -> float:
    """SQuAD token F1: max over golds of the F1 of the bags of :func:`squad_tokens`.

    With no (non-empty) gold: 1.0 iff the prediction has no tokens, else 0.0."""
    from collections import Counter

    gold_tokens = [t for t in (squad_tokens(g) for g in _as_list(golds)) if t]
    pred_tokens = squad_tokens(pred)
    if not gold_tokens:
        return 1.0 if not pred_tokens else 0.0
    best = 0.0
    for g in gold_tokens:
        common = sum((Counter(g) & Counter(pred_tokens)).values())
        if common:
            precision, recall = common / len(pred_tokens), common / len(g)
            best = max(best, 2 * precision * recall / (precision + recall))
    return best


def answer_f1(pred: str, golds: str | Iterable[str]) -> float:
    """The F1 reported everywhere: CMRC's character F1 (:func:`char_f1`) when the prediction or
    a gold answer has a CJK character (Chinese sets hold answers such as "5.8%" too), SQuAD's
    token F1 (:func:`token_f1`) when none has; an exact match (:func:`exact_match`) scores 1.0
    either way."""
    gold_list = _as_list(golds)
    if exact_match(pred, gold_list) == 1.0:
        return 1.0
    if _CJK_RE.search(pred) or any(_CJK_RE.search(g) for g in gold_list):
        return char_f1(pred, gold_list)
    return token_f1(pred, gold_list)
