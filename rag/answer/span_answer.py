"""Answers from the learned span reader, combined with retrieval into one calibrated confidence.

For a question, the span reader reads the top retrieved chunks (sliding windows) and proposes
the best span of each window. Its evidence (span score, margin over the window's "no answer"
score), the retrieval scores, the sentence reader's own verdict and how much of the question
the span's sentence and its surroundings state in the question's own words (a near miss
quotes a passage on the right topic that never names what is asked about) are combined by a
logistic model fitted on held-out dev questions: answerable ones and unanswerable ones asked
against an index that lacks their passage (``training/calibrate_reader.py``, which also
measures near misses: the same questions with a key noun swapped for one their article never
mentions). Three outcomes:

* confident: ``Answer.span`` is the span, ``Answer.text`` the sentence(s) holding it (the
  sentence reader's sentence when it has one, with the reader's best span inside it, or the
  sentence reader's own typed span where it extracted one);
* unsure of the span but the documents answer: the sentence reader's answer, without a span;
* not answerable: the refusal, with the closest passages for the user to judge.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from rag.ingest.chunking import split_sentences
from rag.normalize import cjk_share, fold
from rag.answer.reader import NOT_FOUND, TermCoverage
from rag.answer.span_edges import trim_span
from rag.answer.span_features import SpanGuess
from rag.settings import SpanAnswerSettings
from rag.types import Answer, Citation, Document, Hit

#: ``latin``: 1 for a question without Han characters. English and Chinese questions differ in
#: how sure the reader is of right answers (its null scores were trained on SQuAD 2.0's
#: unanswerable English questions, none Chinese): one calibration over both languages needs to
#: know which it is deciding (measured: ``training/calibrate_reader.py --drop-feature latin``).
FEATURES = ("margin", "span_score", "null_score", "best_score", "dense", "bm25", "sentence_found", "sentence_score",
            "cover_sentence", "cover_near", "missing_word", "latin")
_NEAR = 40  # characters either side of the span whose coverage of the question is "near"
_NO_SPAN = -20.0  # span score of a candidate sentence the reader finds no span in


class SpanReading(Protocol):
    def read(self, question: str, passages: Sequence[str]) -> Any: ...


@dataclass(frozen=True)
class Calibration:
    """Logistic confidence over :data:`FEATURES`; ``answer_at``: least confidence to answer,
    ``span_at``: least confidence to also give the span. ``answer_at_latin``/``span_at_latin``:
    the same for questions without Han characters, when fitted apart (None: the same as
    Chinese). One threshold over both languages was set by the English answerable questions,
    the harder to tell from unanswerable ones: with it, DRCD questions asked without their
    passage were refused 0.59 (cross-fitted) where a threshold of their own refuses more at
    the same share of wrong refusals (``training/calibrate_reader.py`` reports both)."""

    weights: tuple[float, ...]
    bias: float
    mean: tuple[float, ...]
    scale: tuple[float, ...]
    answer_at: float
    span_at: float
    answer_at_latin: float | None = None
    span_at_latin: float | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Calibration":
        if tuple(data.get("features", ())) != FEATURES:
            raise ValueError(f"calibration features {data.get('features')} are not {FEATURES}")
        latin = data.get("answer_at_latin"), data.get("span_at_latin")
        return cls(tuple(data["weights"]), float(data["bias"]), tuple(data["mean"]), tuple(data["scale"]),
                   float(data["answer_at"]), float(data["span_at"]),
                   None if latin[0] is None else float(latin[0]), None if latin[1] is None else float(latin[1]))

    def to_dict(self) -> dict[str, Any]:
        return {"features": list(FEATURES), "weights": list(self.weights), "bias": self.bias, "mean": list(self.mean),
                "scale": list(self.scale), "answer_at": self.answer_at, "span_at": self.span_at,
                "answer_at_latin": self.answer_at_latin, "span_at_latin": self.span_at_latin}

    def thresholds(self, question: str) -> tuple[float, float]:
        """``(answer_at, span_at)`` for ``question``'s language."""
        if cjk_share(question) == 0 and self.answer_at_latin is not None:
            return self.answer_at_latin, self.span_at_latin if self.span_at_latin is not None else self.span_at
        return self.answer_at, self.span_at

    def confidence(self, x: Sequence[float]) -> float:
        z = self.bias + sum(w * (v - m) / s for w, v, m, s in zip(self.weights, x, self.mean, self.scale))
        return 1.0 / (1.0 + math.exp(-max(-40.0, min(40.0, z))))


