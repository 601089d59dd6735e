"""Answers from the learned span reader, combined with retrieval into one calibrated confidence.

For a question, the span reader reads the top retrieved chunks (sliding windows) and proposes
the best span of each window. Its evidence (span score, margin over the window's "no answer"
score), the retrieval scores and the sentence reader's own verdict are combined by a logistic
model fitted on held-out dev questions, answerable ones and unanswerable ones asked against an
index that lacks their passage (``training/calibrate_reader.py``). Three outcomes:

* confident: ``Answer.span`` is the span, ``Answer.text`` the sentence(s) holding it;
* unsure of the span but the documents answer: the sentence reader's answer, without a span;
* not answerable: the refusal, with the closest passages for the user to judge.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from .chunking import split_sentences
from .normalize import fold
from .reader import NOT_FOUND
from .span_features import SpanGuess
from .types import Answer, Citation, Document, Hit

FEATURES = ("margin", "span_score", "null_score", "dense", "bm25", "sentence_found", "sentence_score", "span_in_sentence")
_EDGE = " \t\r\n\u3000，。、；：！？,;:!?"


class SpanReading(Protocol):
    def read(self, question: str, passages: Sequence[str]) -> Any: ...


@dataclass(frozen=True)
class Calibration:
    """Logistic confidence over :data:`FEATURES`; ``answer_at``: least confidence to answer,
    ``span_at``: least confidence to also give the span."""

    weights: tuple[float, ...]
    bias: float
    mean: tuple[float, ...]
    scale: tuple[float, ...]
    answer_at: float
    span_at: float

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Calibration":
        if tuple(data.get("features", ())) != FEATURES:
            raise ValueError(f"calibration features {data.get('features')} are not {FEATURES}")
        return cls(tuple(data["weights"]), float(data["bias"]), tuple(data["mean"]), tuple(data["scale"]),
                   float(data["answer_at"]), float(data["span_at"]))

    def to_dict(self) -> dict[str, Any]:
        return {"features": list(FEATURES), "weights": list(self.weights), "bias": self.bias, "mean": list(self.mean),
                "scale": list(self.scale), "answer_at": self.answer_at, "span_at": self.span_at}

    def confidence(self, x: Sequence[float]) -> float:
        z = self.bias + sum(w * (v - m) / s for w, v, m, s in zip(self.weights, x, self.mean, self.scale))
        return 1.0 / (1.0 + math.exp(-max(-40.0, min(40.0, z))))


# Used until a calibration is fitted: answer on the sentence reader's verdict, span on margin.
UNCALIBRATED = Calibration(
    weights=(1.0, 0.0, 0.0, 0.0, 0.0, 4.0, 0.0, 0.0), bias=-2.0, mean=(0.0,) * len(FEATURES),
    scale=(1.0,) * len(FEATURES), answer_at=0.5, span_at=0.5,
)


@dataclass(frozen=True)
class Evidence:
    """What the decision is made from, kept for calibration and for explaining answers."""

    hit: Hit | None
    start: int  # span in document text
    end: int
    features: tuple[float, ...]


@dataclass(frozen=True)
class SpanAnswerSettings:
    passages: int = 3  # top chunks the span reader reads


class SpanAnswerer:
    """Composes :class:`Answer` objects from span-reader guesses and the sentence reader."""

    def __init__(self, reader: SpanReading, documents: Mapping[str, Document], calibration: Calibration,
                 settings: SpanAnswerSettings | None = None) -> None:
        self.reader = reader
        self.documents = documents
        self.calibration = calibration
        self.settings = settings or SpanAnswerSettings()

    def evidence(self, question: str, hits: Sequence[Hit], sentence: Answer) -> Evidence:
        top = list(hits[: self.settings.passages])
        result = self.reader.read(question, [h.text for h in top]) if top else None
        best: SpanGuess | None = result.best if result is not None else None
        dense = max((h.dense_score for h in hits), default=0.0)
        bm25 = max((h.bm25_score for h in hits), default=0.0)
        s_found = 1.0 if sentence.found else 0.0
        if best is None:
            return Evidence(None, 0, 0, (-10.0, -10.0, 0.0, dense, math.log1p(bm25), s_found, sentence.score, 0.0))
        hit = top[best.passage]
        start, end = _trim(hit.text, best.start, best.end)
        a, b = hit.start + start, hit.start + end
        inside = 1.0 if sentence.found and any(c.source == hit.source and c.start <= a and b <= c.end
                                                for c in sentence.citations) else 0.0
        feats = (best.score - best.null_score, best.score, best.null_score, dense, math.log1p(bm25), s_found,
                 sentence.score, inside)
        return Evidence(hit, a, b, feats)

    def answer(self, question: str, hits: Sequence[Hit], sentence: Answer) -> Answer:
        ev = self.evidence(question, hits, sentence)
        conf = self.calibration.confidence(ev.features)
        if conf < self.calibration.answer_at:
            return Answer(question, False, NOT_FOUND, None, round(conf, 4), (), None, tuple(hits))
        if ev.hit is None or ev.end <= ev.start or conf < self.calibration.span_at:
            if sentence.found:
                return Answer(question, True, sentence.text, None, round(conf, 4), sentence.citations, None,
                              sentence.passages)
            if ev.hit is None or ev.end <= ev.start:
                return Answer(question, False, NOT_FOUND, None, round(conf, 4), (), None, tuple(hits))
            return self._sentence_of_span(question, ev, conf, hits, with_span=False)
        return self._sentence_of_span(question, ev, conf, hits, with_span=True)

    def _sentence_of_span(self, question: str, ev: Evidence, conf: float, hits: Sequence[Hit], *, with_span: bool) -> Answer:
        assert ev.hit is not None
        doc = self.documents[ev.hit.source]
        text = doc.text
        around = split_sentences(text, max(0, ev.start - 600), min(len(text), ev.end + 600))
        holding = [s for s in around if s.start < ev.end and ev.start < s.end]
        s_start = min([s.start for s in holding] + [ev.start])
        s_end = max([s.end for s in holding] + [ev.end])
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


def _trim(text: str, start: int, end: int) -> tuple[int, int]:
    """Drop whitespace and punctuation from the ends of a predicted span."""
    while start < end and text[start] in _EDGE:
        start += 1
    while end > start and text[end - 1] in _EDGE:
        end -= 1
    return start, end
