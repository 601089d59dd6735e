"""Who and what earlier turns of a conversation are about: the people and things their
questions name and their answers' short spans, for :mod:`rag.answer.conversation` to resolve
follow-up questions with.

People are found by jieba's name tags (``nr``), by "X是谁" / "Who is X" and by pinyin names;
things by the noun phrase a question asks about. The rules are general, not about any document.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from rag.answer.question import parse_question
from rag.answer.romanized import romanized_names
from rag.normalize import cjk_share, fold
from rag.types import Answer

#: How many earlier turns a follow-up may draw on (the most recent first).
MAX_TURNS = 8

ZH_PERSON = frozenset({"他", "她", "他们", "她们", "此人", "其人"})
ZH_THING = frozenset({"它", "它们", "这", "那", "此", "该", "这个", "那个", "这些", "那些", "这项", "该项", "此项",
                       "这里", "那里", "这次", "那次"})
ZH_EITHER = frozenset({"其"})
ZH_NAME_FLAGS = frozenset({"nr", "nrfg", "nrt"})
_ZH_NOUNISH = ("n", "eng", "vn", "t")
_ZH_PHRASE_FLAGS = ("n", "eng", "vn", "t", "f", "m", "q", "j", "b", "a")
_ZH_WHO = re.compile(r"谁|哪位|何人|哪一位")
_ZH_SUBJECT_WHO = re.compile(r"^(?P<x>.+?)(?:是|是不是)?(?:谁|何人)[?？。!！\s]*$")
_EN_WHO = re.compile(r"\b(?:who|whom)\b", re.I)
_EN_WHO_IS = re.compile(r"^\s*who\s+(?:is|was|are|were)\s+(?P<x>.+?)[?.!\s]*$", re.I)
_EN_DET = re.compile(r"\b(?:the|a|an)\s+(?P<np>(?:[A-Za-z0-9][\w\-']*\s*){1,4})", re.I)
EN_FUNCTION = frozenset("""is was are were be been do does did has have had can could will would should may might
of in on at for to from by with and or but than as that which who whom what when where why how this these those
open opens close closes start starts begin begins say says said""".split())


@dataclass(frozen=True)
class Turn:
    """One question of a conversation: the user's words, the question asked for them, its answer."""

    question: str
    understood: str
    answer: Answer


@dataclass(frozen=True)
class Token:
    word: str
    flag: str
    start: int
    end: int


def tokens(text: str) -> list[Token]:
    """jieba words with their part-of-speech tags and offsets into ``text`` (tagged in matching
    form, which has the same length, so Traditional text is tagged like Simplified)."""
    import jieba.posseg as pseg

    from rag.index.lexical import jieba_ready

    jieba_ready()
    folded = fold(text)
    source = folded if len(folded) == len(text) else text
    out: list[Token] = []
    pos = 0
    for tok in pseg.cut(source):
        out.append(Token(text[pos:pos + len(tok.word)], tok.flag, pos, pos + len(tok.word)))
        pos += len(tok.word)
    return out


def is_chinese(text: str) -> bool:
    return cjk_share(text) > 0.0


def nounish(tok: Token) -> bool:
    return tok.flag.startswith(_ZH_NOUNISH) or bool(re.search(r"\d", tok.word))


_DOTS = frozenset("·•・‧")
_HAN = re.compile(r"[\u3400-\u9fff]+")


def zh_names(text: str) -> list[str]:
    """Person names by jieba's tags; a transcribed name joined by middle dots ("威廉·瓊斯") whole."""
    toks = tokens(text)
    out: list[str] = []
    i = 0
    while i < len(toks):
        t = toks[i]
        if t.flag in ZH_NAME_FLAGS and len(t.word.strip()) >= 2:
            end, k = i, i + 1
            while True:  # up to two more pieces before each dot, then the piece after it
                m = k
                while m < len(toks) and m - k < 2 and _name_piece(toks[m]):
                    m += 1
                if m + 1 < len(toks) and toks[m].word in _DOTS and _name_piece(toks[m + 1]):
                    end, k = m + 1, m + 2
                    continue
                break
            whole = text[t.start:toks[end].end]
            if whole not in out:
                out.append(whole)
            i = end + 1
            continue
        i += 1
    return out


def _name_piece(tok: Token) -> bool:
    return bool(_HAN.fullmatch(tok.word)) and not tok.flag.startswith(("v", "p", "u", "r", "c", "d"))


