"""Terminal rendering of an :class:`~rag.evaluation.results.EvalResult`: one column per mode."""

from __future__ import annotations

from collections.abc import Callable

from rag.evaluation.results import EvalResult, ModeSummary

__all__ = ["render_table"]


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def _num(x: float | None, fmt: str = "{:.3f}") -> str:
    return "-" if x is None else fmt.format(x)


def _ms(median: float | None, p95: float | None) -> str:
    if median is None or p95 is None:
        return "-"
    return f"{median:.1f} / {p95:.1f}"


Row = tuple[str, Callable[[ModeSummary], str]]


def _recall_cell(k: int) -> Callable[[ModeSummary], str]:
    return lambda s: _pct(s.recall_at(k))


def _rows(result: EvalResult) -> list[Row]:
    ks = sorted({r.k for run in result.runs for r in run.summary.recall})
    rows: list[Row] = []
    for k in ks:
        rows.append((f"retrieval recall@{k}", _recall_cell(k)))
    rows += [
        (f"retrieval MRR@{result.k}", lambda s: _num(s.mrr)),
        ("answer sentence has gold", lambda s: _pct(s.answer_hit_rate)),
        ("EM (span, else sentence)", lambda s: _pct(s.em)),
        ("F1 (span, else sentence)", lambda s: _pct(s.f1)),
        ("questions with a span", lambda s: str(s.with_span)),
        ("span EM (with a span)", lambda s: _pct(s.span_em)),
        ("span F1 (with a span)", lambda s: _pct(s.span_f1)),
        ("span F1 (all answerable; no span = 0)", lambda s: _pct(s.span_f1_all)),
        ("answered (any answer)", lambda s: _pct(s.found_rate)),
        ("wrongly refused (answerable)", lambda s: _pct(s.wrong_refusal_rate)),
        ("correctly refused (unanswerable)", lambda s: _pct(s.correct_refusal_rate)),
        ("search ms median / p95", lambda s: _ms(s.search_latency.median_ms, s.search_latency.p95_ms)),
        ("ask ms median / p95", lambda s: _ms(s.ask_latency.median_ms, s.ask_latency.p95_ms)),
        ("mode wall / CPU time s", lambda s: f"{s.seconds:.0f} / {s.cpu_seconds:.0f}"),
    ]
    return rows


def _header(result: EvalResult) -> list[str]:
    first = result.runs[0].summary if result.runs else None
    n_ans = first.answerable if first else 0
    n_un = first.unanswerable if first else 0
    lines = [
        f"{result.dataset} ({result.kind}): {result.questions} question(s), "
        f"{n_ans} answerable, {n_un} unanswerable"
        + (f"; {result.passages} passage(s) indexed" if result.passages else "")
        + (f"; {len(result.skipped)} unusable entry(ies) skipped" if result.skipped else "")
    ]
    ix = result.index
    where = ix.path or "temporary folder"
    desc = f"index: {where}, model {ix.model or '?'}"
    if ix.documents is not None and ix.chunks is not None:
        desc += f", {ix.documents} document(s), {ix.chunks} chunk(s)"
    if ix.built and ix.build_wall_seconds is not None:
        desc += f", built in {ix.build_wall_seconds:.1f} s"
        if ix.build_cpu_seconds is not None:
            desc += f" ({ix.build_cpu_seconds:.0f} s CPU)"
    else:
        desc += ", existing"
    lines.append(desc)
    lines.append(
        f"retrieval depth k={result.k} (unique sources; chunks for JSON-lines sets), "
        f"ask reads {result.ask_k} passage(s)"
    )
    return lines


def render_table(result: EvalResult) -> str:
    """A plain-text report: header lines, then one row per metric and one column per mode."""
    lines = _header(result)
    summaries = [run.summary for run in result.runs]
    rows = _rows(result)
    label_w = max(len(label) for label, _ in rows)
    cells = [[fn(s) for s in summaries] for _, fn in rows]
    col_w = [
        max(len(s.mode), *(len(row[i]) for row in cells)) for i, s in enumerate(summaries)
    ]
    lines.append("")
    lines.append(
        " " * label_w + "  " + "  ".join(s.mode.rjust(w) for s, w in zip(summaries, col_w))
    )
    for (label, _), row in zip(rows, cells):
        lines.append(label.ljust(label_w) + "  " + "  ".join(c.rjust(w) for c, w in zip(row, col_w)))
    for run in result.runs:
        if run.refused_questions:
            lines.append("")
            lines.append(
                f"{run.summary.mode}: {len(run.refused_questions)} question(s) rejected as "
                f"input and not scored, e.g. {run.refused_questions[0]}"
            )
    if result.gold_mismatches:
        shown = ", ".join(result.gold_mismatches[:5])
        more = f" (+{len(result.gold_mismatches) - 5} more)" if len(result.gold_mismatches) > 5 else ""
        lines.append("")
        lines.append(
            f"warning: {len(result.gold_mismatches)} question(s) whose gold paragraphs do not "
            f"contain their answer in the indexed text: {shown}{more}"
        )
    lines.append("")
    lines.append(f"total {result.seconds:.1f} s")
    if result.report_path:
        lines.append(f"misses written to {result.report_path}")
    return "\n".join(lines)
