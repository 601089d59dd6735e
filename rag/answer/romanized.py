"""Chinese names written in pinyin in an English question ("Zhao Zhiguo"), found in Han text (趙志國).

Across languages names are the one thing word overlap could still match, but they are written in
different scripts. :func:`romanized_names` picks runs of two or three capitalised words that
spell whole pinyin syllables ("Zhao Zhiguo", "Deng Daozheng", "Tao Qing");
:meth:`RomanizedName.pattern` is a regex of the Han characters that read so (the three
commonest readings of every character, from ``pypinyin``'s dictionary), in the written order
and surname last ("Zhiguo Zhao"). Matching is on :func:`rag.normalize.fold`-ed text
(Simplified), and the dictionary covers Traditional too.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

_WORD = re.compile(r"[A-ZÜ][a-zü]+(?:['’-](?!s\b)[A-Za-zÜü][a-zü]*)?")  # "Daozheng's": Daozheng
_VOWEL = re.compile(r"[aeiouv]")
#: Well-known names spelled the Cantonese way whose syllables happen to be pinyin too: not read
#: as pinyin (香港 is xiang gang, not hong kong).
NOT_PINYIN = frozenset({"hong kong", "tai po"})
#: Readings kept per character, the dictionary's most common first: enough for surnames read
#: unusually (解 xie is 解's third), while rare ones (方 wǎng, its fifth) would make common
#: words read as names ("一方" as "Yi Wang").
_READINGS = 3
_LONGEST = 6  # letters in the longest pinyin syllable (zhuang, shuang)


@lru_cache(maxsize=1)
def _readings() -> dict[str, str]:
    """Toneless pinyin syllable (ü written u) -> every Han character commonly read so (one string)."""
    from pypinyin.pinyin_dict import pinyin_dict

    chars: dict[str, set[str]] = {}
    for code, readings in pinyin_dict.items():
        if not 0x3400 <= code <= 0x9FFF:
            continue
        for r in readings.split(",")[:_READINGS]:
            syllable = "".join(c for c in unicodedata.normalize("NFD", r.strip()) if not unicodedata.combining(c))
            if syllable.isascii() and syllable.isalpha() and _VOWEL.search(syllable):
                chars.setdefault(syllable, set()).add(chr(code))
    return {s: "".join(sorted(c)) for s, c in chars.items()}


def syllables(word: str, limit: int = 4) -> tuple[tuple[str, ...], ...]:
    """Every way (up to ``limit``) to spell ``word`` as whole pinyin syllables ("Zhiguo" ->
    zhi guo; "Xi'an" -> xi an); none if it is not pinyin ("Ministry"). As in pinyin spelling, a
    syllable starting with a, o or e only follows another after an apostrophe or hyphen."""
    spelled: list[tuple[str, ...]] = [()]
    for part in re.split(r"['’-]", word.lower().replace("ü", "u").replace("v", "u")):
        options = _spell(part, 0, limit) if part.isascii() and part.isalpha() else ()
        if not options:
            return ()
        spelled = [a + b for a in spelled for b in options][:limit]
    return tuple(spelled)


@lru_cache(maxsize=4096)
def _spell(part: str, i: int, limit: int) -> tuple[tuple[str, ...], ...]:
    """The spellings of ``part[i:]`` as syllables, longest first syllable first."""
    if i == len(part):
        return ((),)
    if i > 0 and part[i] in "aoe":
        return ()
    table = _readings()
    out: list[tuple[str, ...]] = []
    for j in range(min(len(part), i + _LONGEST), i, -1):
        if part[i:j] in table:
            out.extend((part[i:j], *rest) for rest in _spell(part, j, limit))
    return tuple(out[:limit])


@dataclass(frozen=True)
class RomanizedName:
    """A name as the question writes it, with the syllable sequences it may stand for."""

    text: str
    readings: tuple[tuple[str, ...], ...]

    def pattern(self) -> re.Pattern[str]:
        return _pattern(self.readings)

    def found_in(self, folded: str) -> bool:
        """True when ``folded`` (folded text) holds the name in Han characters or as written."""
        return bool(self.pattern().search(folded)) or self.text.lower() in folded


@lru_cache(maxsize=256)
def _pattern(readings: tuple[tuple[str, ...], ...]) -> re.Pattern[str]:
    table = _readings()
    return re.compile("|".join("".join(f"[{table[s]}]" for s in r) for r in readings))


def romanized_names(question: str) -> tuple[RomanizedName, ...]:
    """Two or three adjacent capitalised words that are all pinyin, 2 to 4 syllables in all,
    one of the end words a single syllable (the surname): "Zhao Zhiguo", "Zhiguo Zhao"."""
    words = list(_WORD.finditer(question))
    runs: list[list[tuple[str, tuple[tuple[str, ...], ...]]]] = []
    prev_end = -2
    for m in words:
        spelled = syllables(m.group())
        adjacent = question[prev_end:m.start()] == " "
        if spelled and runs and adjacent and runs[-1]:
            runs[-1].append((m.group(), spelled))
        else:
            runs.append([(m.group(), spelled)] if spelled else [])
        prev_end = m.end()
    names: list[RomanizedName] = []
    for run in runs:
        if not 2 <= len(run) <= 3 or " ".join(w for w, _ in run).lower() in NOT_PINYIN:
            continue
        parts = [spelled for _, spelled in run]
        if not any(len(s) == 1 for s in parts[0]) and not any(len(s) == 1 for s in parts[-1]):
            continue  # no single-syllable surname at either end
        orders = [parts, parts[-1:] + parts[:-1]]  # as written; surname (last word) first
        readings: list[tuple[str, ...]] = []
        for order in orders:
            for combo in _product(order):
                if 2 <= len(combo) <= 4 and combo not in readings:
                    readings.append(combo)
        if readings:
            names.append(RomanizedName(" ".join(w for w, _ in run), tuple(readings[:16])))
    return tuple(names)


def _product(parts: list[tuple[tuple[str, ...], ...]]) -> list[tuple[str, ...]]:
    out: list[tuple[str, ...]] = [()]
    for options in parts:
        out = [a + b for a in out for b in options]
    return out
