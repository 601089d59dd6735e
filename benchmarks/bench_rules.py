"""Does each rule of the answer path earn its place? Each turned off in turn, on the validation sets.

    python -m benchmarks.bench_rules --drcd DRCD_dev.json --drcd-index DIR \\
        --squad2 squad_v2.0_train_first10.json --squad2-index DIR --ids rag/models/reader/split.json \\
        [--seed-dev seed_qa_dev.jsonl] [--near-miss benchmarks/seed_near_miss.jsonl] [--index index] \\
        [--rules kind_bonus,typed_spans] [--json OUT]

The rules are those of the sentence reader and of composing the answer that settings can turn
off (:class:`rag.settings.ReaderSettings`, :class:`rag.settings.SpanAnswerSettings`; see
:data:`VARIANTS`). Every variant answers the same questions through ``rag.QA.ask`` (through
``rag eval``'s own scoring, :func:`rag.evaluation.evaluate.run_eval`) with everything else as
shipped, calibration included (it is not refitted per variant: a rule's worth is measured as
the shipped reader would meet its absence).

Sets: DRCD dev's validation questions (open retrieval over its 1,000 passages: ``--drcd-index``
must have been built from the file, e.g. by ``rag eval --index DIR``), SQuAD 2.0's validation
article (the held-out unanswerables), the seed dev set and the seed near misses on the seed
index, and the who-is questions (``benchmarks/who_is.jsonl``, index built here).
``benchmarks/seed_heldout.jsonl`` is left out on purpose: it is never used to decide anything.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import rag
from benchmarks import bench_who_is
from rag.evaluation.cli import read_ids
from rag.evaluation.datasets import EvalSet, load_eval_set
from rag.evaluation.evaluate import run_eval

ROOT = Path(__file__).resolve().parents[1]

#: each rule off: the settings that turn it off, by part ("reader", "span")
VARIANTS: dict[str, dict[str, dict[str, Any]]] = {
    "kind_bonus": {"reader": {"w_kind": 0.0, "kind_penalty": 0.0}},
    "typed_spans": {"reader": {"typed_kinds": ()}},
    "pinyin_names": {"reader": {"w_name": 0.0, "pinyin_gate": False}},
    "names_gate": {"reader": {"max_missing": 1.0}},
    "coverage_gate": {"reader": {"min_coverage": 0.0}},
    "dense_gate": {"reader": {"min_dense": -1.0}},
    "who_is_roles": {"span": {"who_is_roles": False}},
}


_SHIPPED: dict[int, tuple[Any, Any]] = {}


def configure(qa: rag.QA, changes: dict[str, dict[str, Any]]) -> None:
    """Give ``qa`` the settings it was loaded with, ``changes`` applied (its sentence reader's
    and its span answerer's)."""
    shipped = _SHIPPED.setdefault(id(qa), (qa.reader.settings, qa.span.settings if qa.span is not None else None))
    qa.reader.settings = dataclasses.replace(shipped[0], **changes.get("reader", {}))
    if qa.span is not None:
        qa.span.settings = dataclasses.replace(shipped[1], **changes.get("span", {}))


def summary_of(result: Any) -> dict[str, Any]:
    s = result.runs[0].summary
    out = {"questions": s.questions}
    for name in ("f1", "span_f1", "answer_hit_rate", "wrong_refusal_rate", "correct_refusal_rate", "found_rate"):
        value = getattr(s, name)
        out[name] = None if value is None else round(float(value), 4)
    return out


def measure(sets: list[tuple[str, EvalSet, rag.QA]], who: tuple[rag.QA, list[dict]] | None,
            changes: dict[str, dict[str, Any]]) -> dict[str, Any]:
    row: dict[str, Any] = {}
    for name, eval_set, qa in sets:
        configure(qa, changes)
        row[name] = summary_of(run_eval(eval_set, qa, reuse_index=eval_set.has_corpus, progress=False))
    if who is not None:
        qa, rows = who
        configure(qa, changes)
        got = bench_who_is.score(qa, rows, echo=False)
        row["who_is"] = {"questions": got["questions"], "right": got["right"]}
    for _, _, qa in sets:
        configure(qa, {})
    if who is not None:
        configure(who[0], {})
    return row


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--drcd", type=Path, required=True, help="DRCD dev (SQuAD format)")
    ap.add_argument("--drcd-index", type=Path, required=True, help="an index built from --drcd")
    ap.add_argument("--squad2", type=Path, help="SQuAD 2.0 train's first articles")
    ap.add_argument("--squad2-index", type=Path, help="an index built from --squad2")
    ap.add_argument("--ids", type=str, required=True, help="the reader's split.json (validation ids)")
    ap.add_argument("--seed-dev", type=Path, default=None, help="seed questions (JSON lines), asked of --index")
    ap.add_argument("--near-miss", type=Path, default=ROOT / "benchmarks" / "seed_near_miss.jsonl")
    ap.add_argument("--index", type=Path, default=ROOT / "index", help="the seed index")
    ap.add_argument("--who-is", type=Path, default=ROOT / "benchmarks" / "who_is.jsonl")
    ap.add_argument("--rules", default=",".join(VARIANTS), help="rules to turn off, comma-separated")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    rules = [r for r in args.rules.split(",") if r]
    unknown = [r for r in rules if r not in VARIANTS]
    if unknown:
        ap.error(f"unknown rules: {', '.join(unknown)} (known: {', '.join(VARIANTS)})")
    ids = read_ids(args.ids)
    sets: list[tuple[str, EvalSet, rag.QA]] = [
        ("drcd_val", load_eval_set(args.drcd).only(ids), rag.load(args.drcd_index))]
    if args.squad2 is not None:
        if args.squad2_index is None:
            ap.error("--squad2 needs --squad2-index")
        sets.append(("squad2_val", load_eval_set(args.squad2).only(ids), rag.load(args.squad2_index)))
    seed_qa = rag.load(args.index)
    if args.seed_dev is not None:
        sets.append(("seed_dev", load_eval_set(args.seed_dev), seed_qa))
    if args.near_miss is not None:
        sets.append(("near_miss", load_eval_set(args.near_miss), seed_qa))
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        who = (rag.load(bench_who_is.build(Path(tmp))), bench_who_is.read_rows(args.who_is)) if args.who_is else None
        result: dict[str, Any] = {"command": "python -m benchmarks.bench_rules " + " ".join(argv or []),
                                  "variants": {}}
        for name, changes in [("all rules", {}), *((f"no {r}", VARIANTS[r]) for r in rules)]:
            result["variants"][name] = measure(sets, who, changes)
            print(f"{name}: {json.dumps(result['variants'][name], ensure_ascii=False)}", flush=True)
    result["seconds"] = round(time.perf_counter() - t0, 1)
    print(render(result["variants"]))
    if args.json:
        args.json.write_text(json.dumps(result, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    return 0


def _cell(row: dict[str, Any], part: str, metric: str, fmt: Callable[[float], str]) -> str:
    value = row.get(part, {}).get(metric)
    return "-" if value is None else fmt(value)


def render(variants: dict[str, dict[str, Any]]) -> str:
    """A Markdown table: one row a variant."""
    pct = lambda v: f"{100 * v:.1f}%"  # noqa: E731
    f3 = lambda v: f"{v:.3f}"  # noqa: E731
    head = ("| variant | DRCD F1 | DRCD sentence hit | DRCD wrongly refused | SQuAD2 unanswerable refused "
            "| seed F1 | seed wrongly refused | seed unanswerable refused | near misses refused "
            "| near-miss set answerable refused | who-is right |")
    lines = [head, "| --- " * (head.count("|") - 1) + "|"]
    for name, row in variants.items():
        who = row.get("who_is")
        lines.append("| " + " | ".join([
            name,
            _cell(row, "drcd_val", "f1", f3), _cell(row, "drcd_val", "answer_hit_rate", f3),
            _cell(row, "drcd_val", "wrong_refusal_rate", pct),
            _cell(row, "squad2_val", "correct_refusal_rate", pct),
            _cell(row, "seed_dev", "f1", f3), _cell(row, "seed_dev", "wrong_refusal_rate", pct),
            _cell(row, "seed_dev", "correct_refusal_rate", pct),
            _cell(row, "near_miss", "correct_refusal_rate", pct), _cell(row, "near_miss", "wrong_refusal_rate", pct),
            f"{who['right']}/{who['questions']}" if who else "-",
        ]) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
