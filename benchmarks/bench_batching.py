"""Embedding batches by padded-token budget: memory held by one forward pass, throughput, and
how far the vectors move, against plain batches of ``--batch-size`` rows.

The chunks are ``bench_scale``'s synthetic documents (DRCD sentences, the index's chunking), so
their lengths are a real build's. Each budget embeds the same ``--chunks`` chunks in groups of
128, as a build's embedding stage does (``rag.index.reuse``); a sampler thread reads
``RssAnon`` every 10 ms. "transient" is its peak above the level after the run (activations,
which come and go), "retained" what the runs left behind (oneDNN's compiled kernels, one per
new shape: capped by ``rag.encoder.torch_threads.KERNEL_CACHE_ENTRIES``). All
budgets run in one process, in turn, twice (the better run is kept), so the ratios are fair on
a busy machine. Example::

    python -m benchmarks.bench_batching --chunks 768 --threads 1 --json benchmarks/results/bench_batching.json
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
from benchmarks.bench_scale import DEFAULT_DATA  # noqa: E402


def _anon_mib() -> float:
    with open("/proc/self/status", encoding="utf-8") as fh:
        for line in fh:
            if line.startswith("RssAnon"):
                return int(line.split()[1]) / 1024
    return 0.0


def chunk_texts(n: int, data: list[Path], seed: int) -> list[str]:
    from benchmarks.bench_scale import eval_sets, sentence_pool, synthesize
    from rag.ingest.chunking import chunk_document
    from rag.ingest.clean import clean_text
    from rag.settings import IndexSettings

    s = IndexSettings()
    docs = synthesize(sentence_pool(eval_sets(data)), n + n // 4, s, seed)
    texts = [c.text for name, text in docs
             for c in chunk_document(clean_text(text, name), chunk_chars=s.chunk_chars, overlap=s.chunk_overlap)]
    return texts[:n]


def run(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    from rag.index.embedding import load_embedder
    from rag.index.heap import release_freed_memory

    torch.set_num_threads(args.threads)
    texts = chunk_texts(args.chunks, args.data, args.seed)
    emb = load_embedder("multilingual-e5-small", batch_size=args.batch_size)
    lengths = emb._token_lengths(texts)  # noqa: SLF001 - the benchmark reports what batching sees
    emb.encode(texts[:8], kind="passage")
    peak = [0.0]
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], _anon_mib())
            time.sleep(0.01)

    threading.Thread(target=sample, daemon=True).start()
    budgets = [0] + [int(b) for b in args.budgets.split(",")]
    best: dict[int, dict[str, Any]] = {}
    vectors: dict[int, np.ndarray] = {}
    for _ in range(2):
        for budget in budgets:
            emb.token_budget = budget or 10**9  # 0: rows only, the old batching
            release_freed_memory()
            time.sleep(0.05)
            base = peak[0] = _anon_mib()
            start = time.perf_counter()
            parts = []
            for s in range(0, len(texts), 128):
                parts.append(emb.encode(texts[s:s + 128], kind="passage"))
                release_freed_memory()
            seconds = time.perf_counter() - start
            vectors[budget] = np.concatenate(parts)
            speed = round(len(texts) / seconds, 2)
            release_freed_memory()
            after = _anon_mib()
            row = best.setdefault(budget, {"chunks_per_s": 0.0, "transient_mib": 0.0, "retained_mib": 0.0})
            row["chunks_per_s"] = max(row["chunks_per_s"], speed)  # the better run
            # what came and went (activations), apart from what stayed (compiled kernels)
            row["transient_mib"] = max(row["transient_mib"], round(peak[0] - after, 1))
            row["retained_mib"] = round(row["retained_mib"] + after - base, 1)
    stop.set()
    ref = vectors[0]
    for budget, row in best.items():
        cos = np.sum(vectors[budget] * ref, axis=1)
        row["cosine_to_rows_only_min"] = round(float(cos.min()), 6)
        row["speed_vs_rows_only"] = round(row["chunks_per_s"] / best[0]["chunks_per_s"], 3)
    return {
        "command": "python -m benchmarks.bench_batching " + " ".join(args.argv),
        "created": time.strftime("%Y-%m-%dT%H:%M"),
        "chunks": len(texts),
        "tokens_median": int(np.median(lengths)),
        "tokens_max": int(max(lengths)),
        "batch_size": args.batch_size,
        "threads": args.threads,
        "precision": emb.precision,
        "loadavg_1m": round(__import__("os").getloadavg()[0], 2),
        "budgets": {("rows only" if b == 0 else str(b)): best[b] for b in budgets},
    }


def main(argv: list[str] | None = None) -> None:
    import sys

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--chunks", type=int, default=768)
    ap.add_argument("--budgets", default="8192,4096,2048")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--data", nargs="+", type=Path, default=list(DEFAULT_DATA), help="SQuAD-format files to sample")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    args.argv = sys.argv[1:] if argv is None else argv
    report = run(args)
    text = json.dumps(report, ensure_ascii=False, indent=1)
    print(text)
    if args.json:
        args.json.write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
