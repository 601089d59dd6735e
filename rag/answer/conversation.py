"""Follow-up questions, still extractive: what a question leaves out, taken from the turns before it.

A follow-up question ("他认为下一步应该怎么做？", "What did he say?", "同比增长了多少？", "陶青呢？") is
rewritten into a question that stands alone, from the user's words and what the earlier turns
established: the people and things their questions named and their answers' short spans. Nothing
is generated: the rewritten question is only used for retrieval and reading, and the answer says
how the question was understood (:attr:`rag.types.Answer.understood`). A question that needs no
context is asked exactly as written, and its answer is exactly what :meth:`rag.QA.ask` gives.

The rules are general, not about any document: pronouns and demonstratives are found by jieba's
part-of-speech tags (Chinese) or as whole words (English); people by jieba's name tags (``nr``),
by "X是谁" / "Who is X" and by pinyin names; things by the noun phrase a question asks about.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from rag.answer.question import parse_question
from rag.answer.romanized import romanized_names
from rag.normalize import cjk_share, fold
from rag.types import Answer

#: How many earlier turns a follow-up may draw on (the most recent first).
MAX_TURNS = 8

# --- Chinese -------------------------------------------------------------------------------------
_ZH_PERSON = frozenset({"他", "她", "他们", "她们", "此人", "其人"})
_ZH_THING = frozenset({"它", "它们", "这", "那", "此", "该", "这个", "那个", "这些", "那些", "这项", "该项", "此项",
                       "这里", "那里", "这次", "那次"})
_ZH_EITHER = frozenset({"其"})
# a demonstrative that stands before a noun ("该部门", "这个平台") rather than for one
_ZH_DEMONSTRATIVE = frozenset({"这", "那", "此", "该", "这个", "那个", "这些", "那些", "这项", "该项", "此项", "这次",
                               "那次"})
_ZH_NAME_FLAGS = frozenset({"nr", "nrfg", "nrt"})
_ZH_NOUNISH = ("n", "eng", "vn", "t")
_ZH_PHRASE_FLAGS = ("n", "eng", "vn", "t", "f", "m", "q", "j", "b", "a")
_ZH_WHO = re.compile(r"谁|哪位|何人|哪一位")
_ZH_SUBJECT_WHO = re.compile(r"^(?P<x>.+?)(?:是|是不是)?(?:谁|何人)[?？。!！\s]*$")
_ZH_WHAT_ABOUT = re.compile(r"^(?:那么|那|还有|另外)?(?P<x>.+?)(?:呢|怎么样|如何)[?？。!！\s]*$")

# --- English -------------------------------------------------------------------------------------
_EN_PERSON = {"he": "", "she": "", "him": "", "his": "'s", "her": "", "hers": "'s"}
_EN_THING = {"it": "", "its": "'s", "they": "", "them": "", "their": "'s"}
_EN_WORD = re.compile(r"[A-Za-z][A-Za-z'\-]*")
_EN_WHO = re.compile(r"\b(?:who|whom)\b", re.I)
_EN_WHO_IS = re.compile(r"^\s*who\s+(?:is|was|are|were)\s+(?P<x>.+?)[?.!\s]*$", re.I)
_EN_WHAT_ABOUT = re.compile(r"^\s*(?:and\s+)?(?:what|how)\s+about\s+(?P<x>.+?)[?.!\s]*$|^\s*and\s+(?P<y>.+?)\s*\?\s*$",
                            re.I)
_EN_DET = re.compile(r"\b(?:the|a|an)\s+(?P<np>(?:[A-Za-z0-9][\w\-']*\s*){1,4})", re.I)
_EN_FUNCTION = frozenset("""is was are were be been do does did has have had can could will would should may might
of in on at for to from by with and or but than as that which who whom what when where why how this these those
open opens close closes start starts begin begins say says said""".split())


@dataclass(frozen=True)
class Turn:
    """One question of a conversation: the user's words, the question asked for them, its answer."""

    question: str
    understood: str
    answer: Answer


@dataclass(frozen=True)
class Resolution:
    """How a question was understood. ``how`` is ``"standalone"`` (asked as written),
    ``"pronoun"`` (a pronoun or demonstrative replaced by ``referent``), ``"ellipsis"`` (the
    subject the question leaves out, ``referent``, put before it) or ``"substitution"`` ("陶青呢？",
    "What about X?": the earlier question asked again about the new subject)."""

    question: str
    understood: str
    how: str
    referent: str | None = None

    @property
    def standalone(self) -> bool:
        return self.how == "standalone"


@dataclass(frozen=True)
class _Token:
    word: str
    flag: str
    start: int
    end: int


