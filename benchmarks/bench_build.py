"""Index build end to end against embedding alone, in one run (ratios: machines here are noisy).

Writes the first ``--n`` passages of a SQuAD-format file as documents, then times, in one
process: (1) float32 sentence-transformers embedding the passages' chunks, the reference the
issue names; (2) ``rag.build_index`` over the documents at the precision this CPU picks
(:func:`rag.encoder.precision.choose`), cold (the model loaded inside the build) and warm (a second,
full rebuild in the same process: the model loads once per process); each build's stages
from its progress callback (read, chunk, embed, bm25, near-duplicates + write)::

    python -m benchmarks.bench_build ../shared/data/drcd/DRCD_dev.json --n 150 \\
        --json benchmarks/results/bench_build.json
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import rag
from rag.encoder import precision
from rag.index.embedding import load_embedder

STAGES = ("read", "chunk", "embed", "bm25", "write")


class StageClock:
    """Seconds from each stage's first progress call to the next stage's (the last one until
    the build returns)."""

    def __init__(self) -> None:
        self.marks: list[tuple[str, float]] = []

    def __call__(self, stage: str, done: int, total: int) -> None:
        if not self.marks or self.marks[-1][0] != stage:
            self.marks.append((stage, time.perf_counter()))

    def seconds(self, end: float) -> dict[str, float]:
        out: dict[str, float] = {}
        for i, (stage, t) in enumerate(self.marks):
            nxt = self.marks[i + 1][1] if i + 1 < len(self.marks) else end
            out[stage] = round(out.get(stage, 0.0) + nxt - t, 3)
        return out


def passages(path: Path, n: int) -> list[str]:
    data = json.loads(path.read_text(encoding="utf-8"))
    out = [p["context"] for a in data["data"] for p in a["paragraphs"] if p["context"].strip()]
    if len(out) < n:
        raise SystemExit(f"{path}: only {len(out)} passages")
    return out[:n]


def build(docs: Path, index: Path, full: bool) -> dict[str, Any]:
    clock = StageClock()
    t0 = time.perf_counter()
    info = rag.build_index([docs], index_dir=index, progress=clock, full=full)
    end = time.perf_counter()
    stages = clock.seconds(end)
    stages["before first stage (model load etc.)"] = round(clock.marks[0][1] - t0, 3) if clock.marks else 0.0
    return {"seconds": round(end - t0, 3), "chunks": info.chunks, "chunks_per_s": round(info.chunks / (end - t0), 1),
            "embed_chunks_per_s": round(info.chunks / stages["embed"], 1) if stages.get("embed") else None,
            "stages": stages}


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data", type=Path)
    ap.add_argument("--n", type=int, default=150)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    texts = passages(args.data, args.n)
    chosen = precision.choose()
    with tempfile.TemporaryDirectory() as tmp:
        docs = Path(tmp) / "docs"
        docs.mkdir()
        for i, t in enumerate(texts):
            (docs / f"p{i:04d}.txt").write_text(t, encoding="utf-8")
        cold = build(docs, Path(tmp) / "index", full=False)
        warm = build(docs, Path(tmp) / "index", full=True)
        chunk_texts = [c.text for c in rag.load(Path(tmp) / "index", reader="sentence").collection.stored.chunks]
        st = load_embedder(precision="float32")
        st.encode(chunk_texts[:4], kind="passage")
        t = time.perf_counter()
        st.encode(chunk_texts, kind="passage")
        f32 = time.perf_counter() - t
    result = {
        "passages": len(texts), "chunks": len(chunk_texts), "precision": chosen,
        "bf16_units": precision.cpu_support().describe(),
        "float32_sentence_transformers_embed_seconds": round(f32, 3),
        "float32_chunks_per_s": round(len(chunk_texts) / f32, 1),
        "build_cold": cold, "build_warm": warm,
        "ratio_cold_build_to_float32_embed": round(cold["seconds"] / f32, 3),
        "ratio_warm_build_to_float32_embed": round(warm["seconds"] / f32, 3),
    }
    print(json.dumps(result, indent=1))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
