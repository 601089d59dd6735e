"""Scale benchmark: index build throughput, query latency, peak memory and disk size at
1k / 10k / 100k chunks (configurable).

    python -m benchmarks.bench_scale                       # 1000,10000,100000 chunks
    python -m benchmarks.bench_scale --sizes 1000,5000 --queries 30 --model test-hash

Corpus: synthetic documents made of *real* sentences sampled (seeded) from the CMRC 2018 and
DRCD passages in ../shared/data, so chunk lengths, vocabulary and BM25 statistics are those of
real Chinese text, and every chunk is distinct.

Vectors: every chunk is embedded by the real model (bf16 where the CPU has it), through the
core's own ``rag.IndexWriter.add_texts``: cleaning, chunking, embedding, BM25, near-duplicates,
the dense index (exact, or IVF from ``ann_min_chunks`` on) and the write are all the real code.
Stages are timed from the writer's progress calls. Queries are real questions of the same sets;
query encoding is timed on its own too, and where the index is approximate, its recall@10
against the exact scan is measured on those questions.

Each size runs in two fresh subprocesses (build; load + queries) so that the RSS high-water
mark (``ru_maxrss``) of each phase is its own. Writes a JSON result and a PNG plot.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rag.ingest.chunking import split_sentences
from rag.evaluation.datasets import EvalSet, load_eval_set
from rag.evaluation.metrics import percentile

ROOT = Path(__file__).resolve().parent.parent

DATA = ROOT.parent / "shared" / "data"
DEFAULT_DATA = (
    DATA / "cmrc2018" / "cmrc2018_dev.json",
    DATA / "cmrc2018" / "cmrc2018_trial.json",
    DATA / "drcd" / "DRCD_dev.json",
)
MODES = ("bm25", "dense", "hybrid")
DOC_CHARS = 1500  # target length of one synthetic document


def _log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


def _rss_mib() -> float:
    with open("/proc/self/statm", encoding="ascii") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _loadavg() -> float:
    return round(os.getloadavg()[0], 2)


@dataclass(frozen=True)
class Stats:
    n: int
    median_ms: float
    p95_ms: float
    mean_ms: float

    @classmethod
    def of(cls, ms: Sequence[float]) -> Stats:
        return cls(
            len(ms),
            round(percentile(ms, 50), 3),
            round(percentile(ms, 95), 3),
            round(statistics.fmean(ms), 3),
        )


# ---------------------------------------------------------------------------- corpus


def eval_sets(paths: Sequence[Path]) -> list[EvalSet]:
    return [load_eval_set(p) for p in paths]


def sentence_pool(sets: Sequence[EvalSet]) -> list[str]:
    pool: list[str] = []
    for es in sets:
        for p in es.passages:
            pool.extend(p.text[s.start : s.end] for s in split_sentences(p.text))
    return pool


def synthesize(pool: Sequence[str], n_chunks: int, settings: Any, seed: int) -> list[tuple[str, str]]:
    """Documents of real sentences, drawn with a seeded RNG, until the core's chunker would
    make at least ``n_chunks`` chunks of them."""
    from rag.ingest.chunking import chunk_document
    from rag.ingest.clean import clean_text

    rng = random.Random(seed)
    docs: list[tuple[str, str]] = []
    total = 0
    while total < n_chunks:
        parts: list[str] = []
        size = 0
        while size < DOC_CHARS:
            s = pool[rng.randrange(len(pool))]
            parts.append(s)
            size += len(s)
        # a paragraph break every ~5 sentences, like real articles
        text = "".join(s + ("\n\n" if i % 5 == 4 else "") for i, s in enumerate(parts))
        name = f"synthetic/{len(docs):06d}.txt"
        doc = clean_text(text, name)
        total += len(
            chunk_document(doc, chunk_chars=settings.chunk_chars, overlap=settings.chunk_overlap)
        )
        docs.append((name, text))
    return docs


class StageClock:
    """A ``progress(stage, done, total)`` callback that records when each stage starts/ends."""

    def __init__(self) -> None:
        self.t0 = time.perf_counter()
        self.first: dict[str, float] = {}
        self.last: dict[str, float] = {}

    def __call__(self, stage: str, done: int, total: int) -> None:
        now = time.perf_counter() - self.t0
        self.first.setdefault(stage, now)
        self.last[stage] = now

    def stages(self, end: float) -> dict[str, float]:
        """Seconds per build stage, from the core's progress calls: cleaning (before the
        first ``chunk`` call), chunking, embedding (the model, and its known-token rates),
        BM25 tokenising, then BM25 fit + near-duplicate signatures, then the write."""
        f, last = self.first, self.last
        out = {
            "clean": f.get("chunk", end),
            "chunk": f.get("embed", f.get("bm25", end)) - f.get("chunk", 0.0),
            "embed_stage": f.get("bm25", end) - f.get("embed", f.get("bm25", end)),
            "bm25_tokenise": last.get("bm25", end) - f.get("bm25", 0.0),
            "bm25_fit_and_near_dups": f.get("write", end) - last.get("bm25", 0.0),
            "write": last.get("write", end) - f.get("write", 0.0),
        }
        return {k: round(v, 3) for k, v in out.items()}


# ---------------------------------------------------------------------------- phases


def phase_build(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    import rag
    from rag.encoder.torch_threads import usable_cores
    from rag.index.embedding import load_embedder
    from rag.index.store import current_version
    from rag.settings import IndexSettings

    settings = IndexSettings()
    sets = eval_sets(args.data)
    pool_sentences = sentence_pool(sets)
    t0 = time.perf_counter()
    docs = synthesize(pool_sentences, args.size, settings, args.seed)
    synth_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    embedder = load_embedder(args.model, batch_size=settings.batch_size)
    load_s = time.perf_counter() - t0
    index_dir = work / f"index-{args.size}"
    shutil.rmtree(index_dir, ignore_errors=True)
    rss_before = _rss_mib()
    la0 = _loadavg()
    clock = StageClock()
    t0 = time.perf_counter()
    info = rag.IndexWriter(index_dir, embedder=embedder, progress=clock).add_texts(docs, replace_all=True, full=True).info
    wall = time.perf_counter() - t0
    stages = clock.stages(wall)
    manifest = json.loads((current_version(index_dir) / "manifest.json").read_text(encoding="utf-8"))
    return {
        "size_target": args.size,
        "documents": info.documents,
        "chunks": info.chunks,
        "chars": sum(len(t) for _, t in docs),
        "model": embedder.name,
        "precision": manifest["precision"],
        "threads": usable_cores(),
        "model_load_s": round(load_s, 3),
        "synthesize_s": round(synth_s, 3),
        "build_wall_s": round(wall, 3),
        "chunks_per_s": round(info.chunks / wall, 1),
        "stages_s": stages,
        "embed_chunks_per_s": round(info.chunks / stages["embed_stage"], 1) if stages["embed_stage"] else None,
        "ann": manifest.get("ann"),
        "rss_before_build_mib": round(rss_before, 1),
        "peak_rss_mib": round(_peak_rss_mib(), 1),
        "loadavg_1m": [la0, _loadavg()],
        "index_dir": str(index_dir),
    }


def _questions(sets: Sequence[EvalSet], n: int, seed: int) -> list[str]:
    qs = [q.question for es in sets for q in es.questions]
    rng = random.Random(seed + 1)
    return rng.sample(qs, min(n, len(qs)))


def _dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _dense_recall(qa: Any, questions: Sequence[str]) -> dict[str, float] | None:
    """Recall@10 of the index's dense search against an exact scan of its vectors, on the
    questions (None when the index is exact): by score (a found chunk scoring at least the exact
    10th best is a hit: the index's own measure, :mod:`rag.index.vectors`) and by id."""
    import faiss

    index = qa.retriever._faiss  # noqa: SLF001 - the benchmark inspects the index it measures
    if type(index).__name__ == "IndexFlatIP":
        return None
    exact = faiss.IndexFlatIP(qa.retriever.vectors.shape[1])
    exact.add(np.ascontiguousarray(qa.retriever.vectors, dtype=np.float32))
    q = np.ascontiguousarray(qa.embedder.encode(list(questions), kind="query"), dtype=np.float32)
    want_scores, want = exact.search(q, 10)
    got_scores, got = index.search(q, 10)
    by_id = float(np.mean([len(set(a) & set(b)) / 10 for a, b in zip(want.tolist(), got.tolist())]))
    by_score = float(np.mean([(g >= w[-1] - 1e-5).sum() / 10 for g, w in zip(got_scores, want_scores)]))
    return {"by_score": round(by_score, 4), "by_id": round(by_id, 4)}


def phase_query(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    import rag

    index_dir = work / f"index-{args.size}"
    questions = _questions(eval_sets(args.data), args.queries, args.seed)
    rss0 = _rss_mib()
    t0 = time.perf_counter()
    qa = rag.load(index_dir)
    load_s = time.perf_counter() - t0
    rss_loaded = _rss_mib()
    for q in questions[:3]:  # warm-up: lazy loads, caches
        for m in MODES:
            qa.search(q, k=5, mode=m)
        qa.ask(q, k=5)
    la0 = _loadavg()
    search: dict[str, Stats] = {}
    for m in MODES:
        ms = []
        for q in questions:
            t = time.perf_counter()
            qa.search(q, k=5, mode=m)
            ms.append((time.perf_counter() - t) * 1e3)
        search[m] = Stats.of(ms)
    ask_ms = []
    for q in questions:
        t = time.perf_counter()
        qa.ask(q, k=5)
        ask_ms.append((time.perf_counter() - t) * 1e3)
    encode_ms = []
    for q in questions:
        t = time.perf_counter()
        qa.embedder.encode([q], kind="query")
        encode_ms.append((time.perf_counter() - t) * 1e3)
    recall = _dense_recall(qa, questions)
    return {
        "queries": len(questions),
        "default_mode": qa.settings.index.mode,
        "load_s": round(load_s, 3),
        "rss_before_load_mib": round(rss0, 1),
        "rss_after_load_mib": round(rss_loaded, 1),
        "search": {m: asdict(s) for m, s in search.items()},
        "ask": asdict(Stats.of(ask_ms)),
        "encode_query": asdict(Stats.of(encode_ms)),
        "dense_recall_at_10": recall,
        "peak_rss_mib": round(_peak_rss_mib(), 1),
        "index_bytes": _dir_bytes(qa.version_path),
        "loadavg_1m": [la0, _loadavg()],
    }


# ---------------------------------------------------------------------------- driver


def _run_phase(phase: str, args: argparse.Namespace, work: Path, size: int | None = None) -> dict[str, Any]:
    out = work / f"{phase}-{size or 0}.json"
    cmd = [
        sys.executable, __file__, "--phase", phase, "--work", str(work),
        "--model", args.model or "default", "--seed", str(args.seed), "--queries", str(args.queries),
        "--phase-out", str(out), "--data", *map(str, args.data),
    ]
    if size is not None:
        cmd += ["--size", str(size)]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True)
    res: dict[str, Any] = json.loads(out.read_text(encoding="utf-8"))
    res["process_wall_s"] = round(time.perf_counter() - t0, 3)
    return res


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = result["sizes"]
    x = [r["build"]["chunks"] for r in rows]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13.5, 4.8))
    for m, style in zip(MODES, ("o", "s", "^")):
        ax1.plot(x, [r["query"]["search"][m]["median_ms"] for r in rows], marker=style, label=f"search {m} median")
        ax1.plot(x, [r["query"]["search"][m]["p95_ms"] for r in rows], marker=style, ls="--", label=f"search {m} p95")
    ax1.plot(x, [r["query"]["ask"]["median_ms"] for r in rows], marker="D", color="k", label="ask median")
    ax1.plot(x, [r["query"]["ask"]["p95_ms"] for r in rows], marker="D", color="k", ls="--", label="ask p95")
    ax1.set(xscale="log", yscale="log", xlabel="chunks", ylabel="ms per query", title="query latency")
    ax1.grid(True, which="both", alpha=0.3)
    ax1.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax2.plot(x, [r["build"]["peak_rss_mib"] for r in rows], marker="o", label="build peak RSS")
    ax2.plot(x, [r["query"]["peak_rss_mib"] for r in rows], marker="s", label="serve peak RSS")
    ax2.plot(x, [r["query"]["index_bytes"] / 2**20 for r in rows], marker="^", label="index on disk")
    ax2.set(xscale="log", yscale="log", xlabel="chunks", ylabel="MiB", title="memory and disk")
    ax2.grid(True, which="both", alpha=0.3)
    ax2.legend(fontsize=8)
    model = rows[0]["build"]["model"] if rows else "?"
    fig.suptitle(
        f"rag scale benchmark ({model}, every chunk embedded; {result['machine']['cpus']} CPUs)",
        fontsize=10,
    )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _summary_lines(result: dict[str, Any]) -> list[str]:
    lines = [
        f"{'chunks':>8} {'build s':>8} {'chunks/s':>9} {'embed/s':>8} {'ann':>14} {'search med/p95 ms (hybrid)':>27} "
        f"{'encode med ms':>13} {'ask med/p95 ms':>15} {'build MiB':>9} {'serve MiB':>9} {'disk MiB':>8}",
    ]
    for r in result["sizes"]:
        b, q = r["build"], r["query"]
        h = q["search"]["hybrid"]
        ann = b.get("ann")
        ann_s = f"ivf {ann['nlist']}/{ann['nprobe']} r{(q['dense_recall_at_10'] or {}).get('by_score')}" if ann else "exact"
        lines.append(
            f"{b['chunks']:>8} {b['build_wall_s']:>8.1f} {b['chunks_per_s']:>9.1f} {b['embed_chunks_per_s'] or 0:>8.1f} "
            f"{ann_s:>14} {h['median_ms']:>12.1f} / {h['p95_ms']:<12.1f} {q['encode_query']['median_ms']:>13.1f} "
            f"{q['ask']['median_ms']:>6.1f} / {q['ask']['p95_ms']:<6.1f} {b['peak_rss_mib']:>9.0f} "
            f"{q['peak_rss_mib']:>9.0f} {q['index_bytes'] / 2**20:>8.1f}"
        )
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="1000,10000,100000", help="chunk counts, comma-separated")
    ap.add_argument("--model", default="default", help="embedding model (default: the package default)")
    ap.add_argument("--data", nargs="+", type=Path, default=list(DEFAULT_DATA), help="SQuAD-format files to sample")
    ap.add_argument("--queries", type=int, default=50, help="timed queries per size and mode")
    ap.add_argument("--seed", type=int, default=13)
    ap.add_argument("--work", type=Path, default=None, help="folder for the indexes (default: a temporary one)")
    ap.add_argument("--keep", action="store_true", help="keep the indexes")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "bench_scale.json")
    ap.add_argument("--plot", type=Path, default=ROOT / "benchmarks" / "results" / "bench_scale.png")
    ap.add_argument("--phase", choices=("build", "query"), help=argparse.SUPPRESS)
    ap.add_argument("--phase-out", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--size", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.model == "default":
        args.model = None

    if args.phase:  # a subprocess: one phase, result to --phase-out
        work = args.work
        fn = {"build": phase_build, "query": phase_query}[args.phase]
        res = fn(args, work)
        args.phase_out.write_text(json.dumps(res, ensure_ascii=False, indent=1), encoding="utf-8")
        return 0

    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    work = args.work or Path(tempfile.mkdtemp(prefix="rag-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    t_all = time.perf_counter()
    try:
        rows = []
        for n in sizes:
            _log(f"build {n} chunks")
            build = _run_phase("build", args, work, n)
            _log(f"  {build['chunks']} chunks in {build['build_wall_s']} s ({build['stages_s']}), "
                 f"peak {build['peak_rss_mib']} MiB, ann {build['ann']}")
            _log(f"query {n} chunks")
            query = _run_phase("query", args, work, n)
            _log(
                f"  search hybrid p95 {query['search']['hybrid']['p95_ms']} ms, "
                f"ask p95 {query['ask']['p95_ms']} ms, peak {query['peak_rss_mib']} MiB"
            )
            rows.append({"build": build, "query": query})
            if not args.keep:
                shutil.rmtree(work / f"index-{n}", ignore_errors=True)
    finally:
        if not args.keep and args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    result = {
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        },
        "method": {
            "corpus": "synthetic documents of real sentences sampled from " + ", ".join(p.name for p in args.data),
            "vectors": "every chunk embedded by the model, through rag.IndexWriter.add_texts",
            "queries": f"{args.queries} real questions from the same sets, k=5, after 3 warm-up queries",
            "memory": "ru_maxrss of separate build and query subprocesses",
        },
        "sizes": rows,
        "total_wall_s": round(time.perf_counter() - t_all, 1),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, ensure_ascii=False, indent=1), encoding="utf-8")
    plot(result, args.plot)
    print("\n".join(_summary_lines(result)))
    print(f"wrote {args.out} and {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