def _mentioned(name: str, answer: Answer) -> bool:
    """Whether the turn's answer or the passages it found mention ``name`` (in pinyin: its Han
    characters): a word jieba tags as a name that the documents do not hold is no one."""
    texts = [answer.text] + [p.text for p in answer.passages]
    folded = [fold(t) for t in texts]
    key = fold(name)
    if any(key in f for f in folded):
        return True
    return any(rn.pattern().search(f) for rn in romanized_names(name) for f in folded)


def en_names(text: str) -> list[str]:
    """Pinyin names, then runs of capitalised words that do not begin the sentence."""
    names = [n.text for n in romanized_names(text)]
    for m in re.finditer(r"(?<![.?!]\s)(?<!^)\b([A-Z][a-z]+(?:\s+[A-Z][a-z]+)+)\b", text):
        if m.start() > 0 and m.group(1) not in names:
            names.append(m.group(1))
    return names


def who_subject(text: str) -> str | None:
    """X in "X是谁" / "Who is X" (X is then a person, whatever its tags)."""
    stripped = text.strip()
    m = _ZH_SUBJECT_WHO.match(fold(stripped))  # matching form: "誰" as "谁"; same length
    if m and is_chinese(m.group("x")) and not _pronoun_in(m.group("x")):
        return stripped[m.start("x"):m.end("x")].strip()
    m = _EN_WHO_IS.match(text)
    if m:
        x = re.sub(r"^(?:the|a|an)\s+", "", m.group("x").strip(), flags=re.I)
        if x[:1].isupper():
            return x
    return None


def _pronoun_in(text: str) -> bool:
    return any(t.word in ZH_PERSON or t.word in ZH_THING or t.word in ZH_EITHER for t in tokens(text)
               if t.flag.startswith("r"))


def _span_of(answer: Answer) -> str | None:
    if not answer.found or not answer.span:
        return None
    span = answer.span.strip()
    return span if 0 < len(span) <= 40 else None


def _asks_who(text: str) -> bool:
    return bool(_ZH_WHO.search(fold(text)) or _EN_WHO.search(text))


def person_of(turn: Turn) -> str | None:
    """The person a turn is about: X of "X是谁" / "Who is X"; the answer of another "who" question
    ("谁是工信部总工程师？", "Who restored it?"); else the person its question names. A name in
    pinyin is given in the Han characters of the answer that quotes it ("Guan Bing" → 關兵)."""
    q = turn.understood
    subject = who_subject(q)
    if subject:
        return _as_quoted(subject, turn.answer)
    span = _span_of(turn.answer)
    if _asks_who(q):
        if span:
            inside = zh_names(span) if is_chinese(span) else en_names(" " + span) or [span]
            return inside[0] if inside else span
        if turn.answer.found:  # no short answer: the person its quote names ("…總工程師趙志國表示")
            text = turn.answer.text
            named = zh_names(text) if is_chinese(text) else en_names(" " + text)
            return named[0] if named else None
        return None
    names = [n for n in zh_names(q) + en_names(q) if _mentioned(n, turn.answer)]
    return _as_quoted(names[0], turn.answer) if names else None


def _as_quoted(name: str, answer: Answer) -> str:
    """A pinyin name as the answer's quote writes it in Han characters, else as it is."""
    if not name.isascii():
        return name
    texts = ([answer.text] if answer.found else []) + [p.text for p in answer.passages]
    for rn in romanized_names(name):
        for text in texts:
            m = rn.pattern().search(fold(text))
            if m:
                return text[m.start():m.end()]
    return name


def zh_topic(text: str) -> str | None:
    """The noun phrase a Chinese question asks about: its longest run of noun-like words, trimmed
    to end on a noun ("前三季度规模以上工业增加值同比增长多少" → 前三季度规模以上工业增加值)."""
    toks = tokens(text)
    best: list[Token] = []
    run: list[Token] = []
    toks = toks + [Token("", "x", len(text), len(text))]
    for i, tok in enumerate(toks):
        if tok.flag.startswith(_ZH_PHRASE_FLAGS) and tok.word not in ("多少", "几"):
            run.append(tok)
            continue
        if run and tok.flag.startswith("v") and i + 1 < len(toks) and toks[i + 1].flag.startswith("n"):
            run.append(tok)  # a verb inside a noun phrase ("技术合同成交总额")
            continue
        while run and not nounish(run[-1]):
            run.pop()
        while run and run[0].flag.startswith(("q", "u")):  # "家金融机构" (of "多少家金融机构")
            run.pop(0)
        if sum(len(t.word) for t in run) > sum(len(t.word) for t in best):
            best = run
        run = []
    if not best:
        return None
    return text[best[0].start:best[-1].end]


