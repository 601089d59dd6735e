"""Incremental index updates against a full rebuild.

Documents are the first ``--n`` contexts of a SQuAD-format JSON file (one file each). The
benchmark builds the full ``n``-document index from scratch (the baseline), then builds the
first ``n - 1`` documents and adds the last one with :meth:`rag.IndexWriter.add`, and
checks that both indexes hold the same chunks and vectors. It then times re-embedding one
changed document (``build``, which checks every file's sha256), removing one, and a build
with nothing to do. Each timed call loads its model itself, as a separate call of the API
would (Python imports are warmed up first); ``--shared-embedder`` passes one loaded model to
every call instead, so that only indexing work is timed. Wall time and this process's CPU time
are both reported: on a shared machine the CPU-time ratio is the steadier one. Example::

    python -m benchmarks.bench_incremental /work/shared/data/drcd/DRCD_dev.json --n 1000 --json inc.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Timing:
    step: str
    seconds: float
    cpu_seconds: float
    documents: int
    chunks: int
    embedded_chunks: int
    reused_chunks: int


def load_passages(path: Path, n: int) -> list[str]:
    data = json.loads(path.read_text(encoding="utf-8"))
    contexts = [p["context"] for article in data["data"] for p in article["paragraphs"] if p["context"].strip()]
    if len(contexts) < n:
        raise SystemExit(f"{path}: only {len(contexts)} passages, {n} asked for")
    return contexts[:n]


def timed(step: str, call: Callable[[], Any]) -> tuple[Timing, Any]:
    start, cpu = time.perf_counter(), time.process_time()
    report = call()
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    info = report.info
    return Timing(step, round(seconds, 3), round(cpu, 3), info.documents, info.chunks, report.embedded_chunks, report.reused_chunks), report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data", type=Path, help="SQuAD-format JSON (e.g. DRCD_dev.json)")
    parser.add_argument("--n", type=int, default=1000, help="documents in the index (default 1000)")
    parser.add_argument("--model", default=None, help="embedding model (default: the default model)")
    parser.add_argument("--shared-embedder", action="store_true", help="load the model once and pass it to every call")
    parser.add_argument("--work", type=Path, default=None, help="working folder (default: a temporary one)")
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    args = parser.parse_args(argv)

    from rag.index.embedding import canonical_name, load_embedder
    from rag.index.store import load_index
    from rag.index.writer import IndexWriter

    passages = load_passages(args.data, args.n)
    work = args.work or Path(tempfile.mkdtemp(prefix="bench-inc-"))
    shutil.rmtree(work, ignore_errors=True)
    all_docs, part_docs = work / "all", work / "part"
    for folder in (all_docs, part_docs):
        folder.mkdir(parents=True)
    for i, text in enumerate(passages):
        name = f"p{i:05d}.txt"
        (all_docs / name).write_text(text, encoding="utf-8")
        if i < args.n - 1:
            (part_docs / name).write_text(text, encoding="utf-8")
    new_doc = part_docs / f"p{args.n - 1:05d}.txt"  # written after the n-1 build

    model = canonical_name(args.model)
    warm = load_embedder(model)  # imports torch & co. once, outside every timing
    warm.encode(["warm up"], kind="passage")
    from rag.index.lexical import tokenize

    tokenize("預熱分詞器 warm up the tokenizer")
    embedder = warm if args.shared_embedder else None
    os.chdir(work)
    timings: list[Timing] = []

    def writer(index: Path) -> IndexWriter:
        return IndexWriter(index, model=model, embedder=embedder)

    t, _ = timed("full rebuild, n documents", lambda: writer(work / "index-full").sync([all_docs], full=True))
    timings.append(t)
    t, _ = timed("full build, n-1 documents (setup)", lambda: writer(work / "index-inc").sync([part_docs], full=True))
    timings.append(t)
    new_doc.write_text(passages[-1], encoding="utf-8")
    t, _ = timed("add 1 document", lambda: writer(work / "index-inc").add([new_doc]))
    timings.append(t)
    full, inc = load_index(work / "index-full"), load_index(work / "index-inc")
    same_texts = [c.text for c in full.chunks] == [c.text for c in inc.chunks]
    max_diff = float(np.abs(full.vectors - inc.vectors).max()) if same_texts else float("nan")

    changed = part_docs / "p00000.txt"
    changed.write_text(changed.read_text(encoding="utf-8") + "\n這一段是後來加上的補充說明。", encoding="utf-8")
    t, _ = timed("re-embed 1 changed document (build, n files hashed)",
                 lambda: writer(work / "index-inc").sync([part_docs]))
    timings.append(t)
    t, _ = timed("remove 1 document", lambda: IndexWriter(work / "index-inc").remove([changed]))
    timings.append(t)
    changed.unlink()
    t, report = timed("build with nothing to do", lambda: writer(work / "index-inc").sync([part_docs]))
    timings.append(t)

    base, base_cpu = timings[0].seconds, timings[0].cpu_seconds
    result = {
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        "model": model,
        "documents": args.n,
        "shared_embedder": args.shared_embedder,
        "same_chunks_as_full_build": same_texts,
        "max_vector_difference": max_diff,
        "timings": [asdict(x) | {"share_of_full": round(x.seconds / base, 4),
                                 "cpu_share_of_full": round(x.cpu_seconds / base_cpu, 4)} for x in timings],
    }
    for x in timings:
        print(f"{x.step:52s} {x.seconds:8.2f}s {100 * x.seconds / base:6.2f}% of full, CPU {x.cpu_seconds:8.2f}s "
              f"{100 * x.cpu_seconds / base_cpu:6.2f}%  "
              f"({x.documents} docs, {x.chunks} chunks, {x.embedded_chunks} embedded, {x.reused_chunks} reused)")
    print(f"incremental index equals the full build: chunks {same_texts}, max vector difference {max_diff:.2e}")
    if args.json:
        args.json.write_text(json.dumps(result, ensure_ascii=False, indent=2), encoding="utf-8")
    if args.work is None:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
