"""Who-is questions ("陶青是谁？", "Who is Guan Bing?"): the answer's short span is the person's
role as the documents state it, not the person's name.

News and reference text give a person's role in a few fixed shapes: a title right before the
name in Chinese ("工信部運行監測協調局局長陶青介紹"), and in English a title before the name
("the engineer Margaret Ellis"), an apposition after it ("Daniel Okafor, the chief curator,")
or "X is/was the …". :func:`role_answer` finds the name (in Han characters for a pinyin name)
in the sentences the answer quotes, then in the retrieved passages, and gives the sentence
with its role as the span. Measured with ``benchmarks/bench_who_is.py`` (16 questions about
the seed article and the English fixtures, written blind): the span names the role in 7 of 16
without this module.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from rag.answer.romanized import romanized_names
from rag.ingest.chunking import split_sentences
from rag.normalize import fold
from rag.types import Answer, Citation, Document, Hit

_ZH_WHO = re.compile(r"^(?P<x>[^，,。？?]{2,12}?)(?:到底|究竟)?(?:是|是不是)?(?:谁|何人|何许人也?|什么人|哪位|什么来头)"
                     r"[?？。!！\s]*$")
_EN_WHO = re.compile(r"^\s*(?:(?:tell me|do you know|who knows)\s+)?who(?:'s|\s+(?:is|was|are|were))\s+(?P<x>[A-Z][\w.\-' ]+?)"
                     r"[?.!\s]*$", re.I)
_EN_TELL = re.compile(r"^\s*(?:tell me|do you know|i'd like to know)\s+who\s+(?P<x>[A-Z][\w.\-' ]+?)\s+(?:is|was)[?.!\s]*$",
                      re.I)
_HAN = r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]"
# the last character of a Chinese title (局长, 所长, 工程师, 教授, 主任, 院士, 记者, 董事长 …)
_ZH_TITLE_END = frozenset("长員员师師家授任士理裁事记記席监監表者官手生导導编編委书書")
_ZH_NOT_ROLE_START = re.compile(r"^(?:据|據|由|和|与|與|及|以及|对|對|向|在|据介绍|據介紹|其中|记者|記者)")
_EN_ROLE_WORD = r"[a-z][a-z\-']*"


def who_is(question: str) -> str | None:
    """The person a who-is question asks about ("陶青" of "陶青是谁？", "Guan Bing" of "Who is Guan Bing?")."""
    text = question.strip()
    m = _ZH_WHO.match(fold(text))
    if m and re.search(_HAN, m.group("x")):
        return text[m.start("x"):m.end("x")].strip()
    m = _EN_WHO.match(text) or _EN_TELL.match(text)
    if m:
        x = re.sub(r"^(?:the|a|an)\s+", "", m.group("x").strip(), flags=re.I)
        return x if x[:1].isupper() else None
    return None


def _occurrences(text: str, person: str) -> list[tuple[int, int]]:
    """Where ``person`` is named in ``text`` (matching form; a pinyin name in Han characters)."""
    folded = fold(text)
    key = fold(person)
    out = [(m.start(), m.end()) for m in re.finditer(re.escape(key), folded)] if key else []
    for rn in romanized_names(person):
        out += [(m.start(), m.end()) for m in rn.pattern().finditer(folded)]
    return sorted(set(out))


def _zh_role(text: str, start: int) -> tuple[int, int] | None:
    """The title right before a name: the run of Han characters back to the clause's start,
    ending on a title character ("…研究所所长" + 关兵), without a leading connective."""
    lo = start
    while lo > 0 and re.match(_HAN, text[lo - 1]) and start - lo < 40:
        lo -= 1
    role = text[lo:start]
    m = _ZH_NOT_ROLE_START.match(fold(role))
    if m:
        lo += m.end()
        role = text[lo:start]
    if len(role) < 2 or fold(role)[-1] not in {fold(c) for c in _ZH_TITLE_END}:
        return None
    return lo, start


def _en_role(text: str, start: int, end: int) -> tuple[int, int] | None:
    """"the engineer Margaret Ellis", "The chief curator, Daniel Okafor,", "Helen Marsh, a marine
    archaeologist who …" (up to the relative clause), "Helen Marsh is the director"."""
    off = max(0, start - 80)
    window = text[off:start]
    before = re.search(rf"(?:^|[,;:(]\s*|\bby\s+|\band\s+|\bof\s+)(?P<r>(?:the|a|an)\s+{_EN_ROLE_WORD}"
                       rf"(?:\s+(?:and\s+)?{_EN_ROLE_WORD}){{0,4}})\s+$", window)
    if before is None:  # a title set off before the name: "The chief curator, Daniel Okafor,"
        before = re.search(rf"(?:^|[,;:(]\s*)(?P<r>(?:[Tt]he|[Aa]n?|[Ii]ts|[Tt]heir)\s+{_EN_ROLE_WORD}"
                           rf"(?:\s+{_EN_ROLE_WORD}){{0,4}}),\s+$", window)
    if before:
        return off + before.start("r"), off + before.end("r")
    after = re.match(r",\s+(?P<r>(?:the|a|an|its|their)\s+[^,;.]{2,60}?)\s*(?:[,;.]|\s(?:who|which|that)\b)", text[end:])
    if after is None:
        after = re.match(r"\s+(?:is|was)\s+(?P<r>(?:the|a|an)\s+[^,;.]{2,60}?)\s*(?:[,;.]|\s(?:who|which|that)\b)", text[end:])
    if after:
        return end + after.start("r"), end + after.end("r")
    return None


def role_in(text: str, person: str) -> tuple[int, int] | None:
    for s, e in _occurrences(text, person):
        found = _zh_role(text, s) if re.match(_HAN, text[s:e] or " ") else _en_role(text, s, e)
        if found:
            return found
    return None


def role_answer(answer: Answer, hits: Sequence[Hit], documents: Mapping[str, Document],
                answer_at: float) -> Answer | None:
    """The answer to a who-is question with the person's role as its span, or None (not a who-is
    question, or no role stated where the answer or the passages name the person). The quoted
    sentences are looked at first; a refused question is answered when a retrieved sentence
    states the role (confidence ``answer_at``: the documents say it in so many words)."""
    person = who_is(answer.question)
    if person is None:
        return None
    places: list[tuple[Citation, str]] = [(c, documents[c.source].text) for c in answer.citations
                                          if answer.found and c.source in documents]
    for h in hits:
        doc = documents.get(h.source)
        if doc is None:
            continue
        for s in split_sentences(doc.text, h.start, h.end):
            places.append((Citation(1, h.source, h.chunk_id, s.start, s.end, doc.text[s.start:s.end]), doc.text))
    for citation, text in places:
        quote = text[citation.start:citation.end]
        found = role_in(quote, person)
        if found is None:
            continue
        lo, hi = citation.start + found[0], citation.start + found[1]
        span = text[lo:hi]
        cited = answer.found and citation in answer.citations
        citations = answer.citations if cited else (Citation(1, citation.source, citation.chunk_id, citation.start,
                                                                  citation.end, quote),)
        holder = next(c for c in citations if c.source == citation.source and c.start <= lo and hi <= c.end)
        return Answer(answer.question, True, answer.text if cited else quote, span,
                      answer.score if answer.found else round(answer_at, 4), citations,
                      Citation(holder.n, holder.source, holder.chunk_id, lo, hi, span),
                      answer.passages if answer.found else tuple(hits))
    return None


__all__ = ["role_answer", "role_in", "who_is"]
