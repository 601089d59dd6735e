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
from rag.answer.referents import (MAX_TURNS, Token, Turn, find, mentions, names_someone_else,
                                  EN_FUNCTION, ZH_EITHER, ZH_NAME_FLAGS, ZH_PERSON, ZH_THING, en_names, en_topic, is_chinese, nounish, person_of, thing_of, tokens, who_subject, zh_names, zh_topic)
from rag.normalize import fold
from rag.types import Answer

__all__ = ["MAX_TURNS", "Ask", "AskAbout", "Conversation", "Resolution", "Turn", "mentions", "names_someone_else",
           "resolve"]

_ZH_DEMONSTRATIVE = frozenset({"这", "那", "此", "该", "这个", "那个", "这些", "那些", "这项", "该项", "此项", "这次",
                               "那次"})
_ZH_WHAT_ABOUT = re.compile(r"^(?:那么|那|还有|另外)?(?P<x>.+?)(?:呢|怎么样|如何)[?？。!！\s]*$")
_EN_PERSON = {"he": "", "she": "", "him": "", "his": "'s", "her": "", "hers": "'s"}
_EN_THING = {"it": "", "its": "'s", "they": "", "them": "", "their": "'s"}
_EN_WORD = re.compile(r"[A-Za-z][A-Za-z'\-]*")
# "And when will it open?": a question of its own after a joining word
_EN_LEAD = re.compile(r"^\s*(?:and|but|so|also|then)\s*,?\s+", re.I)
_EN_QUESTION_START = re.compile(r"^(?:what|which|who|whom|whose|when|where|why|how|is|are|was|were|do|does|did|can|"
                                r"could|will|would|has|have|had|should)\b", re.I)
_EN_PREPOSITIONS = frozenset("on in at for during after before with without under over from to by including if "
                             "counting since until".split())
_EN_POSSESSIVES = {"its": thing_of, "their": thing_of, "his": person_of, "her": person_of}
_EN_WHAT_ABOUT = re.compile(r"^\s*(?:and\s+)?(?:what|how)\s+about\s+(?P<x>.+?)[?.!\s]*$|^\s*and\s+(?P<y>.+?)\s*\?\s*$",
                            re.I)


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


def _zh_resolve(question: str, turns: Sequence[Turn]) -> Resolution:
    substituted = _zh_what_about(question, turns)
    if substituted is not None:
        return substituted
    toks = tokens(question)
    unresolved = False
    for i, tok in enumerate(toks):
        if not tok.flag.startswith("r"):
            continue
        nxt = toks[i + 1] if i + 1 < len(toks) else None
        if tok.word in ZH_PERSON:
            referent = find(turns, person_of)
        elif tok.word in ZH_EITHER:
            referent = find(turns, person_of) or find(turns, thing_of)
        elif tok.word in ZH_THING:
            referent = find(turns, thing_of)
        else:
            continue
        if not referent:
            unresolved = True
            continue
        if tok.word in _ZH_DEMONSTRATIVE and nxt is not None and nounish(nxt):
            # "该部门" / "这个平台": the referent's own, unless the referent already ends with it
            at = fold(referent).find(fold(nxt.word))
            if at >= 0:
                replaced = question[:tok.start] + referent[:at + len(nxt.word)] + question[nxt.end:]
            else:
                replaced = question[:tok.start] + referent + "的" + question[nxt.start:]
        elif tok.word == "其" and nxt is not None and nounish(nxt):
            replaced = question[:tok.start] + referent + "的" + question[tok.end:]
        else:
            replaced = question[:tok.start] + referent + question[tok.end:]
        return Resolution(question, replaced, "pronoun", referent)
    named = any(t.flag in ZH_NAME_FLAGS or t.flag.startswith(("ns", "nt", "nz")) for t in toks)
    subjectless = bool(toks) and toks[0].flag.startswith("p") and not named  # "由哪個機關管理？"
    if turns and not unresolved and (subjectless or not any(nounish(t) or t.flag in ZH_NAME_FLAGS for t in toks)):
        # no noun at all ("同比增长了多少？"), or no subject: the one the conversation is about
        prev = turns[-1].understood
        topic = zh_topic(prev) if is_chinese(prev) else None
        if topic:
            return Resolution(question, topic + question.strip(), "ellipsis", topic)
    return Resolution(question, question, "standalone")


