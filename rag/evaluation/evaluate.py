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
"""

from __future__ import annotations

import json
import re
import statistics
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

from rag.evaluation.datasets import EvalQuestion, EvalSet
from rag.errors import QueryError, RagError
from rag.evaluation.metrics import answer_f1, contains_answer, exact_match, first_gold_rank, percentile
from rag.settings import K_MAX, check_k
from rag.types import Answer, Document, Hit

__all__ = [
    "COMPARE_MODES",
    "RecallAt",
    "Latency",
    "RetrievedHit",
    "QuestionResult",
    "ModeSummary",
    "ModeRun",
    "IndexSummary",
    "EvalResult",
    "paragraph_spans",
    "run_eval",
    "write_report",
]

COMPARE_MODES: tuple[str, ...] = ("bm25", "dense", "hybrid")
_TOP_IN_REPORT = 5
_MAX_SEARCH_K = K_MAX  # QA.search refuses more


class QALike(Protocol):
    """What the evaluation needs of a loaded index (:class:`rag.pipeline.QA`)."""

    def search(self, question: str, k: int = ..., mode: str | None = ...) -> list[Hit]: ...

    def ask(self, question: str, k: int = ..., mode: str | None = ...) -> Answer: ...

    def document(self, source: str) -> Document: ...

    def sources(self) -> list[str]: ...


# ---------------------------------------------------------------------------- results


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


# ---------------------------------------------------------------------------- gold


_LINE_RE = re.compile(r"[^\n]+")


@dataclass(frozen=True)
class ParagraphSpan:
    """A non-empty paragraph (line) of a document: ``text[start:end]``, stripped."""

    index: int
    start: int
    end: int


def paragraph_spans(text: str) -> tuple[ParagraphSpan, ...]:
    """The non-empty paragraphs of a cleaned document text, numbered from 0.

    A paragraph is a line with some non-whitespace character; blank lines separate nothing
    more than single newlines do. Offsets exclude the surrounding whitespace.
    """
    out: list[ParagraphSpan] = []
    for m in _LINE_RE.finditer(text):
        line = m.group()
        stripped = line.strip()
        if not stripped:
            continue
        start = m.start() + (len(line) - len(line.lstrip()))
        out.append(ParagraphSpan(len(out), start, start + len(stripped)))
    return tuple(out)


@dataclass(frozen=True)
class _Gold:
    """How a question's retrieved hits are matched against its gold passages."""

    labels: tuple[str, ...]
    source: str | None  # JSON-lines: the one document the paragraphs index
    paragraphs: tuple[ParagraphSpan, ...]  # JSON-lines: the gold paragraphs' spans

    def keys(self, hits: Sequence[Hit]) -> list[str]:
        """One key per retrieved unit, in rank order, duplicates removed."""
        keys: list[str] = []
        for h in hits:
            key = self._key(h)
            if key not in keys:
                keys.append(key)
        return keys

    def _key(self, h: Hit) -> str:
        if self.source is None:
            return h.source
        if h.source == self.source:
            for p in self.paragraphs:
                if h.start < p.end and p.start < h.end:
                    return f"paragraph:{p.index}"
        return f"chunk:{h.chunk_id}"


# ---------------------------------------------------------------------------- running


def _jsonl_golds(
    qa: QALike, questions: Sequence[EvalQuestion]
) -> tuple[dict[str, _Gold], tuple[str, ...]]:
    """Gold matchers of JSON-lines questions, and ids whose gold paragraphs lack the answer."""
    sources = qa.sources()
    default_source = sources[0] if len(sources) == 1 else None
    docs: dict[str, tuple[str, tuple[ParagraphSpan, ...]]] = {}
    golds: dict[str, _Gold] = {}
    mismatched: list[str] = []
    for q in questions:
        if not q.gold_paragraphs:
            if q.gold_sources:
                golds[q.id] = _Gold(q.gold_sources, None, ())
            continue
        source = q.gold_sources[0] if q.gold_sources else default_source
        if source is None:
            raise RagError(
                f"question {q.id!r} gives paragraph numbers but no 'source', and the index "
                "does not hold exactly one document: add a 'source' field to the question file"
            )
        if source not in docs:
            text = qa.document(source).text
            docs[source] = (text, paragraph_spans(text))
        text, spans = docs[source]
        missing = [i for i in q.gold_paragraphs if i >= len(spans)]
        if missing:
            raise RagError(
                f"question {q.id!r}: paragraph {missing[0]} does not exist; {source!r} has "
                f"{len(spans)} non-empty paragraph(s) after cleaning"
            )
        chosen = tuple(spans[i] for i in q.gold_paragraphs)
        if q.answers and not any(
            contains_answer(text[p.start : p.end], q.answers) for p in chosen
        ):
            mismatched.append(q.id)
        golds[q.id] = _Gold(
            tuple(f"paragraph:{i}" for i in q.gold_paragraphs), source, chosen
        )
    return golds, tuple(mismatched)


def _score_question(
    q: EvalQuestion,
    mode: str,
    gold: _Gold | None,
    hits: list[Hit],
    ans: Answer,
    k: int,
    search_ms: float,
    ask_ms: float,
) -> QuestionResult:
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


def _summarise(
    mode: str, results: Sequence[QuestionResult], k: int, seconds: float, cpu_seconds: float
) -> ModeSummary:
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


