"""Tidy the edges of a span the reader predicted.

The reader's boundaries are often a word off: "美國的" for 美國, "由於滿洲是清朝的發祥地" for the
reason itself, "趙志國表示" for the name. Punctuation and whitespace are dropped from both ends,
then whole function words (as jieba segments the span, so 目的 or 於是乎 inside a word stay):
particles that never end an answer (的, 了, 等) and prepositions and conjunctions that never
begin one (由於, 因為, 在, 被). The span is segmented in its folded (Simplified, same length)
form, so one list serves both scripts.

Latin-script spans are then widened to whole words: the reader's sub-word tokens put edges
inside words ("3.2 million tonn", "territor", "lymphocy"); a span edge inside a run of Latin
letters or digits (a decimal point or thousands comma between digits included) moves outwards
to the run's end. Widening only: a person would accept "tonnes" for "tonn", never half a word.
"""

from __future__ import annotations

from rag.index.lexical import jieba_ready
from rag.normalize import fold

EDGE = " \t\r\n\u3000，。、；：！？,;:!?"
LEADING = frozenset("是 在 由 因 被 于 从 自从 由于 因为 于是 而 则 即 乃 对 将 把 为 为了 和 与 及 达到 共".split())
TRAILING = frozenset("的 了 等 之 表示 说 指出 称 认为".split())


def trim_span(text: str, start: int, end: int) -> tuple[int, int]:
    """Offsets of ``text[start:end]`` without edge punctuation and edge function words, its
    Latin-script edges widened to whole words (:func:`whole_words`). A span of function words
    only is left as it is."""
    start, end = _tidy(text, start, end)
    return whole_words(text, start, end)


def _is_word(text: str, i: int) -> bool:
    """``text[i]`` is part of a Latin-script word or number (CJK characters are not)."""
    if not 0 <= i < len(text):
        return False
    ch = text[i]
    if ch in ".,":  # 3.2, 1,000: only between digits (an apostrophe is an edge: "Mallory's" -> Mallory)
        return 0 < i < len(text) - 1 and text[i - 1].isdigit() and text[i + 1].isdigit()
    return _latin(ch)


def _latin(ch: str) -> bool:
    return ch.isalnum() and ord(ch) < 0x2E80


def whole_words(text: str, start: int, end: int) -> tuple[int, int]:
    """``[start, end)`` widened so that neither edge falls inside a Latin-script word."""
    if end <= start:
        return start, end
    while start > 0 and _is_word(text, start) and _is_word(text, start - 1):
        start -= 1
    while end < len(text) and _is_word(text, end - 1) and _is_word(text, end):
        end += 1
    return start, end


def _tidy(text: str, start: int, end: int) -> tuple[int, int]:
    start, end = _strip_punctuation(text, start, end)
    if end - start < 2:
        return start, end
    words = list(jieba_ready().cut(fold(text[start:end])))
    if all(w in LEADING or w in TRAILING for w in words):
        return start, end
    lo, hi = 0, len(words)
    while hi - lo > 1 and words[lo] in LEADING:
        lo += 1
    while hi - lo > 1 and words[hi - 1] in TRAILING:
        hi -= 1
    if (lo, hi) == (0, len(words)):
        return start, end
    a = start + sum(len(w) for w in words[:lo])
    b = a + sum(len(w) for w in words[lo:hi])
    return _strip_punctuation(text, a, b)


def _strip_punctuation(text: str, start: int, end: int) -> tuple[int, int]:
    while start < end and text[start] in EDGE:
        start += 1
    while end > start and text[end - 1] in EDGE:
        end -= 1
    return start, end
