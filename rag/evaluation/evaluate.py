"""Evaluate retrieval and extractive answers on an :class:`~rag.evaluation.datasets.EvalSet`.

* A SQuAD-format set brings its passages: one index is built over *all* of them (open
  retrieval) and every question is asked against the whole index. A question's gold is its own
  passage; retrieval ranks are counted over unique sources.
* A JSON-lines set (``seed_qa_dev.jsonl``) is asked against an existing index. Its gold
  passages are indices of the document's non-empty paragraphs (lines of the cleaned text);
  retrieval ranks are counted over chunks, and a chunk is a hit when its ``[start, end)``
  overlaps a gold paragraph.

For each retrieval mode the result holds recall@k and MRR of the gold passage, the answer
sentence hit rate, span exact match and CMRC F1 (on questions with a span and overall),
answer/refusal rates, and search/ask latency (median, p95). One untimed warm-up query runs
first, so lazy loading (jieba, the model) is not counted as a question's latency.

The work is split by job: :mod:`~rag.evaluation.gold` (matching hits against gold passages),
:mod:`~rag.evaluation.runner` (one mode's timed questions), :mod:`~rag.evaluation.scoring`
(per-question scores and per-mode aggregates), :mod:`~rag.evaluation.results` (the result
dataclasses) and :mod:`~rag.evaluation.miss_report` (the misses file). This module picks and
builds the index and runs every mode (:func:`run_eval`).

The index is a folder or a ``postgresql://`` (``postgres://``) URL, for either kind of set
(built into, reused, or asked); the result names a database by its URL with any password
masked (``***``).
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from rag.errors import RagError
from rag.evaluation.datasets import EvalSet
from rag.evaluation.gold import jsonl_golds, squad_golds
from rag.evaluation.miss_report import write_report
from rag.evaluation.progress import BuildProgress
from rag.evaluation.protocol import QALike
from rag.evaluation.results import EvalResult, IndexSummary
from rag.evaluation.runner import run_mode
from rag.index.folder_store import index_location, shown_location
from rag.settings import check_k

__all__ = [
    "COMPARE_MODES",
    "run_eval",
]

COMPARE_MODES: tuple[str, ...] = ("bm25", "dense", "hybrid")


@contextmanager
def _index_location(index: str | Path | None) -> Iterator[str | Path]:
    """Where to build the index: ``index`` (a folder or a database URL), else a temporary folder."""
    if index is not None:
        yield index_location(index)
        return
    with tempfile.TemporaryDirectory(prefix="rag-eval-") as tmp:
        yield Path(tmp) / "index"


def _check_modes(modes: Sequence[str]) -> tuple[str, ...]:
    from rag.settings import MODES

    out = tuple(dict.fromkeys(modes))
    if not out:
        raise RagError("no retrieval mode to evaluate")
    for m in out:
        if m not in MODES:
            raise RagError(f"unknown retrieval mode {m!r}; choose from {', '.join(MODES)}")
    return out


def run_eval(
    eval_set: EvalSet,
    index: str | Path | QALike | None = None,
    *,
    modes: Sequence[str] = ("hybrid",),
    limit: int | None = None,
    k: int = 10,
    ask_k: int = 5,
    model: str | None = None,
    reuse_index: bool = False,
    full_build: bool = False,
    report_path: str | Path | None = None,
    progress: bool = True,
) -> EvalResult:
    """Evaluate ``eval_set`` in each of ``modes``.

    ``index``: for a set with passages (SQuAD), the folder or ``postgresql://`` URL to build the
    index in (a temporary folder when ``None``; an index already there is updated
    incrementally, re-embedding only changed passages, unless ``full_build``), or with
    ``reuse_index=True`` an index already built from this set, used as is; for a set without
    passages (JSON lines), the existing index (a folder or URL, default ``"index"``) or a
    loaded QA object (for a SQuAD set too, with ``reuse_index=True``: its index must hold
    exactly the set's passages). ``model`` names the embedding model of a build. ``limit`` evaluates the
    first ``limit`` questions only (every passage is still indexed). ``k`` is the retrieval
    depth of recall/MRR; ``ask_k`` the number of passages ``ask`` reads.
    """
    k = check_k(k)
    ask_k = check_k(ask_k, "ask_k")
    if limit is not None and limit < 0:
        raise RagError(f"limit must be >= 0, got {limit}")
    modes = _check_modes(modes)
    t_start = time.perf_counter()
    subset = eval_set.head(limit)

    if not isinstance(index, (str, Path)) and index is not None:
        if eval_set.has_corpus:
            if not reuse_index:
                raise RagError("a SQuAD-format set builds its own index: pass a folder, not a QA object "
                               "(or reuse_index=True for a QA whose index was built from this set)")
            _check_reused(index, "the index given", eval_set)
            return _evaluate(subset, index, _existing_index_summary(index, "the index given"), modes, k, ask_k,
                             report_path, progress, t_start)
        return _evaluate(subset, index, None, modes, k, ask_k, report_path, progress, t_start)

    import rag

    if not eval_set.has_corpus:
        where = index_location(index if index is not None else "index")
        qa = rag.load(where)
        summary = _existing_index_summary(qa, shown_location(where))
        return _evaluate(subset, qa, summary, modes, k, ask_k, report_path, progress, t_start)

    with _index_location(index) as where:
        if reuse_index:
            qa = rag.load(where)
            _check_reused(qa, shown_location(where), eval_set)
            summary = _existing_index_summary(qa, shown_location(where))
        else:
            t0 = time.perf_counter()
            cpu0 = time.process_time()
            with BuildProgress(progress) as on_progress:
                writer = rag.IndexWriter(where, model=model, progress=on_progress)
                info = writer.add_texts([(p.source, p.text) for p in eval_set.passages], replace_all=True,
                                        full=full_build).info
            wall = time.perf_counter() - t0
            cpu = time.process_time() - cpu0
            qa = rag.load(where)
            summary = IndexSummary(
                path=shown_location(where) if index is not None else None,
                model=info.model,
                documents=info.documents,
                chunks=info.chunks,
                built=True,
                build_seconds=round(float(info.seconds), 3),
                build_wall_seconds=round(wall, 3),
                build_cpu_seconds=round(cpu, 3),
            )
        return _evaluate(subset, qa, summary, modes, k, ask_k, report_path, progress, t_start)


def _existing_index_summary(qa: object, where: str) -> IndexSummary:
    manifest = getattr(qa, "manifest", None)
    return IndexSummary(
        path=where,
        model=getattr(manifest, "model", None),
        documents=len(getattr(manifest, "indexed", getattr(manifest, "documents", ())))
        if manifest is not None
        else None,
        chunks=getattr(manifest, "chunks", None),
        built=False,
        build_seconds=None,
        build_wall_seconds=None,
    )


def _check_reused(qa: QALike, where: str, eval_set: EvalSet) -> None:
    sources = qa.sources()
    expected = {p.source for p in eval_set.passages}
    if set(sources) != expected:
        raise RagError(
            f"{where}: the index holds {len(sources)} document(s), not the {len(expected)} "
            f"passages of {eval_set.name}: build it again (leave out --reuse-index)"
        )


def _evaluate(
    subset: EvalSet,
    qa: QALike,
    index: IndexSummary | None,
    modes: tuple[str, ...],
    k: int,
    ask_k: int,
    report_path: str | Path | None,
    progress: bool,
    t_start: float,
) -> EvalResult:
    if subset.has_corpus:
        golds = squad_golds(subset.questions)
        mismatched: tuple[str, ...] = ()
    else:
        golds, mismatched = jsonl_golds(qa, subset.questions)
    runs = tuple(
        run_mode(qa, subset.questions, golds, m, k, ask_k, progress) for m in modes
    )
    result = EvalResult(
        dataset=subset.name,
        kind="squad" if subset.has_corpus else "jsonl",
        questions=len(subset.questions),
        passages=len(subset.passages),
        k=k,
        ask_k=ask_k,
        index=index or IndexSummary(None, None, None, None, False, None, None),
        runs=runs,
        gold_mismatches=mismatched,
        seconds=round(time.perf_counter() - t_start, 3),
        report_path=str(report_path) if report_path is not None else None,
        skipped=subset.skipped,
    )
    if report_path is not None:
        write_report(result, report_path)
    return result
