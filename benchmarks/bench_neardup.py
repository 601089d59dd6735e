"""Near-duplicate detection on a templated corpus: a full pass, and one document added.

Every document is one ~200-character template filled with other names, places and figures
(seeded), the case that fills MinHash band buckets with thousands of documents; one in fifty
is a light edit of an earlier one (a real near-duplicate). For each size the script times

* ``full``: :func:`rag.ingest.neardup.find_near_duplicates` over all ``n`` documents (a fresh build);
* ``add``: the near-duplicate work of adding one document to the ``n``-document index, as
  :class:`rag.IndexWriter` does it: the new document's signature, then the search with the
  previous result passed in (``previous=``, when the installed :mod:`rag.ingest.neardup` has it; an
  older one recomputes everything). Several adds with different names; each is checked
  against a full pass over the ``n + 1`` documents (the same pairs, or the script fails).

With ``--end-to-end N`` it also times :meth:`rag.IndexWriter.add_texts` of one document into an
``N``-document index (test embedder), the whole add as a user sees it.

Wall and CPU time are reported (the machine may be shared). Example::

    python -m benchmarks.bench_neardup                       # 2500,5000,10000
    python -m benchmarks.bench_neardup --sizes 2500 --adds 3 --json /tmp/nd.json
"""

from __future__ import annotations

import argparse
import importlib.util
import inspect
import json
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any, TypeVar

import numpy as np

from rag.ingest import neardup

T = TypeVar("T")

TEMPLATE = ("{name}, head of the {city} branch, said on {day} {month} that revenue reached {a} million yuan, "
            "up {b}% on last year, while costs fell {c}% and {d} new staff joined; the board expects {e} "
            "stores by {year}.")
SURNAMES = ["Zhang", "Wang", "Li", "Zhao", "Chen", "Liu", "Yang", "Huang", "Zhou", "Wu", "Xu", "Sun", "Hu", "Zhu",
            "Gao", "Lin", "He", "Guo", "Ma", "Luo", "Liang", "Song", "Zheng", "Xie", "Han", "Tang", "Feng", "Yu"]
GIVEN = ["Wei", "Fang", "Na", "Min", "Jing", "Li", "Qiang", "Lei", "Jun", "Yang", "Yong", "Yan", "Jie", "Tao",
         "Ming", "Chao", "Xiu", "Xia", "Hui", "Ping", "Gang", "Gui", "Hua", "Dan", "Bo", "Rui", "Hao", "Kai"]
CITIES = ["Shanghai", "Beijing", "Shenzhen", "Guangzhou", "Chengdu", "Wuhan", "Hangzhou", "Nanjing", "Tianjin",
          "Xi'an", "Suzhou", "Chongqing", "Qingdao", "Dalian", "Xiamen", "Kunming", "Harbin", "Changsha"]
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December"]


def fill(rng: random.Random) -> str:
    return TEMPLATE.format(
        name=f"{rng.choice(GIVEN)} {rng.choice(SURNAMES)}", city=rng.choice(CITIES), day=rng.randint(1, 28),
        month=rng.choice(MONTHS), a=rng.randint(10, 9999), b=round(rng.uniform(0.5, 40), 1),
        c=round(rng.uniform(0.5, 20), 1), d=rng.randint(2, 900), e=rng.randint(5, 500), year=rng.randint(2025, 2035))


def edit(text: str, rng: random.Random) -> str:
    """A light edit: one figure changed, as a re-posted copy would be."""
    digits = [i for i, ch in enumerate(text) if ch.isdigit()]
    i = rng.choice(digits)
    return text[:i] + str((int(text[i]) + 1) % 10) + text[i + 1:]


def corpus(n: int, seed: int = 20240505) -> tuple[list[str], list[str]]:
    """``n`` templated documents (sources sorted, as an index holds them) and their texts."""
    rng = random.Random(seed)
    texts: list[str] = []
    for i in range(n):
        texts.append(edit(texts[rng.randrange(i)], rng) if i >= 50 and i % 50 == 0 else fill(rng))
    return [f"reports/report-{i:05d}.txt" for i in range(n)], texts


def timed(call: Callable[[], T]) -> tuple[T, float, float]:
    start, cpu = time.perf_counter(), time.process_time()
    out = call()
    return out, time.perf_counter() - start, time.process_time() - cpu