def _tokens(text: str) -> list[_Token]:
    """jieba words with their part-of-speech tags and offsets into ``text`` (tagged in matching
    form, which has the same length, so Traditional text is tagged like Simplified)."""
    import jieba.posseg as pseg

    from rag.index.lexical import jieba_ready

    jieba_ready()
    folded = fold(text)
    source = folded if len(folded) == len(text) else text
    out: list[_Token] = []
    pos = 0
    for tok in pseg.cut(source):
        out.append(_Token(text[pos:pos + len(tok.word)], tok.flag, pos, pos + len(tok.word)))
        pos += len(tok.word)
    return out


def _is_chinese(text: str) -> bool:
    return cjk_share(text) > 0.0


def _nounish(tok: _Token) -> bool:
    return tok.flag.startswith(_ZH_NOUNISH) or bool(re.search(r"\d", tok.word))


_DOTS = frozenset("·•・‧")
_HAN = re.compile(r"[\u3400-\u9fff]+")


def _zh_names(text: str) -> list[str]:
    """Person names by jieba's tags; a transcribed name joined by middle dots ("威廉·瓊斯") whole."""
    toks = _tokens(text)
    out: list[str] = []
    i = 0
    while i < len(toks):
        t = toks[i]
        if t.flag in _ZH_NAME_FLAGS and len(t.word.strip()) >= 2:
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


def _name_piece(tok: _Token) -> bool:
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


def _en_names(text: str) -> list[str]:
    """Pinyin names, then runs of capitalised words that do not begin the sentence."""
    names = [n.text for n in romanized_names(text)]
    for m in re.finditer(r"(?<![.?!]\s)(?<!^)\b([A-Z][a-z]+(?:\s+[A-Z][a-z]+)+)\b", text):
        if m.start() > 0 and m.group(1) not in names:
            names.append(m.group(1))
    return names


def _who_subject(text: str) -> str | None:
    """X in "X是谁" / "Who is X" (X is then a person, whatever its tags)."""
    stripped = text.strip()
    m = _ZH_SUBJECT_WHO.match(fold(stripped))  # matching form: "誰" as "谁"; same length
    if m and _is_chinese(m.group("x")) and not _pronoun_in(m.group("x")):
        return stripped[m.start("x"):m.end("x")].strip()
    m = _EN_WHO_IS.match(text)
    if m:
        x = re.sub(r"^(?:the|a|an)\s+", "", m.group("x").strip(), flags=re.I)
        if x[:1].isupper():
            return x
    return None


def _pronoun_in(text: str) -> bool:
    return any(t.word in _ZH_PERSON or t.word in _ZH_THING or t.word in _ZH_EITHER for t in _tokens(text)
               if t.flag.startswith("r"))


def _span_of(answer: Answer) -> str | None:
    if not answer.found or not answer.span:
        return None
    span = answer.span.strip()
    return span if 0 < len(span) <= 40 else None


def _asks_who(text: str) -> bool:
    return bool(_ZH_WHO.search(fold(text)) or _EN_WHO.search(text))


def _person_of(turn: Turn) -> str | None:
    """The person a turn is about: X of "X是谁" / "Who is X"; the answer of another "who" question
    ("谁是工信部总工程师？", "Who restored it?"); else the person its question names. A name in
    pinyin is given in the Han characters of the answer that quotes it ("Guan Bing" → 關兵)."""
    q = turn.understood
    subject = _who_subject(q)
    if subject:
        return _as_quoted(subject, turn.answer)
    span = _span_of(turn.answer)
    if _asks_who(q):
        if span:
            inside = _zh_names(span) if _is_chinese(span) else _en_names(" " + span) or [span]
            return inside[0] if inside else span
        return None
    names = [n for n in _zh_names(q) + _en_names(q) if _mentioned(n, turn.answer)]
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


def _zh_topic(text: str) -> str | None:
    """The noun phrase a Chinese question asks about: its longest run of noun-like words, trimmed
    to end on a noun ("前三季度规模以上工业增加值同比增长多少" → 前三季度规模以上工业增加值)."""
    toks = _tokens(text)
    best: list[_Token] = []
    run: list[_Token] = []
    toks = toks + [_Token("", "x", len(text), len(text))]
    for i, tok in enumerate(toks):
        if tok.flag.startswith(_ZH_PHRASE_FLAGS) and tok.word not in ("多少", "几"):
            run.append(tok)
            continue
        if run and tok.flag.startswith("v") and i + 1 < len(toks) and toks[i + 1].flag.startswith("n"):
            run.append(tok)  # a verb inside a noun phrase ("技术合同成交总额")
            continue
        while run and not _nounish(run[-1]):
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


