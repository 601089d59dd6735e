"""Precision of the encoder: float32, bf16 (weights cast once), bf16 autocast and dynamic int8,
in one run.

Embeds passages with sentence-transformers (as index builds do) and encodes questions on the
plain-torch runtime (as queries do) at each precision, and reports throughput and the cosine of
each vector to its float32 one (min / median), plus what :func:`rag.encoder.precision.detect` picks on
this CPU. "bf16" is what rag runs (Linear weights stored in bf16 once,
:func:`rag.encoder.bert.cast_linears`; questions through the fused layer,
:meth:`rag.encoder.bert.BertLayer._fused_forward`, measured against the unfused one in the same run as
"bf16-unfused"); "bf16-autocast" (float32 weights under
``torch.autocast``, re-cast on every call) is measured for comparison. Ratios within one run are what to compare: machines here are shared and noisy::

    python -m benchmarks.bench_precision ../shared/data/drcd/DRCD_dev.json \\
        --questions ../shared/data/seed_qa_dev.jsonl --json benchmarks/results/bench_precision.json
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rag.encoder import e5
from rag.encoder import precision
from benchmarks.bench_embed import load_passages
from rag.encoder.e5_runtime import E5Embedder

PRECISIONS = ("float32", "bf16", "bf16-autocast", "int8")


def load_questions(path: Path) -> list[str]:
    return [json.loads(line)["question"] for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def best_time(fn: Callable[[], np.ndarray], repeat: int) -> tuple[float, np.ndarray]:
    fn()  # warm-up
    best, out = float("inf"), np.empty(0)
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def cosines(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    c = np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    return {"min": round(float(c.min()), 6), "median": round(float(np.median(c)), 6)}


def unfused_against_fused(runtime: E5Embedder, questions: Sequence[str], base_q: np.ndarray) -> dict[str, Any]:
    """The bf16 question path with and without :meth:`rag.encoder.bert.BertLayer._fused_forward`,
    alternating question by question so that both meet the same machine."""
    from rag.encoder.bert import BertLayer

    fused_ms, plain_ms, plain_rows = [], [], []
    try:
        for q in questions:
            for fused in (True, False):
                BertLayer.fused = fused
                t = time.perf_counter()
                row = runtime.encode([q], kind="query")[0]
                (fused_ms if fused else plain_ms).append((time.perf_counter() - t) * 1000)
                if not fused:
                    plain_rows.append(row)
    finally:
        BertLayer.fused = True
    return {"median_ms": round(statistics.median(plain_ms), 2), "p95_ms": round(float(np.percentile(plain_ms, 95)), 2),
            "cosine_to_float32": cosines(np.stack(plain_rows), base_q),
            "fused_median_ms_same_run": round(statistics.median(fused_ms), 2),
            "fused_over_unfused": round(statistics.median(fused_ms) / statistics.median(plain_ms), 3)}


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("passages", type=Path, help="a SQuAD-format JSON file (e.g. DRCD dev)")
    ap.add_argument("--questions", type=Path, required=True, help="JSON lines with a 'question' field")
    ap.add_argument("--n", type=int, default=160)
    ap.add_argument("--chars", type=int, default=300)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)

    import torch

    torch.set_num_threads(2)
    passages = load_passages(args.passages, args.n, args.chars)
    questions = load_questions(args.questions)
    folder = e5.materialize()
    support = precision.cpu_support()
    result: dict[str, Any] = {"cpu": platform.processor() or platform.machine(), "bf16_units": support.describe(),
                              "detected": precision.detect(), "torch": torch.__version__,
                              "passages": len(passages), "questions": len(questions), "embed": {}, "query": {}}
    base_p: np.ndarray | None = None
    base_q: np.ndarray | None = None
    for p in PRECISIONS:
        autocast = p == "bf16-autocast"
        loaded = "float32" if autocast else p
        model = e5.load_sentence_transformer(folder, precision=loaded)

        def embed() -> np.ndarray:
            with precision.autocast("bf16" if autocast else "float32"):
                return np.asarray(model.encode(passages, batch_size=args.batch, prompt_name="passage",
                                               normalize_embeddings=True, convert_to_numpy=True), dtype=np.float32)

        seconds, vecs = best_time(embed, args.repeat)
        base_p = vecs if base_p is None else base_p
        result["embed"][p] = {"passages_per_s": round(len(passages) / seconds, 1), "seconds": round(seconds, 2),
                              "cosine_to_float32": cosines(vecs, base_p)}
        del model
        runtime = E5Embedder(folder, precision=loaded)
        times, rows = [], []
        with precision.autocast("bf16" if autocast else "float32"):
            runtime.encode(questions[:2], kind="query")
            for q in questions:
                t = time.perf_counter()
                rows.append(runtime.encode([q], kind="query")[0])
                times.append(time.perf_counter() - t)
        qv = np.stack(rows)
        base_q = qv if base_q is None else base_q
        result["query"][p] = {"median_ms": round(statistics.median(times) * 1000, 2),
                              "p95_ms": round(float(np.percentile(times, 95)) * 1000, 2),
                              "cosine_to_float32": cosines(qv, base_q)}
        if p == "bf16":
            result["query"]["bf16-unfused"] = unfused_against_fused(runtime, questions, base_q)
        print(f"{p:8s} embed {result['embed'][p]['passages_per_s']:6.1f} passages/s "
              f"cos {result['embed'][p]['cosine_to_float32']}  query median {result['query'][p]['median_ms']} ms "
              f"cos {result['query'][p]['cosine_to_float32']}", flush=True)
    f32 = result["embed"]["float32"]["passages_per_s"]
    result["speedup_vs_float32"] = {p: round(result["embed"][p]["passages_per_s"] / f32, 2) for p in PRECISIONS}
    print(json.dumps(result["speedup_vs_float32"]))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
