"""The results of an evaluation, as frozen dataclasses: per question (:class:`QuestionResult`),
per retrieval mode (:class:`ModeSummary`, :class:`ModeRun`), the index used
(:class:`IndexSummary`) and the whole run (:class:`EvalResult`, with its JSON form)."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from rag.evaluation.metrics import percentile

__all__ = [
    "RecallAt",
    "Latency",
    "RetrievedHit",
    "QuestionResult",
    "ModeSummary",
    "ModeRun",
    "IndexSummary",
    "EvalResult",
]


@dataclass(frozen=True)
class RecallAt:
    """Share of answerable questions whose gold passage is among the first ``k``."""

    k: int
    value: float


@dataclass(frozen=True)
class Latency:
    """Wall-clock milliseconds per call; ``None`` fields when nothing was timed."""

    count: int
    median_ms: float | None
    p95_ms: float | None
    mean_ms: float | None
    max_ms: float | None

    @classmethod
    def of(cls, ms: Sequence[float]) -> Latency:
        if not ms:
            return cls(0, None, None, None, None)
        return cls(
            len(ms),
            round(percentile(ms, 50), 3),
            round(percentile(ms, 95), 3),
            round(statistics.fmean(ms), 3),
            round(max(ms), 3),
        )


@dataclass(frozen=True)
class RetrievedHit:
    """One retrieved chunk, as the report shows it."""

    source: str
    chunk_id: int
    start: int
    end: int
    score: float
    text: str


@dataclass(frozen=True)
class QuestionResult:
    """How one question fared in one mode.

    ``gold`` names the gold passages (sources, or ``paragraph:N`` for JSON-lines sets);
    ``gold_rank`` is the 1-based rank of the first gold among the retrieved units (unique
    sources, or chunks for JSON-lines sets), ``None`` when not among the first ``k``.
    ``em``/``f1`` score the span, or the answer text when there is no span, or the empty
    string when the system refused. ``span_em``/``span_f1`` are ``None`` without a span.
    """

    id: str
    mode: str
    question: str
    answers: tuple[str, ...]
    gold: tuple[str, ...]
    gold_rank: int | None
    found: bool
    answer_text: str
    span: str | None
    score: float
    answer_hit: bool
    em: float
    f1: float
    span_em: float | None
    span_f1: float | None
    search_ms: float
    ask_ms: float
    top: tuple[RetrievedHit, ...]

    @property
    def answerable(self) -> bool:
        return bool(self.answers)

    @property
    def miss(self) -> bool:
        """Answerable but the answer sentence lacks every gold (or it refused), or
        unanswerable but it answered."""
        return not self.answer_hit if self.answerable else self.found


@dataclass(frozen=True)
class ModeSummary:
    """Aggregates of one mode. Rates are in [0, 1]; ``None`` where no question qualifies.

    recall/mrr: over answerable questions with a known gold passage (``with_gold``).
    answer_hit_rate, em, f1, wrong_refusal_rate: over answerable questions.
    span_em, span_f1: over answerable questions whose answer has a span (``with_span``);
    span_f1_all: over all answerable questions, an answer without a span counting 0.
    found_rate: over all questions. correct_refusal_rate: over unanswerable questions.
    """

    mode: str
    questions: int
    answerable: int
    unanswerable: int
    with_gold: int
    recall: tuple[RecallAt, ...]
    mrr: float | None
    answer_hit_rate: float | None
    em: float | None
    f1: float | None
    with_span: int
    span_em: float | None
    span_f1: float | None
    span_f1_all: float | None
    found_rate: float | None
    correct_refusal_rate: float | None
    wrong_refusal_rate: float | None
    search_latency: Latency
    ask_latency: Latency
    seconds: float
    cpu_seconds: float  # CPU time of this process (all threads): robust to a busy machine

    def recall_at(self, k: int) -> float | None:
        for r in self.recall:
            if r.k == k:
                return r.value
        return None


@dataclass(frozen=True)
class ModeRun:
    """One mode's summary and per-question results. ``refused_questions``: ``"<id>: <reason>"``
    of questions the system rejected as unusable input (QueryError); they are not scored."""

    summary: ModeSummary
    questions: tuple[QuestionResult, ...]
    refused_questions: tuple[str, ...] = ()


@dataclass(frozen=True)
class IndexSummary:
    """The index the questions were asked against.

    ``path`` is ``None`` for a temporary index; ``build_seconds`` is ``None`` when an existing
    index was used (``build_wall_seconds`` is the wall time of the whole build call).
    """

    path: str | None
    model: str | None
    documents: int | None
    chunks: int | None
    built: bool
    build_seconds: float | None
    build_wall_seconds: float | None
    build_cpu_seconds: float | None = None


@dataclass(frozen=True)
class EvalResult:
    """Everything :func:`run_eval` measured.

    ``gold_mismatches``: ids of JSON-lines questions none of whose gold paragraphs contains a
    gold answer in the indexed text (a sign the paragraph numbering does not match the
    cleaned document).
    """

    dataset: str
    kind: str
    questions: int
    passages: int
    k: int
    ask_k: int
    index: IndexSummary
    runs: tuple[ModeRun, ...]
    gold_mismatches: tuple[str, ...]
    seconds: float
    report_path: str | None = None
    skipped: tuple[str, ...] = ()  # entries of the file left out, with the reason

    def summary(self, mode: str) -> ModeSummary:
        for run in self.runs:
            if run.summary.mode == mode:
                return run.summary
        raise KeyError(mode)

    def to_json(self, *, questions: bool = False) -> dict[str, Any]:
        """Plain JSON-able form; per-question results only when asked for."""
        out: dict[str, Any] = {
            "dataset": self.dataset,
            "kind": self.kind,
            "questions": self.questions,
            "passages": self.passages,
            "k": self.k,
            "ask_k": self.ask_k,
            "index": asdict(self.index),
            "gold_mismatches": list(self.gold_mismatches),
            "skipped": list(self.skipped),
            "seconds": self.seconds,
            "report_path": self.report_path,
            "modes": {},
        }
        for run in self.runs:
            s = asdict(run.summary)
            s["recall"] = {f"@{r.k}": r.value for r in run.summary.recall}
            s["refused_questions"] = list(run.refused_questions)
            if questions:
                s["per_question"] = [asdict(q) for q in run.questions]
            out["modes"][run.summary.mode] = s
        return out