def _progress_bar(total: int, desc: str, enabled: bool, unit: str = "q") -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit=unit, disable=not enabled, leave=False)


class _BuildProgress:
    """A progress callback ``(stage, done, total)`` that drives one tqdm bar per stage."""

    def __init__(self, enabled: bool) -> None:
        self._enabled = enabled
        self._bar: Any = None
        self._stage = ""

    def __enter__(self) -> _BuildProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def __call__(self, stage: str, done: int, total: int) -> None:
        if not self._enabled:
            return
        if stage != self._stage or self._bar is None:
            self.__exit__()
            self._stage = stage
            self._bar = _progress_bar(total, f"build: {stage}", True, unit="it")
        self._bar.n = done
        self._bar.refresh()


def _run_mode(
    qa: QALike,
    questions: Sequence[EvalQuestion],
    golds: dict[str, _Gold],
    mode: str,
    k: int,
    ask_k: int,
    progress: bool,
) -> ModeRun:
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
    bar = _progress_bar(len(questions), mode, progress)
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
                _score_question(
                    q, mode, golds.get(q.id), hits, ans, k, (t1 - t0) * 1e3, (t2 - t1) * 1e3
                )
            )
            bar.update(1)
    finally:
        bar.close()
    seconds = time.perf_counter() - t_mode
    cpu = time.process_time() - cpu_mode
    return ModeRun(_summarise(mode, results, k, seconds, cpu), tuple(results), tuple(refused))


def write_report(result: EvalResult, path: str | Path) -> int:
    """Write every miss (see :attr:`QuestionResult.miss`) as one JSON line; returns the count."""
    p = Path(path)
    n = 0
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        with open(p, "w", encoding="utf-8") as f:
            for run in result.runs:
                for r in run.questions:
                    if not r.miss:
                        continue
                    row = asdict(r)
                    row["answerable"] = r.answerable
                    f.write(json.dumps(row, ensure_ascii=False) + "\n")
                    n += 1
    except OSError as e:
        raise RagError(f"{p}: cannot write the report ({e.strerror or e})") from e
    return n


@contextmanager
def _index_folder(index_dir: str | Path | None) -> Iterator[Path]:
    if index_dir is not None:
        yield Path(index_dir)
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

    ``index``: for a set with passages (SQuAD), the folder to build the index in (a temporary
    one when ``None``; an index already there is updated incrementally, re-embedding only
    changed passages, unless ``full_build``), or with ``reuse_index=True`` a folder already
    built from this set, used as is; for
    a set without passages (JSON lines), the existing index folder (default ``"index"``) or a
    loaded QA object. ``model`` names the embedding model of a build. ``limit`` evaluates the
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
            raise RagError("a SQuAD-format set builds its own index: pass a folder, not a QA object")
        return _evaluate(subset, index, None, modes, k, ask_k, report_path, progress, t_start)

    import rag

    if not eval_set.has_corpus:
        folder = Path(index if index is not None else "index")
        qa = rag.load(str(folder))
        summary = _existing_index_summary(qa, folder)
        return _evaluate(subset, qa, summary, modes, k, ask_k, report_path, progress, t_start)

    with _index_folder(index) as folder:
        if reuse_index:
            qa = rag.load(str(folder))
            _check_reused(qa, folder, eval_set)
            summary = _existing_index_summary(qa, folder)
        else:
            t0 = time.perf_counter()
            cpu0 = time.process_time()
            with _BuildProgress(progress) as on_progress:
                writer = rag.IndexWriter(str(folder), model=model, progress=on_progress)
                info = writer.add_texts([(p.source, p.text) for p in eval_set.passages], replace_all=True,
                                        full=full_build).info
            wall = time.perf_counter() - t0
            cpu = time.process_time() - cpu0
            qa = rag.load(str(folder))
            summary = IndexSummary(
                path=str(folder) if index is not None else None,
                model=info.model,
                documents=info.documents,
                chunks=info.chunks,
                built=True,
                build_seconds=round(float(info.seconds), 3),
                build_wall_seconds=round(wall, 3),
                build_cpu_seconds=round(cpu, 3),
            )
        return _evaluate(subset, qa, summary, modes, k, ask_k, report_path, progress, t_start)


def _existing_index_summary(qa: object, folder: Path) -> IndexSummary:
    manifest = getattr(qa, "manifest", None)
    return IndexSummary(
        path=str(folder),
        model=getattr(manifest, "model", None),
        documents=len(getattr(manifest, "indexed", getattr(manifest, "documents", ())))
        if manifest is not None
        else None,
        chunks=getattr(manifest, "chunks", None),
        built=False,
        build_seconds=None,
        build_wall_seconds=None,
    )


def _check_reused(qa: QALike, folder: Path, eval_set: EvalSet) -> None:
    sources = qa.sources()
    expected = {p.source for p in eval_set.passages}
    if set(sources) != expected:
        raise RagError(
            f"{folder}: the index holds {len(sources)} document(s), not the {len(expected)} "
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
        golds = {
            q.id: _Gold(q.gold_sources, None, ())
            for q in subset.questions
            if q.gold_sources
        }
        mismatched: tuple[str, ...] = ()
    else:
        golds, mismatched = _jsonl_golds(qa, subset.questions)
    runs = tuple(
        _run_mode(qa, subset.questions, golds, m, k, ask_k, progress) for m in modes
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

