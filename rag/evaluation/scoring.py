"""Scoring: one question's retrieved hits and answer into a :class:`QuestionResult`
(:func:`score_question`), and one mode's results into a :class:`ModeSummary` (:func:`summarise`)."""

from __future__ import annotations

import statistics
from collections.abc import Sequence

from rag.evaluation.datasets import EvalQuestion
from rag.evaluation.gold import Gold
from rag.evaluation.metrics import answer_f1, contains_answer, exact_match, first_gold_rank
from rag.evaluation.results import Latency, ModeSummary, QuestionResult, RecallAt, RetrievedHit
from rag.types import Answer, Hit

__all__ = ["score_question", "summarise"]

_TOP_IN_REPORT = 5


def score_question(
    q: EvalQuestion,
    mode: str,
    gold: Gold | None,
    hits: list[Hit],
    ans: Answer,
    k: int,
    search_ms: float,
    ask_ms: float,
) -> QuestionResult:
    """Score question ``q`` in ``mode`` from its retrieved ``hits`` and answer ``ans``;
    ``gold_rank`` counts the first ``k`` retrieved units only."""
    gold_rank: int | None = None
    if gold is not None and q.answerable:
        gold_rank = first_gold_rank(gold.keys(hits), gold.labels, k)
    found = bool(ans.found)
    answer_text = ans.text if found else ""
    pred = (ans.span if ans.span is not None else answer_text) if found else ""
    has_span = found and ans.span is not None
    return QuestionResult(
        id=q.id,
        mode=mode,
        question=q.question,
        answers=q.answers,
        gold=gold.labels if gold is not None else (),
        gold_rank=gold_rank,
        found=found,
        answer_text=ans.text,
        span=ans.span,
        score=float(ans.score),
        answer_hit=found and contains_answer(answer_text, q.answers),
        em=exact_match(pred, q.answers),
        f1=answer_f1(pred, q.answers),
        span_em=exact_match(ans.span, q.answers) if has_span and ans.span is not None else None,
        span_f1=answer_f1(ans.span, q.answers) if has_span and ans.span is not None else None,
        search_ms=round(search_ms, 3),
        ask_ms=round(ask_ms, 3),
        top=tuple(
            RetrievedHit(h.source, h.chunk_id, h.start, h.end, round(float(h.score), 6), h.text)
            for h in hits[:_TOP_IN_REPORT]
        ),
    )


def _mean(xs: Sequence[float]) -> float | None:
    return round(statistics.fmean(xs), 6) if xs else None


def summarise(
    mode: str, results: Sequence[QuestionResult], k: int, seconds: float, cpu_seconds: float
) -> ModeSummary:
    """Aggregate one mode's question results (see :class:`ModeSummary` for what each rate
    counts); recall is given at 1, 5, 10, 20, 50, 100 below ``k``, and at ``k``."""
    answerable = [r for r in results if r.answerable]
    unanswerable = [r for r in results if not r.answerable]
    with_gold = [r for r in answerable if r.gold]
    spans = [r for r in answerable if r.span_em is not None]
    ks = tuple(x for x in (1, 5, 10, 20, 50, 100) if x < k) + (k,)
    recall = tuple(
        RecallAt(x, round(statistics.fmean(
            1.0 if r.gold_rank is not None and r.gold_rank <= x else 0.0 for r in with_gold
        ), 6))
        for x in ks
    ) if with_gold else ()
    return ModeSummary(
        mode=mode,
        questions=len(results),
        answerable=len(answerable),
        unanswerable=len(unanswerable),
        with_gold=len(with_gold),
        recall=recall,
        mrr=_mean([1.0 / r.gold_rank if r.gold_rank else 0.0 for r in with_gold]),
        answer_hit_rate=_mean([1.0 if r.answer_hit else 0.0 for r in answerable]),
        em=_mean([r.em for r in answerable]),
        f1=_mean([r.f1 for r in answerable]),
        with_span=len(spans),
        span_em=_mean([r.span_em for r in spans if r.span_em is not None]),
        span_f1=_mean([r.span_f1 for r in spans if r.span_f1 is not None]),
        span_f1_all=_mean([r.span_f1 if r.span_f1 is not None else 0.0 for r in answerable]),
        found_rate=_mean([1.0 if r.found else 0.0 for r in results]),
        correct_refusal_rate=_mean([0.0 if r.found else 1.0 for r in unanswerable]),
        wrong_refusal_rate=_mean([0.0 if r.found else 1.0 for r in answerable]),
        search_latency=Latency.of([r.search_ms for r in results]),
        ask_latency=Latency.of([r.ask_ms for r in results]),
        seconds=round(seconds, 3),
        cpu_seconds=round(cpu_seconds, 3),
    )
