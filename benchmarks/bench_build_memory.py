"""Where a real build's memory goes: resident memory sampled every 2 s through one build, by stage
and by kind of mapping (the C heap, other anonymous memory, mapped files such as the model's
weights), with the high-water mark.

    python -m benchmarks.bench_build_memory --size 10000 --json benchmarks/results/build_memory_10k.json

The corpus is ``bench_scale.py``'s (synthetic documents of real sentences, every chunk embedded
by the real model through ``rag.IndexWriter.add_texts``). The evaluation sets the sentences are
drawn from are dropped before the model loads, so what is measured is the build: the caller's
documents, the model and the build's own stages. Linux only (``/proc/self/smaps``).
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import resource
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks import bench_scale as bs

KINDS = ("heap", "anon", "file")


def resident_by_kind(smaps: str) -> dict[str, int]:
    """MiB resident per kind of mapping in ``/proc/self/smaps`` text: ``[heap]`` (glibc's main
    arena), other anonymous mappings (other arenas, large allocations, thread stacks) and
    mappings of files (libraries, the model's weights)."""
    kib = dict.fromkeys(KINDS, 0)
    kind = "anon"
    for line in smaps.splitlines():
        parts = line.split()
        if not parts:
            continue
        if "-" in parts[0] and not parts[0].endswith(":"):
            name = parts[5] if len(parts) > 5 else ""
            kind = "heap" if name == "[heap]" else ("anon" if name == "" or name.startswith("[") else "file")
        elif parts[0] == "Rss:":
            kib[kind] += int(parts[1])
    return {k: v // 1024 for k, v in kib.items()}


class Sampler:
    """Samples resident memory by kind every ``every`` seconds, tagged with the build's stage."""

    def __init__(self, every: float = 2.0) -> None:
        self.every = every
        self.stage = "start"
        self.samples: list[dict[str, Any]] = []
        self.t0 = time.perf_counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()

    def sample(self) -> None:
        with open("/proc/self/smaps", encoding="utf-8") as fh:
            kinds = resident_by_kind(fh.read())
        self.samples.append({"t": round(time.perf_counter() - self.t0, 1), "stage": self.stage,
                             "total": sum(kinds.values()), **kinds})

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.every)

    def progress(self, stage: str, done: int, total: int) -> None:
        self.stage = stage


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.machine()


def by_stage(samples: Sequence[dict[str, Any]]) -> dict[str, dict[str, int]]:
    """The largest sample of each kind within each stage, in the order the stages came."""
    out: dict[str, dict[str, int]] = {}
    for s in samples:
        row = out.setdefault(s["stage"], {k: 0 for k in ("total", *KINDS)})
        for k in row:
            row[k] = max(row[k], s[k])
    return out


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=10000, help="chunks")
    ap.add_argument("--data", nargs="+", type=Path, default=list(bs.DEFAULT_DATA), help="SQuAD-format files to sample")
    ap.add_argument("--seed", type=int, default=13)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)

    import rag
    from rag.encoder.precision import choose
    from rag.index.embedding import load_embedder
    from rag.settings import IndexSettings

    settings = IndexSettings()
    with Sampler() as sampler, tempfile.TemporaryDirectory() as tmp:
        sets = bs.eval_sets(args.data)
        docs = bs.synthesize(bs.sentence_pool(sets), args.size, settings, args.seed)
        del sets
        gc.collect()
        sampler.stage = "load model"
        embedder = load_embedder("default", batch_size=settings.batch_size)
        sampler.stage = "loaded"
        sampler.sample()
        t0 = time.perf_counter()
        report = rag.IndexWriter(Path(tmp) / "index", embedder=embedder, progress=sampler.progress).add_texts(
            docs, replace_all=True, full=True)
        wall = time.perf_counter() - t0
        sampler.stage = "done"
    result = {
        "command": "python -m benchmarks.bench_build_memory " + " ".join(sys.argv[1:] if argv is None else argv),
        "machine": {"cpu": cpu_model(), "platform": platform.platform(), "precision": choose(None)},
        "chunks": report.info.chunks,
        "build_s": round(wall, 1),
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024,
        "max_by_stage_mib": by_stage(sampler.samples),
        "samples": sampler.samples,
    }
    print(f"{result['chunks']} chunks in {result['build_s']} s, precision {result['machine']['precision']}: "
          f"peak RSS {result['peak_rss_mib']} MiB")
    for stage, row in result["max_by_stage_mib"].items():
        print(f"  {stage:12s} " + "  ".join(f"{k} {v}" for k, v in row.items()))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