def bucket_sizes(sigs: np.ndarray) -> dict[str, int]:
    rows = neardup.PERMUTATIONS // neardup.BANDS
    largest, pairs = 0, 0
    for b in range(neardup.BANDS):
        counts: dict[bytes, int] = {}
        for row in sigs[:, b * rows:(b + 1) * rows]:
            key = row.tobytes()
            counts[key] = counts.get(key, 0) + 1
        largest = max(largest, max(counts.values()))
        pairs += sum(c * (c - 1) // 2 for c in counts.values())
    return {"largest_bucket": largest, "same_bucket_pairs": pairs}


def run_size(n: int, adds: int, incremental: bool) -> dict[str, Any]:
    sources, texts = corpus(n + adds)
    base_sources, base_texts = sources[:n], texts[:n]
    sigs = neardup.signatures(texts)
    base_sigs = sigs[:n]
    found, full_s, full_cpu = timed(lambda: neardup.find_near_duplicates(base_sources, base_texts, base_sigs))
    rng = random.Random(n)
    add_runs = []
    for k in range(adds):
        # Names that sort first, last and in the middle of the index.
        name = ["reports/a-new-{k}.txt", "reports/report-zz-{k}.txt", f"reports/report-{rng.randrange(n):05d}-b.txt"][k % 3]
        name = name.format(k=k)
        new_text = texts[n + k]
        order = sorted(range(n + 1), key=lambda i: base_sources[i] if i < n else name)
        all_sources = [base_sources[i] if i < n else name for i in order]
        all_texts = [base_texts[i] if i < n else new_text for i in order]

        def add() -> list[neardup.NearDuplicate]:
            new_sig = neardup.signature(new_text)
            all_sigs = np.stack([base_sigs[i] if i < n else new_sig for i in order])
            if incremental:
                previous = neardup.Previous(base_sources, base_texts, base_sigs, tuple(found))
                return neardup.find_near_duplicates(all_sources, all_texts, all_sigs, previous=previous)
            return neardup.find_near_duplicates(all_sources, all_texts, all_sigs)

        got, add_s, add_cpu = timed(add)
        if incremental:  # an older neardup's add is a full pass already
            all_sigs = np.stack([base_sigs[i] if i < n else neardup.signature(new_text) for i in order])
            want = neardup.find_near_duplicates(all_sources, all_texts, all_sigs)
        else:
            want = got
        if got != want:
            raise SystemExit(f"n={n}, add {name}: the incremental result differs from a full pass "
                             f"({len(got)} pairs, {len(want)} expected)")
        add_runs.append({"name": name, "seconds": round(add_s, 4), "cpu_seconds": round(add_cpu, 4),
                         "pairs_after": len(got)})
    return {
        "documents": n,
        "full_seconds": round(full_s, 3),
        "full_cpu_seconds": round(full_cpu, 3),
        "near_duplicate_pairs": len(found),
        **bucket_sizes(base_sigs),
        "add": add_runs,
        "add_seconds_median": round(statistics.median(r["seconds"] for r in add_runs), 4),
        "add_seconds_max": round(max(r["seconds"] for r in add_runs), 4),
    }


def end_to_end(n: int) -> dict[str, Any]:
    """``add_texts`` of one document into an ``n``-document index built with the test embedder."""
    from rag.index.writer import IndexWriter

    sources, texts = corpus(n + 1)
    with tempfile.TemporaryDirectory(prefix="bench-neardup-") as tmp:
        index = Path(tmp) / "index"
        _, build_s, _ = timed(lambda: IndexWriter(index, model="test-hash").add_texts(zip(sources[:n], texts[:n]),
                                                                                      replace_all=True))
        report, add_s, add_cpu = timed(lambda: IndexWriter(index).add_texts([("reports/report-new.txt", texts[n])]))
    return {"documents": n, "build_seconds": round(build_s, 2), "add_seconds": round(add_s, 3),
            "add_cpu_seconds": round(add_cpu, 3), "near_duplicate_pairs": len(report.near_duplicates)}


def load_baseline(path: Path) -> ModuleType:
    """``path`` imported as ``rag.ingest.neardup`` (its relative imports resolve inside ``rag``)."""
    spec = importlib.util.spec_from_file_location("rag.ingest.neardup", path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"{path}: cannot be imported")
    module = importlib.util.module_from_spec(spec)
    module.__package__ = "rag"
    sys.modules["rag.ingest.neardup"] = module
    spec.loader.exec_module(module)
    return module


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="2500,5000,10000", help="index sizes (default 2500,5000,10000)")
    parser.add_argument("--adds", type=int, default=3, help="adds timed per size (default 3)")
    parser.add_argument("--end-to-end", type=int, default=0, metavar="N",
                        help="also time IndexWriter.add_texts of one document into an N-document index")
    parser.add_argument("--label", default="", help="a name for this run in the JSON (e.g. before, after)")
    parser.add_argument("--baseline", type=Path, default=None, metavar="FILE",
                        help="time this copy of rag/ingest/neardup.py instead of the installed one, e.g. the code "
                             "before a change: git show HEAD:rag/ingest/neardup.py > /tmp/neardup_before.py")
    parser.add_argument("--json", type=Path, default=Path(__file__).resolve().parent / "results" / "bench_neardup.json",
                        help="where to write the results (default benchmarks/results/bench_neardup.json)")
    args = parser.parse_args(argv)
    global neardup
    if args.baseline is not None:
        neardup = load_baseline(args.baseline)
    incremental = "previous" in inspect.signature(neardup.find_near_duplicates).parameters
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    results = []
    for n in sizes:
        r = run_size(n, args.adds, incremental)
        results.append(r)
        print(f"n={n:>6}: full pass {r['full_seconds']:7.3f}s  add one: median {r['add_seconds_median']:.4f}s, "
              f"max {r['add_seconds_max']:.4f}s  ({r['near_duplicate_pairs']} pairs; largest bucket "
              f"{r['largest_bucket']}, {r['same_bucket_pairs']} same-bucket pairs)", flush=True)
    e2e = None
    if args.end_to_end:
        e2e = end_to_end(args.end_to_end)
        print(f"end to end: add_texts of one document into {e2e['documents']}: {e2e['add_seconds']:.2f}s "
              f"(build {e2e['build_seconds']:.1f}s)", flush=True)
    out = {
        "benchmark": "bench_neardup",
        "label": args.label,
        "incremental": incremental,
        "baseline": str(args.baseline) if args.baseline else None,
        "bucket_cap": getattr(neardup, "BUCKET_CAP", None),
        "template": TEMPLATE,
        "sizes": results,
        "end_to_end": e2e,
        "python": platform.python_version(),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