_EN_OF_NAME = re.compile(r"\b(?:the\s+)?(?P<np>[A-Z][\w\-']*(?:\s+[A-Z][\w\-']*)*"
                         r"(?:\s+of\s+(?:the\s+)?[A-Z][\w\-']*(?:\s+[A-Z][\w\-']*)*)?)")


_EN_SPEAKS = re.compile(r"\s+(?:say|says|said|think|thinks|thought|argue|argues|argued|expect|expects|expected|"
                        r"want|wants|wanted|believe|believes|believed|explain|explained|tell|told|claim|claims|"
                        r"claimed|suggest|suggests|suggested|plan|plans|planned)\b", re.I)
_EN_WHO_OF = re.compile(r"^\s*who\s+(?:is|was|are|were)\s+.+?\bof\b", re.I)


def en_topic(text: str, answer: Answer | None = None) -> str | None:
    """The thing an English question asks about: its first proper name after the first word
    ("the Friends of the Harbour Museum"), else the words after its first article, as far as the
    answer quoting the documents repeats them (without an answer, the first one)."""
    for m in _EN_OF_NAME.finditer(text):
        if m.start("np") > 0 and not _EN_SPEAKS.match(text, m.end()):  # not the speaker of "What did X say…"
            return m.group(0)
    quoted = {w.lower() for w in re.findall(r"[\w\-']+", answer.text)} if answer is not None and answer.found else set()
    role = _EN_WHO_OF.match(text)  # "Who is the chief curator of the museum?": the role is a person
    for m in _EN_DET.finditer(text, role.end() if role else 0):
        words = []
        for w in m.group("np").split():
            w = w.strip("?.!,")
            if w.lower() in EN_FUNCTION or (words and quoted and w.lower() not in quoted):
                break
            words.append(w)
            if not quoted:
                break
        if words:
            return " ".join(words)
    return None


def thing_of(turn: Turn) -> str | None:
    """What a turn is about: its answer when it asked which thing ("哪个行业…" → the industries,
    "Which club…"; not "What wood…", whose answer is a kind), else the noun phrase its question
    asks about."""
    q = turn.understood
    parsed = parse_question(q)
    span = _span_of(turn.answer)
    chinese = is_chinese(q)
    which = chinese or bool(re.match(r"\s*(?:which|in which|at which|on which)\b", q, re.I))
    if span and which and parsed.kind == "entity" and not _asks_who(q) and not re.search(r"\d", span):
        return span
    return zh_topic(q) if is_chinese(q) else en_topic(q, turn.answer)


def mentions(text: str, subject: str) -> bool:
    """Whether ``text`` names ``subject``: in matching form, a pinyin name also in Han characters,
    an English name also by one of its words ("Okafor" for "Daniel Okafor")."""
    folded = fold(text)
    if fold(subject) in folded or any(rn.found_in(folded) for rn in romanized_names(subject)):
        return True
    words = [w for w in re.findall(r"[A-Za-z][\w\-']+", subject) if w[:1].isupper() and len(w) >= 3]
    return any(re.search(rf"\b{re.escape(w.lower())}\b", folded) for w in words)


def names_someone_else(text: str, subject: str) -> bool:
    """Whether ``text`` is about another person than ``subject``: it names a person (jieba's name
    tags, capitalised English names) and not ``subject``."""
    if mentions(text, subject):
        return False
    if is_chinese(text):
        # a name jieba tags, or the speaker a clause opens with ("关兵表示…", whatever its tag)
        return bool(zh_names(text) or _ZH_SPEAKER.search(fold(text)))
    return bool(en_names(" " + text) or _EN_SPEAKER.search(text))


_EN_SPEAKER = re.compile(r"\b(?!(?:He|She|It|They|We|You|This|That|The|There)\b)[A-Z][a-z]+\s+(?:said|says|argued|argues|added|told|explained|thinks|believes|"
                         r"expects|wants|stated)\b")
_ZH_SPEAKER = re.compile(r"(?:^|[，,。；;：:\s])[\u4e00-\u9fff]{2,3}(?:表示|认为|说|介绍|指出|称)")


def find(turns: Sequence[Turn], pick: Callable[[Turn], str | None]) -> str | None:
    for turn in reversed(turns[-MAX_TURNS:]):
        found = pick(turn)
        if found:
            return found
    return None