def _en_topic(text: str, answer: Answer | None = None) -> str | None:
    """The thing an English question asks about: its first proper name after the first word
    ("the Friends of the Harbour Museum"), else the words after its first article, as far as the
    answer quoting the documents repeats them (without an answer, the first one)."""
    for m in _EN_OF_NAME.finditer(text):
        if m.start("np") > 0:
            return m.group(0)
    quoted = {w.lower() for w in re.findall(r"[\w\-']+", answer.text)} if answer is not None and answer.found else set()
    for m in _EN_DET.finditer(text):
        words = []
        for w in m.group("np").split():
            w = w.strip("?.!,")
            if w.lower() in _EN_FUNCTION or (words and quoted and w.lower() not in quoted):
                break
            words.append(w)
            if not quoted:
                break
        if words:
            return " ".join(words)
    return None


def _thing_of(turn: Turn) -> str | None:
    """What a turn is about: its answer when it asked which thing ("哪个行业…" → the industries),
    else the noun phrase its question asks about."""
    q = turn.understood
    parsed = parse_question(q)
    span = _span_of(turn.answer)
    if span and parsed.kind == "entity" and not _asks_who(q) and not re.search(r"\d", span):
        return span
    return _zh_topic(q) if _is_chinese(q) else _en_topic(q, turn.answer)


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
    if _is_chinese(text):
        # a name jieba tags, or the speaker a clause opens with ("关兵表示…", whatever its tag)
        return bool(_zh_names(text) or _ZH_SPEAKER.search(fold(text)))
    return bool(_en_names(" " + text) or _EN_SPEAKER.search(text))


_EN_SPEAKER = re.compile(r"\b(?!(?:He|She|It|They|We|You|This|That|The|There)\b)[A-Z][a-z]+\s+(?:said|says|argued|argues|added|told|explained|thinks|believes|"
                         r"expects|wants|stated)\b")
_ZH_SPEAKER = re.compile(r"(?:^|[，,。；;：:\s])[\u4e00-\u9fff]{2,3}(?:表示|认为|说|介绍|指出|称)")


def _find(turns: Sequence[Turn], pick: Callable[[Turn], str | None]) -> str | None:
    for turn in reversed(turns[-MAX_TURNS:]):
        found = pick(turn)
        if found:
            return found
    return None


def _zh_resolve(question: str, turns: Sequence[Turn]) -> Resolution:
    substituted = _zh_what_about(question, turns)
    if substituted is not None:
        return substituted
    toks = _tokens(question)
    unresolved = False
    for i, tok in enumerate(toks):
        if not tok.flag.startswith("r"):
            continue
        nxt = toks[i + 1] if i + 1 < len(toks) else None
        if tok.word in _ZH_PERSON:
            referent = _find(turns, _person_of)
        elif tok.word in _ZH_EITHER:
            referent = _find(turns, _person_of) or _find(turns, _thing_of)
        elif tok.word in _ZH_THING:
            referent = _find(turns, _thing_of)
        else:
            continue
        if not referent:
            unresolved = True
            continue
        if tok.word in _ZH_DEMONSTRATIVE and nxt is not None and _nounish(nxt):
            # "该部门" / "这个平台": the referent's own, unless the referent already ends with it
            at = fold(referent).find(fold(nxt.word))
            if at >= 0:
                replaced = question[:tok.start] + referent[:at + len(nxt.word)] + question[nxt.end:]
            else:
                replaced = question[:tok.start] + referent + "的" + question[nxt.start:]
        elif tok.word == "其" and nxt is not None and _nounish(nxt):
            replaced = question[:tok.start] + referent + "的" + question[tok.end:]
        else:
            replaced = question[:tok.start] + referent + question[tok.end:]
        return Resolution(question, replaced, "pronoun", referent)
    if turns and not unresolved and not any(_nounish(t) or t.flag in _ZH_NAME_FLAGS for t in toks):
        # no noun at all ("同比增长了多少？"): the subject is the one the conversation is about
        prev = turns[-1].understood
        topic = _zh_topic(prev) if _is_chinese(prev) else None
        if topic:
            return Resolution(question, topic + question.strip(), "ellipsis", topic)
    return Resolution(question, question, "standalone")


def _zh_what_about(question: str, turns: Sequence[Turn]) -> Resolution | None:
    """"陶青呢？" / "那技术合同成交总额呢？": the last question asked again about the new subject."""
    m = _ZH_WHAT_ABOUT.match(question.strip())
    if not m or not turns:
        return None
    subject = m.group("x").strip()
    sub_toks = _tokens(subject)
    if not sub_toks or not all(_nounish(t) or t.flag.startswith(("f", "m", "q", "a", "b", "j", "u")) for t in sub_toks):
        return None
    prev = turns[-1].understood
    if not _is_chinese(prev):
        return None
    old = None
    if _zh_names(subject) or _who_subject(prev):
        old = _who_subject(prev) or next(iter(_zh_names(prev)), None)
    old = old or _zh_topic(prev)
    parsed = parse_question(prev)
    if "的" in subject and parsed.wh_start >= 0:
        # an attribute of its own ("那马祖的面积呢？"): the new subject with the last question's word
        # for what it asked ("多少")
        return Resolution(question, subject + prev[parsed.wh_start:parsed.wh_end] + "？", "substitution", subject)
    if old and old in prev:
        return Resolution(question, prev.replace(old, subject, 1), "substitution", subject)
    return None


