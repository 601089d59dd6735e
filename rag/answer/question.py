"""What a question asks: its content terms, its question word, the kind of answer it wants."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from rag.index.lexical import STOPWORDS, words
from rag.normalize import cjk_share, fold

_HAN_RUN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+")

# Question words in matching form, longest first. The kind says what the answer looks like.
_WH_NUMBER = r"百分之几|多少|几|多大|多高|多长|多久|多远|多重|多快|多么|how many|how much|what percentage|how long|how old|how far"
_WH_DATE = r"哪一年代|哪个年代|哪一年|哪年|哪一天|哪天|何年|何时|何日|什么时候|什么时间|几世纪|几月|几号|when|what year|which year"
_WH_ORDINAL = r"第几"
_WH_ENTITY = r"哪一个|哪一种|哪一位|哪个|哪些|哪家|哪位|哪种|哪里|哪儿|哪|什么|甚么|谁|何人|何地|何处|何种|为何|何|which|what|who|whom|where"
_WH_RE = re.compile(rf"(?P<date>{_WH_DATE})|(?P<ordinal>{_WH_ORDINAL})|(?P<number>{_WH_NUMBER})|(?P<entity>{_WH_ENTITY})")


@dataclass(frozen=True)
class Question:
    """A parsed question. ``folded`` is the matching form; ``wh_start``/``wh_end`` index it."""

    text: str
    folded: str
    kind: str  # "number", "date", "ordinal", "entity" or "other"
    wh_start: int
    wh_end: int
    words: tuple[str, ...]
    terms: tuple[str, ...]
    cjk: float
    salient: tuple[str, ...] = ()

    @property
    def left(self) -> str:
        return _strip_punct(self.folded[: self.wh_start]) if self.wh_start >= 0 else ""

    @property
    def right(self) -> str:
        return _strip_punct(self.folded[self.wh_end:]) if self.wh_start >= 0 else ""

    @property
    def unit(self) -> str:
        """The measure word a Chinese quantity question puts right after 多少/几 ("多少家" → 家,
        "几个" → 个), or "". (It may be a noun's first character, "多少企业"; users of it check
        that an answer carries it.)"""
        if self.kind != "number" or self.folded[self.wh_start:self.wh_end] not in ("多少", "几"):
            return ""
        nxt = self.folded[self.wh_end:self.wh_end + 1]
        return nxt if _HAN_RUN.fullmatch(nxt) else ""


def _strip_punct(s: str) -> str:
    return re.sub(r"^[\s\W_]+|[\s\W_]+$", "", s)


@lru_cache(maxsize=256)  # one question is parsed by the reader, the gate and the coverage features
def parse_question(text: str) -> Question:
    folded = fold(text)
    m = _WH_RE.search(folded)
    if m:
        kind = m.lastgroup or "other"
        ws, we = m.start(), m.end()
        # Latin question words only count as whole words ("what", not "whatever").
        if folded[ws:we].isascii() and (
            (ws > 0 and folded[ws - 1].isalnum()) or (we < len(folded) and folded[we].isalnum())
        ):
            kind, ws, we = "other", -1, -1
    else:
        kind, ws, we = "other", -1, -1
    wh_positions = set(range(ws, we)) if ws >= 0 else set()
    wh = folded[ws:we] if ws >= 0 else ""
    ws_list = [w for w in words(text) if not (wh and (wh in w or w in wh))]
    terms: list[str] = list(dict.fromkeys(ws_list))
    for run in _HAN_RUN.finditer(folded):
        s = run.group()
        for i in range(len(s) - 1):
            pos = run.start() + i
            if pos in wh_positions or pos + 1 in wh_positions:
                continue
            bg = s[i:i + 2]
            if bg not in STOPWORDS and bg not in terms:
                terms.append(bg)
    return Question(text, folded, kind, ws, we, tuple(ws_list), tuple(terms), cjk_share(text), salient_words(text))


_SALIENT_FLAGS = frozenset({"nr", "nrt", "nrfg", "ns", "nt", "nz", "m"})


def salient_words(text: str) -> tuple[str, ...]:
    """Names, places, organisations, figures and acronyms the question is about (matching form).

    If the documents never mention one of these, they cannot answer the question.
    """
    import jieba.posseg as pseg

    from rag.index.lexical import jieba_ready

    jieba_ready()
    out: list[str] = []
    first_latin = True
    for tok in pseg.cut(text):
        word, flag = tok.word.strip(), tok.flag
        if not word:
            continue
        if re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9.\-']*", word):
            is_first = first_latin
            first_latin = False
            if any(c.isdigit() for c in word) or (word.isupper() and len(word) >= 2) or (
                word[0].isupper() and not is_first
            ):
                out.append(fold(word))
        elif flag in _SALIENT_FLAGS and _HAN_RUN.search(word) and len(word) >= 2:
            if flag == "m" and not re.search(r"\d", word):
                continue
            out.append(fold(word))
    return tuple(dict.fromkeys(w for w in out if w not in STOPWORDS))