def _zh_what_about(question: str, turns: Sequence[Turn]) -> Resolution | None:
    """"陶青呢？" / "那技术合同成交总额呢？": the last question asked again about the new subject."""
    m = _ZH_WHAT_ABOUT.match(question.strip())
    if not m or not turns:
        return None
    subject = m.group("x").strip()
    sub_toks = tokens(subject)
    prev = turns[-1].understood
    if not sub_toks or not is_chinese(prev):
        return None
    prev_toks = tokens(prev)
    if sub_toks[0].flag.startswith(("v", "p")) and not zh_names(subject):
        return _zh_new_predicate(question, subject, prev, prev_toks)
    if not all(nounish(t) or t.flag.startswith(("f", "m", "q", "a", "b", "j", "u")) for t in sub_toks):
        return None
    if not zh_names(subject):
        same_kind = _zh_same_head(question, subject, sub_toks, prev, prev_toks)
        if same_kind is not None:
            return same_kind
        attribute = _zh_attribute(prev_toks) if len(sub_toks) == 1 and sub_toks[0].flag == "n" else None
        if attribute is not None:  # "那人口呢？" after "馬祖列島的面積是多少？": another attribute of the subject
            return Resolution(question, prev[:attribute.start] + subject + prev[attribute.end:], "substitution", subject)
    old = None
    if zh_names(subject) or who_subject(prev):
        old = who_subject(prev) or next(iter(zh_names(prev)), None)
    old = old or zh_topic(prev)
    parsed = parse_question(prev)
    if "的" in subject and parsed.wh_start >= 0:
        # an attribute of its own ("那马祖的面积呢？"): the new subject with the last question's word
        # for what it asked ("多少")
        return Resolution(question, subject + prev[parsed.wh_start:parsed.wh_end] + "？", "substitution", subject)
    if old and old in prev:
        return Resolution(question, prev.replace(old, subject, 1), "substitution", subject)
    return None


def _zh_same_head(question: str, subject: str, sub_toks: list[Token], prev: str,
                  prev_toks: list[Token]) -> Resolution | None:
    """"三茂铁路呢？" after "广三铁路全长多少公里？": the new subject ends with the noun the last
    question's subject ends with (铁路), so it takes that subject's place, whatever its tags."""
    head = fold(sub_toks[-1].word)
    for i, tok in enumerate(prev_toks):
        if fold(tok.word) != head or not nounish(tok):
            continue
        j = i
        while j > 0 and nounish(prev_toks[j - 1]) and not prev_toks[j - 1].flag.startswith("t"):
            j -= 1
        if fold(prev[prev_toks[j].start:tok.end]) == fold(subject):
            return None
        return Resolution(question, prev[:prev_toks[j].start] + subject + prev[tok.end:], "substitution", subject)
    return None


def _zh_attribute(prev_toks: list[Token]) -> Token | None:
    """What the last question asked of its subject: the noun after "的" ("馬祖列島的面積"), else the
    last plain noun after a named subject ("广茂铁路全长")."""
    for a, b in zip(prev_toks, prev_toks[1:]):
        if a.word == "的" and b.flag == "n":
            return b
    named = False
    for a, b in zip(prev_toks, prev_toks[1:]):
        named = named or a.flag in ZH_NAME_FLAGS or a.flag.startswith(("ns", "nt", "nz"))
        if named and b.flag == "n" and nounish(a):
            after = prev_toks[prev_toks.index(b) + 1:]
            if not after or not nounish(after[0]):
                return b
    return None