def _en_resolve(question: str, turns: Sequence[Turn]) -> Resolution:
    m = _EN_WHAT_ABOUT.match(question)
    if m and turns:
        subject = (m.group("x") or m.group("y") or "").strip()
        prev = turns[-1].understood
        old = _person_of(turns[-1]) if _en_names(subject) or subject[:1].isupper() else None
        old = old if old and old in prev else _en_topic(prev)
        if subject and old and old in prev:
            return Resolution(question, prev.replace(old, subject, 1), "substitution", subject)
    for m in _EN_WORD.finditer(question):
        word = m.group().lower()
        if word in _EN_PERSON:
            referent, suffix = _find(turns, _person_of), _EN_PERSON[word]
            if word == "her" and _en_possessive(question[m.end():]):
                suffix = "'s"
        elif word in _EN_THING:
            referent, suffix = _find(turns, _thing_of), _EN_THING[word]
            if word in ("it", "its") and question[m.end():m.end() + 1] == "'":
                continue
        else:
            continue
        if not referent:
            continue
        if word in ("it", "its", "they", "them", "their") and not referent[:1].isupper() and _en_determinable(referent):
            referent = "the " + referent
        return Resolution(question, question[:m.start()] + referent + suffix + question[m.end():], "pronoun",
                          referent)
    return Resolution(question, question, "standalone")


def _en_possessive(rest: str) -> bool:
    """Whether "her" stands before a noun ("her library") rather than as an object ("met her")."""
    m = re.match(r"\s+([A-Za-z][\w\-']*)", rest)
    return bool(m) and m.group(1).lower() not in _EN_FUNCTION


def _en_determinable(referent: str) -> bool:
    return referent.isascii() and not referent.lower().startswith(("the ", "a ", "an "))


def resolve(question: str, turns: Sequence[Turn]) -> Resolution:
    """How ``question`` is understood after ``turns`` (oldest first)."""
    if not turns:
        return Resolution(question, question, "standalone")
    if _is_chinese(question):
        return _zh_resolve(question, turns)
    return _en_resolve(question, turns)


def _usable(question: object) -> bool:
    """Text worth resolving; anything else goes to the index's ``ask``, which says what is wrong."""
    if not isinstance(question, str) or not question.strip() or len(question) > 2000:
        return False
    try:
        question.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


Ask = Callable[[str, int, "str | None"], Answer]
AskAbout = Callable[[str, str, int, "str | None"], Answer]


class Conversation:
    """A conversation with a loaded index: :meth:`ask` answers follow-up questions.

    ``ask`` is the index's own ``ask(question, k, mode)`` (:meth:`rag.QA.ask`); ``ask_about``
    (:meth:`rag.QA.ask_about`, optional) asks a question whose pronoun was resolved, keeping the
    quote on a sentence that names the person or thing it stands for. Each turn is kept
    (:attr:`turns`); :meth:`reset` starts a new conversation.
    """

    def __init__(self, ask: Ask, turns: Sequence[Turn] = (), max_turns: int = MAX_TURNS, *,
                 ask_about: AskAbout | None = None) -> None:
        self._ask = ask
        self._ask_about = ask_about
        self._max_turns = max_turns
        self._turns: list[Turn] = list(turns)[-max_turns:]

    @property
    def turns(self) -> tuple[Turn, ...]:
        return tuple(self._turns)

    def reset(self) -> None:
        self._turns.clear()

    def understand(self, question: str) -> Resolution:
        """How ``question`` would be understood now (nothing is asked)."""
        return resolve(question, self._turns)

    def ask(self, question: str, k: int = 5, mode: str | None = None) -> Answer:
        """An answer to ``question`` in the light of the earlier turns. A question that stands
        alone gets exactly the answer the index's ``ask`` gives; a follow-up is asked as it was
        understood, and its answer says so in ``understood`` (``question`` stays the user's)."""
        resolution = resolve(question, self._turns) if _usable(question) else None
        if resolution is None or resolution.standalone:
            answer = self._ask(question, k, mode)
            understood = question
        else:
            if resolution.how == "pronoun" and resolution.referent and self._ask_about is not None:
                asked = self._ask_about(resolution.understood, resolution.referent, k, mode)
            else:
                asked = self._ask(resolution.understood, k, mode)
            answer = dataclasses.replace(asked, question=question, understood=resolution.understood)
            understood = resolution.understood
        self._turns.append(Turn(question, understood, answer))
        del self._turns[:-self._max_turns]
        return answer