# Used until a calibration is fitted: answer on the sentence reader's verdict, span on margin.
UNCALIBRATED = Calibration(
    weights=(1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 4.0, 0.0, 0.0, 0.0, 0.0, 0.0), bias=-2.0, mean=(0.0,) * len(FEATURES),
    scale=(1.0,) * len(FEATURES), answer_at=0.5, span_at=0.5,
)


@dataclass(frozen=True)
class Evidence:
    """What the decision is made from, kept for calibration and for explaining answers.

    ``hit``/``start``/``end``: the span (document offsets) the answer would give: the reader's
    best span inside the sentence reader's sentence when it has one, else its best span
    anywhere; ``inside`` tells which.
    """

    hit: Hit | None
    start: int
    end: int
    features: tuple[float, ...]
    inside: bool = False
    overall: "Evidence | None" = None  # the reader's best span anywhere, when ``inside``
    gap: float = 0.0  # its score above the span inside the sentence
    sentence: Answer | None = None  # the sentence answer chosen among the sentence reader's candidates


class SpanAnswerer:
    """Composes :class:`Answer` objects from span-reader guesses and the sentence reader."""

    def __init__(self, reader: SpanReading, documents: Mapping[str, Document], calibration: Calibration,
                 settings: SpanAnswerSettings | None = None,
                 coverage: Callable[[str, str], TermCoverage] | None = None) -> None:
        """``coverage``: how much of a question a text states
        (:meth:`rag.answer.reader.Reader.coverage`); without it the coverage features read as full."""
        self.reader = reader
        self.documents = documents
        self.calibration = calibration
        self.settings = settings or SpanAnswerSettings()
        self.coverage = coverage

    def evidence(self, question: str, hits: Sequence[Hit], sentence: Answer,
                 alternatives: Sequence[Answer] = ()) -> Evidence:
        """``sentence``: the sentence reader's answer; ``alternatives``: its answers from its
        next best sentences (:meth:`rag.answer.reader.Reader.answers`), competing for the quote."""
        candidates = [sentence, *alternatives[: max(0, self.settings.alternatives - 1)]] if sentence.found else [sentence]
        top = list(hits[: self.settings.passages])
        # the passages holding the sentence reader's quotes are always read
        holders: list[tuple[int, int, Citation]] = []
        for n, cand in enumerate(candidates):
            for c in cand.citations if cand.found else ():
                j = next((i for i, h in enumerate(top) if _holds(h, c)), None)
                if j is None:
                    extra = next((h for h in hits if _holds(h, c)), None)
                    if extra is None:
                        continue
                    top.append(extra)
                    j = len(top) - 1
                holders.append((n, j, c))
        result = self.reader.read(question, [h.text for h in top]) if top else None
        best: SpanGuess | None = result.best if result is not None else None
        chosen, inside, pick = best, False, 0
        if result is not None and holders:
            within: dict[int, SpanGuess] = {}
            for n, j, c in holders:
                g = result.best_within(j, c.start - top[j].start, c.end - top[j].start)
                if g is not None and (n not in within or g.score > within[n].score):
                    within[n] = g
            w = self.settings.span_weight
            pick = max(range(len(candidates)),
                       key=lambda n: candidates[n].score + w * (within[n].score if n in within else _NO_SPAN))
            if pick in within:
                chosen, inside = within[pick], True
        dense = max((h.dense_score for h in hits), default=0.0)
        bm25 = math.log1p(max((h.bm25_score for h in hits), default=0.0))
        s_found = 1.0 if sentence.found else 0.0
        latin = 0.0 if cjk_share(question) > 0 else 1.0
        best_score = best.score if best is not None else -10.0
        if chosen is None:
            held = candidates[pick].text if candidates[pick].found else ""
            cover = self._cover(question, held)
            return Evidence(None, 0, 0, (-10.0, -10.0, 0.0, best_score, dense, bm25, s_found, sentence.score,
                                         cover.share, cover.share, cover.missing, latin), sentence=candidates[pick])
        hit = top[chosen.passage]
        start, end = trim_span(hit.text, chosen.start, chosen.end)
        # how much of the question the span's sentence, and the text right around the span, state
        if inside:
            held = candidates[pick].text
        else:
            doc_text = self.documents[hit.source].text
            s0, s1 = _sentences_holding(doc_text, hit.start + start, hit.start + end)
            held = doc_text[s0:s1]
        cover = self._cover(question, held)
        near = self._cover(question, hit.text[max(0, start - _NEAR) : end + _NEAR])
        feats = (chosen.score - chosen.null_score, chosen.score, chosen.null_score, best_score, dense, bm25, s_found,
                 sentence.score, cover.share, near.share, cover.missing, latin)
        overall = None
        if inside and best is not None and best is not chosen:
            b_hit = top[best.passage]
            b0, b1 = trim_span(b_hit.text, best.start, best.end)
            overall = Evidence(b_hit, b_hit.start + b0, b_hit.start + b1, feats)
        return Evidence(hit, hit.start + start, hit.start + end, feats, inside, overall,
                        best_score - chosen.score, candidates[pick])

    def _cover(self, question: str, text: str) -> TermCoverage:
        if self.coverage is None:
            return TermCoverage(1.0, 0.0)
        return self.coverage(question, text) if text else TermCoverage(0.0, 1.0)

    def answer(self, question: str, hits: Sequence[Hit], sentence: Answer, alternatives: Sequence[Answer] = (), *,
               same_language: bool = True) -> Answer:
        """``same_language``: question and passages in one language. Across languages the reader
        reads poorly (its weight in choosing between sentences was fitted on same-language
        questions), so it neither picks among ``alternatives`` nor moves the quote elsewhere."""
        ev = self.evidence(question, hits, sentence, alternatives if same_language else ())
        return self.compose(question, hits, sentence, ev, same_language=same_language)

    def compose(self, question: str, hits: Sequence[Hit], sentence: Answer, ev: Evidence, *,
                same_language: bool = True) -> Answer:
        """The answer :meth:`answer` gives from the evidence :meth:`evidence` found: refused below
        the calibration's ``answer_at``, else the quote (and the span from ``span_at`` on)."""
        if ev.sentence is not None:
            sentence = ev.sentence
        conf = self.calibration.confidence(ev.features)
        answer_at, span_at = self.calibration.thresholds(question)
        if conf < answer_at:
            return Answer(question, False, NOT_FOUND, None, round(conf, 4), (), None, tuple(hits))
        has_span = ev.hit is not None and ev.end > ev.start
        if sentence.found:
            if (same_language and ev.overall is not None and ev.gap > self.settings.override_gap
                    and ev.overall.end > ev.overall.start
                    and ev.overall.hit is not None and sentence.citations
                    and ev.overall.hit.source == sentence.citations[0].source):
                # the reader is far surer of a span in another sentence of the same document:
                # quote that one (the sentence reader's choice of document is the more reliable)
                return self._sentence_of_span(question, ev.overall, conf, hits,
                                              with_span=conf >= span_at)
            typed = sentence.span_citation
            if typed is not None and sentence.span is not None and (
                    not has_span or (ev.hit is not None and typed.source == ev.hit.source
                                     and typed.start < ev.end and ev.start < typed.end)):
                # The sentence reader's typed extraction (a figure, date or ordinal the
                # question asks for) where the reader points at it too: its boundaries are exact.
                # (Preferring it also where only it carried the unit the question counts in,
                # "多少家": 150多家 against the reader's 260个, changed no answer of the validation
                # sets nor of the seed questions it was written for: removed,
                # benchmarks/bench_rules.py.)
                return Answer(question, True, sentence.text, sentence.span, round(conf, 4), sentence.citations,
                              typed, sentence.passages)
            if has_span and ev.inside and conf >= span_at:
                assert ev.hit is not None
                holder = next(c for c in sentence.citations if c.source == ev.hit.source
                              and c.start <= ev.start and ev.end <= c.end)
                span = self.documents[ev.hit.source].text[ev.start : ev.end]
                return Answer(question, True, sentence.text, span, round(conf, 4), sentence.citations,
                              Citation(holder.n, holder.source, holder.chunk_id, ev.start, ev.end, span),
                              sentence.passages)
            return Answer(question, True, sentence.text, None, round(conf, 4), sentence.citations, None,
                          sentence.passages)
        if not has_span:
            return Answer(question, False, NOT_FOUND, None, round(conf, 4), (), None, tuple(hits))
        # the sentence reader found nothing, the span reader is confident: its span and sentence
        return self._sentence_of_span(question, ev, conf, hits, with_span=conf >= span_at)

    def _sentence_of_span(self, question: str, ev: Evidence, conf: float, hits: Sequence[Hit], *, with_span: bool) -> Answer:
        assert ev.hit is not None
        doc = self.documents[ev.hit.source]
        text = doc.text
        s_start, s_end = _sentences_holding(text, ev.start, ev.end)
        citations = [Citation(1, ev.hit.source, ev.hit.chunk_id, s_start, s_end, text[s_start:s_end])]
        span = text[ev.start : ev.end]
        span_citation = Citation(1, ev.hit.source, ev.hit.chunk_id, ev.start, ev.end, span) if with_span else None
        if with_span:
            citations += self._support(span, ev, hits, s_start, s_end)
        return Answer(question, True, citations[0].quote, span if with_span else None, round(conf, 4),
                      tuple(citations), span_citation, tuple(hits))

    def _support(self, span: str, ev: Evidence, hits: Sequence[Hit], s_start: int, s_end: int) -> list[Citation]:
        """Other retrieved sentences that state the same span: extra numbered citations."""
        want = fold(span)
        if len(want) < 2:
            return []
        out: list[Citation] = []
        seen = [(ev.hit.source if ev.hit else "", s_start, s_end)]
        for h in hits[: self.settings.passages]:
            doc = self.documents.get(h.source)
            if doc is None or want not in fold(h.text):
                continue
            for s in split_sentences(doc.text, h.start, h.end):
                quote = doc.text[s.start:s.end]
                if want not in fold(quote):
                    continue
                if any(src == h.source and a < s.end and s.start < b for src, a, b in seen):
                    continue
                seen.append((h.source, s.start, s.end))
                out.append(Citation(len(out) + 2, h.source, h.chunk_id, s.start, s.end, quote))
                if len(out) >= 2:
                    return out
        return out


def _sentences_holding(text: str, start: int, end: int) -> tuple[int, int]:
    """Offsets of the sentence(s) of ``text`` holding ``text[start:end]``."""
    around = split_sentences(text, max(0, start - 600), min(len(text), end + 600))
    holding = [s for s in around if s.start < end and start < s.end]
    return min([s.start for s in holding] + [start]), max([s.end for s in holding] + [end])


def _holds(h: Hit, c: Citation) -> bool:
    return h.source == c.source and h.start <= c.start and c.end <= h.end
