"""Running one retrieval mode: every question searched and asked, timed, then scored
(:func:`run_mode`). One untimed warm-up query runs first, so lazy loading (jieba, the model)
is not counted as a question's latency."""

from __future__ import annotations

import time
from collections.abc import Sequence

from rag.errors import QueryError
from rag.evaluation.datasets import EvalQuestion
from rag.evaluation.gold import Gold
from rag.evaluation.progress import progress_bar
from rag.evaluation.protocol import QALike
from rag.evaluation.results import ModeRun, QuestionResult
from rag.evaluation.scoring import score_question, summarise
from rag.settings import K_MAX

__all__ = ["run_mode"]

_MAX_SEARCH_K = K_MAX  # QA.search refuses more


def run_mode(
    qa: QALike,
    questions: Sequence[EvalQuestion],
    golds: dict[str, Gold],
    mode: str,
    k: int,
    ask_k: int,
    progress: bool,
) -> ModeRun:
    """Search and ask every question in ``mode`` (after one untimed warm-up), score each;
    questions the system rejects (QueryError) are listed in ``refused_questions``, unscored."""
    # chunks to fetch: enough for ~k unique sources when passages span a few chunks
    search_k = min(_MAX_SEARCH_K, 4 * k)
    try:  # warm-up, untimed: lazy loads (jieba, model weights, caches)
        qa.search("warm-up question 预热", k=search_k, mode=mode)
        qa.ask("warm-up question 预热", k=ask_k, mode=mode)
    except QueryError:
        pass
    results: list[QuestionResult] = []
    refused: list[str] = []
    t_mode = time.perf_counter()
    cpu_mode = time.process_time()
    bar = progress_bar(len(questions), mode, progress)
    try:
        for q in questions:
            t0 = time.perf_counter()
            try:
                hits = qa.search(q.question, k=search_k, mode=mode)
                t1 = time.perf_counter()
                ans = qa.ask(q.question, k=ask_k, mode=mode)
            except QueryError as exc:
                refused.append(f"{q.id}: {exc}")
                bar.update(1)
                continue
            t2 = time.perf_counter()
            results.append(
                score_question(
                    q, mode, golds.get(q.id), hits, ans, k, (t1 - t0) * 1e3, (t2 - t1) * 1e3
                )
            )
            bar.update(1)
    finally:
        bar.close()
    seconds = time.perf_counter() - t_mode
    cpu = time.process_time() - cpu_mode
    return ModeRun(summarise(mode, results, k, seconds, cpu), tuple(results), tuple(refused))