def _zh_new_predicate(question: str, subject: str, prev: str, prev_toks: list[Token]) -> Resolution:
    """"那进入一线队呢？": the last question with its last verb and object replaced by the new ones;
    a condition where it has none ("算上两条支线呢？" → "算上两条支线，广茂铁路全长多少公里？")."""
    for i in range(len(prev_toks) - 2, -1, -1):
        tok = prev_toks[i]
        if tok.flag.startswith("v") and tok.word not in ("是", "有") and nounish(prev_toks[i + 1]):
            j = i + 1
            while j + 1 < len(prev_toks) and nounish(prev_toks[j + 1]):
                j += 1
            return Resolution(question, prev[:tok.start] + subject + prev[prev_toks[j].end:], "substitution", subject)
    return Resolution(question, subject + "，" + prev.strip(), "ellipsis", subject)


def _en_follow(x: str, turns: Sequence[Turn]) -> tuple[str, str] | None:
    """The question "And X?" / "What about X?" stands for, and its new part: a phrase with a
    preposition takes the place of the last question's phrase with the same one, or is added to
    it ("And on Mondays in winter?"); "its/their/his/her N" asks for another attribute of what or
    whom the conversation is about ("What about its cost?"), and so does a common noun after a
    question about a named thing. None: a new subject (the caller substitutes it)."""
    words = x.split()
    if not words:
        return None
    prev = turns[-1].understood
    body = prev.strip().rstrip("?.! ")
    first = words[0].lower()
    if first in _EN_PREPOSITIONS:
        alternatives = "|".join(sorted(_EN_PREPOSITIONS))
        same = re.search(rf"\b{first}\b\s+.*?(?=\s+(?:{alternatives})\b|$)", body, re.I)
        if same:
            return body[:same.start()] + x + body[same.end():] + "?", x
        return body + " " + x + "?", x
    pick = _EN_POSSESSIVES.get(first)
    if pick is not None and len(words) > 1:
        owner = find(turns, pick)
        if owner:
            attribute = " ".join(words[1:])
            if pick is person_of:
                return f"What is {owner}'s {attribute}?", owner
            owner = "the " + owner if not owner[:1].isupper() and _en_determinable(owner) else owner
            return f"What is the {attribute} of {owner}?", owner
        return None
    topic = en_topic(prev, turns[-1].answer)
    if not x[:1].isupper() and not en_names(" " + x) and topic and topic[:1].isupper() and topic.lower() not in x.lower():
        noun = re.sub(r"^(?:the|a|an)\s+", "", x, flags=re.I)
        return f"What is the {noun} of {topic}?", topic
    return None


def _en_resolve(question: str, turns: Sequence[Turn]) -> Resolution:
    lead = _EN_LEAD.match(question)
    if lead and _EN_QUESTION_START.match(question[lead.end():]):
        inner = _en_resolve(question[lead.end():], turns)
        if inner.standalone:
            return Resolution(question, question, "standalone")
        return Resolution(question, inner.understood[:1].upper() + inner.understood[1:], inner.how, inner.referent)
    m = _EN_WHAT_ABOUT.match(question)
    if m and turns:
        subject = (m.group("x") or m.group("y") or "").strip()
        follow = _en_follow(subject, turns)
        if follow is not None:
            return Resolution(question, follow[0], "substitution", follow[1])
        prev = turns[-1].understood
        old = person_of(turns[-1]) if en_names(subject) or subject[:1].isupper() else None
        old = old if old and old in prev else en_topic(prev)
        if subject and old and old in prev:
            return Resolution(question, prev.replace(old, subject, 1), "substitution", subject)
    for m in _EN_WORD.finditer(question):
        word = m.group().lower()
        if word in _EN_PERSON:
            referent, suffix = find(turns, person_of), _EN_PERSON[word]
            if word == "her" and _en_possessive(question[m.end():]):
                suffix = "'s"
        elif word in _EN_THING:
            referent, suffix = find(turns, thing_of), _EN_THING[word]
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
    return bool(m) and m.group(1).lower() not in EN_FUNCTION


def _en_determinable(referent: str) -> bool:
    return referent.isascii() and not referent.lower().startswith(("the ", "a ", "an "))


def resolve(question: str, turns: Sequence[Turn]) -> Resolution:
    """How ``question`` is understood after ``turns`` (oldest first)."""
    if not turns:
        return Resolution(question, question, "standalone")
    if is_chinese(question):
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
