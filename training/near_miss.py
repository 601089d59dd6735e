"""Near-miss unanswerable questions made from answerable dev questions.

A question's most specific noun that its gold passage mentions is swapped for a noun of the same
kind (person, place, organisation, other) from a question about another article, one its own
article never mentions ("高技术制造业**投资**增长了多少?" asked of an article that gives only the
value-added growth). The gold passage still matches every other word, so retrieval finds it and
the reader is tempted by the same answer: the question is on topic, but the documents do not
answer it. Removing a question's passage from the index (the other unanswerable set) never
tests that. Used to calibrate refusals (``python -m training.calibrate_reader``) and, on
training articles only, as "no answer" examples for the reader
(``python -m training.train_reader --near-miss``).

English questions get the same treatment with their Latin words: a proper noun of the question
(capitalised where it is not the first word), a year or number, or a common noun (told by its
ending), swapped for one of the same kind from another article's question. SQuAD 2.0's real
unanswerables are mostly of this shape (an entity or date the paragraph does not have).

A Chinese swap is made in matching form (Simplified, lower case): users ask in Simplified too.

*In-article* twins (:meth:`NearMisses.make_inside`) take the replacement from the question's own
article instead: a word of the same kind that the article mentions but the answer's passage does
not. SQuAD 2.0's real unanswerables look like that ("John Logan directed what 2015 film?" where
Logan wrote it): every word of the question is in the documents, so only reading tells them
apart, where the twins above lack a word the whole article never uses.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace

from rag.evaluation.datasets import EvalQuestion, EvalSet
from rag.ingest.chunking import split_sentences
from rag.index.lexical import STOPWORDS, jieba_ready
from rag.normalize import fold

_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff]+")
_NOUN_FLAGS = ("n", "nr", "nrt", "nrfg", "ns", "nt", "nz", "nl", "ng", "vn")
_WH = re.compile(r"多少|几|哪|什么|甚么|谁|何")
_LATIN_WORD = re.compile(r"[A-Za-z][A-Za-z'-]*[A-Za-z]|\d{2,}")
# the question words and auxiliaries that STOPWORDS keeps for retrieval's sake
_NOUN_ENDINGS = ("tion", "sion", "ment", "ness", "ity", "ism", "ance", "ence", "ship", "ist", "ure", "ogy")
_LATIN_SKIP = frozenset("about after before during there which would could should while other".split())


def _kind(flag: str) -> str:
    """Swaps stay within a kind: a person for a person, a place for a place."""
    return "person" if flag.startswith("nr") else flag if flag in ("ns", "nt") else "noun"


def latin_words(question: str) -> dict[str, str]:
    """The swappable Latin words of ``question`` (as written, before folding), lower-cased, and
    their kinds: ``proper`` (capitalised, not the first word), ``number`` (a year or figure), or
    ``noun`` (a lower-case word of 6+ letters with a noun's ending: without a tagger, the ending
    keeps a swap grammatical, "approval rating" -> "inflation rating", not "confused rating")."""
    out: dict[str, str] = {}
    for i, m in enumerate(_LATIN_WORD.finditer(question)):
        w = m.group(0)
        low = w.lower()
        if low in STOPWORDS or low in _LATIN_SKIP:
            continue
        if w.isdigit():
            out.setdefault(low, "number")
        elif w[0].isupper() and i > 0:
            out.setdefault(low, "proper")
        elif len(w) >= 6 and low.endswith(_NOUN_ENDINGS):
            out.setdefault(low, "noun")
    return out


def swappable(question: str) -> dict[str, tuple[str, str]]:
    """Han nouns and Latin words of ``question`` (any form): matching form -> (kind, as written)."""
    found = {w: (k, w) for w, k in nouns(fold(question)).items()}
    for m in _LATIN_WORD.finditer(question):
        kind = latin_words(question).get(m.group(0).lower())
        if kind is not None:
            found.setdefault(fold(m.group(0)), ("latin-" + kind, m.group(0)))
    return found


def nouns(text: str) -> dict[str, str]:
    """The nouns (2+ Han characters) of ``text`` (matching form) and their kinds."""
    import jieba.posseg as pseg

    jieba_ready()
    out: dict[str, str] = {}
    for tok in pseg.cut(text):
        w = tok.word.strip()
        if (tok.flag in _NOUN_FLAGS and len(w) >= 2 and _HAN.fullmatch(w) and w not in STOPWORDS
                and not _WH.search(w)):
            out.setdefault(w, _kind(tok.flag))
    return out


class NearMisses:
    """Makes near-miss questions. ``passages``: (article, passage text) of the whole set (any
    script); ``questions``: (article, question) whose nouns are the replacements."""

    def __init__(self, passages: Iterable[tuple[str, str]], questions: Iterable[tuple[str, str]], seed: int = 0) -> None:
        self.rng = random.Random(seed)
        passages = list(passages)  # read twice: folded here, as written for the in-article words
        self.article_text: dict[str, list[str]] = {}
        for article, text in passages:
            self.article_text.setdefault(article, []).append(fold(text))
        self.all_passages = [p for ps in self.article_text.values() for p in dict.fromkeys(ps)]
        self.pool = [(a, w, k, surface) for a, q in questions for w, (k, surface) in swappable(q).items()]
        self._count: dict[str, int] = {}
        self._words: dict[str, dict[str, tuple[str, str]]] = {}
        self._raw: dict[str, list[str]] = {}
        for article, text in passages:
            self._raw.setdefault(article, []).append(text)

    def _passages_with(self, word: str) -> int:
        if word not in self._count:
            self._count[word] = sum(word in p for p in self.all_passages)
        return self._count[word]

    def make(self, question: str, article: str, gold: str) -> str | None:
        """The near-miss version of ``question`` (about ``gold``, a passage of ``article``), in
        matching form, or None when it has no noun to swap."""
        own = "\n".join(self.article_text.get(article, [fold(gold)]))
        return self._swap(question, gold, lambda text, target, kind: [
            (w, o) for a, w, k, o in self.pool if a != article and k == kind
            and (kind.startswith("latin") or abs(len(w) - len(target)) <= 1)
            and w not in own and w not in text])

    def article_words(self, article: str) -> dict[str, tuple[str, str]]:
        """The swappable words of ``article``'s passages, sentence by sentence (so that a
        capitalised sentence opener is not taken for a proper noun): matching form -> (kind, as
        written)."""
        if article not in self._words:
            words: dict[str, tuple[str, str]] = {}
            for text in dict.fromkeys(self._raw.get(article, [])):
                for sent in split_sentences(text):
                    for w, found in swappable(text[sent.start:sent.end]).items():
                        words.setdefault(w, found)
            self._words[article] = words
        return self._words[article]

    def make_inside(self, question: str, article: str, gold: str) -> str | None:
        """An in-article twin of ``question`` (about ``gold``, a passage of ``article``): the same
        word swapped for one of its kind (a number for one of as many digits) that another passage
        of ``article`` mentions and ``gold`` does not; None when there is none."""
        gold_f = fold(gold)
        return self._swap(question, gold, lambda text, target, kind: [
            (w, o) for w, (k, o) in self.article_words(article).items() if k == kind
            and (len(w) == len(target) if kind == "latin-number"
                 else kind.startswith("latin") or abs(len(w) - len(target)) <= 1)
            and w not in gold_f and w not in text and target not in w])

    def _swap(self, question: str, gold: str,
              options: Callable[[str, str, str], list[tuple[str, str]]]) -> str | None:
        """``question`` with its most specific word that ``gold`` mentions (the one fewest
        passages of the whole set mention) replaced by one of ``options(question in matching
        form, that word, its kind)``: Chinese in matching form, Latin as written (the reader's
        vocabulary is cased). None when it has no such word or there is no option."""
        text, gold_f = fold(question), fold(gold)
        found = swappable(question)
        mentioned = [w for w in found if w in gold_f]
        if not mentioned:
            return None
        target = min(mentioned, key=lambda w: (self._passages_with(w), -len(w)))
        kind, surface = found[target]
        choices = options(text, target, kind)
        if not choices:
            return None
        word, written = self.rng.choice(choices)
        if kind.startswith("latin"):
            return re.sub(rf"(?<![A-Za-z0-9]){re.escape(surface)}(?![A-Za-z0-9])", lambda _: written, question, count=1)
        return text.replace(target, word, 1)


def near_miss_questions(eval_set: EvalSet, questions: Sequence[EvalQuestion],
                        article_of: Callable[[EvalQuestion], str], seed: int = 0,
                        inside: bool = False) -> list[EvalQuestion]:
    """One near-miss unanswerable question per question of ``questions`` where a swap is possible
    (id ``<id>~near``, or ``<id>~inside`` for in-article twins; no answers, no gold passage)."""
    text_of = {p.source: p.text for p in eval_set.passages}
    passages = {(article_of(q), s) for q in eval_set.questions for s in q.gold_sources if s in text_of}
    maker = NearMisses(((a, text_of[s]) for a, s in sorted(passages)),
                       ((article_of(q), q.question) for q in eval_set.questions), seed)
    out: list[EvalQuestion] = []
    for q in questions:
        gold = "\n".join(text_of.get(s, "") for s in q.gold_sources)
        swapped = (maker.make_inside if inside else maker.make)(q.question, article_of(q), gold)
        if swapped is not None:
            out.append(replace(q, id=f"{q.id}~{'inside' if inside else 'near'}", question=swapped, answers=(), gold_sources=(), gold_paragraphs=()))
    return out
