"""The matching form of text: Traditional to Simplified, full-width to half-width, lower case.

Normalisation is for *matching only*: what users are shown is always the document's own text.
:func:`fold` keeps the length of its input, so an offset into the folded text is an offset
into the original.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

import opencc

_CJK_RE = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_LATIN_RE = re.compile(r"[A-Za-z]")


@lru_cache(maxsize=1)
def _t2s() -> opencc.OpenCC:
    return opencc.OpenCC("t2s")


@lru_cache(maxsize=65536)
def _fold_char(ch: str) -> str:
    folded = unicodedata.normalize("NFKC", ch)
    if len(folded) != 1:
        folded = ch
    return folded.lower() if len(folded.lower()) == 1 else folded


def to_simplified(text: str) -> str:
    """Traditional to Simplified Chinese with OpenCC, keeping the text's length.

    OpenCC's phrase tables convert almost always character for character; when a phrase
    would change the length, the text is converted one character at a time instead.
    """
    if not text:
        return text
    conv = _t2s()
    out = conv.convert(text)
    if len(out) == len(text):
        return out
    return "".join(c if len(c) == 1 else ch for ch, c in ((ch, conv.convert(ch)) for ch in text))


def fold(text: str) -> str:
    """Matching form of ``text``, the same length as ``text``.

    Traditional to Simplified, NFKC width folding (full-width letters, digits and punctuation
    to half-width) and lower case, each applied only where it keeps one character one character.
    """
    simplified = to_simplified(text)
    return "".join(_fold_char(ch) for ch in simplified)


def is_cjk(ch: str) -> bool:
    return bool(_CJK_RE.match(ch))


def cjk_share(text: str) -> float:
    """Share of letters in ``text`` that are Han characters (0 when it has no letters)."""
    han = len(_CJK_RE.findall(text))
    latin = len(_LATIN_RE.findall(text))
    total = han + latin
    return han / total if total else 0.0
