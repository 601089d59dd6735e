"""Crash safety at volume: writers (build, add, remove) killed with SIGKILL, then checked.

Each run copies a template index (the "before" state, two versions so that a publish also
prunes), starts one writer on it and kills it with SIGKILL: at each of the store's fault steps
(:data:`rag.index.store.FAULT_STEPS`, through the :data:`rag.index.store.fault_hook` the writer
process installs) once per operation, then at random moments until ``--runs`` writers have been
killed. After each run it checks, with public functions only:

* broken: the index does not load, or a fresh load answers neither exactly like the index
  before nor exactly like the index after the operation (search hits with scores, answers,
  sources, for fixed questions);
* not recovered: the same operation run again (uninterrupted) fails or does not give the
  after state;
* lost user files: any file of the documents folders changed (sha256 of every file).

Writers are forked from a warmed-up forkserver that has imported this script, as in
``tests/test_faults.py``, so each starts in a fraction of a second. The test embedder
(``test-hash``) is used. Example::

    python -m benchmarks.bench_faults --runs 100
"""

from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing
import multiprocessing.context
import os
import platform
import random
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

from tqdm import tqdm

import rag
from rag.index.lexical import tokenize
from rag.index.writer import IndexWriter
from rag.index import store
from rag.index.store import FAULT_STEPS, kill_at

MODEL = "test-hash"
OPS = ("build", "add", "remove")
QUERIES = ["前三季度规模以上工业增加值同比增长多少？", "When was the bridge built?", "library opening hours", "高技术制造业",
           "When does the museum open?"]
BASE = {
    "article.txt": "前三季度，全国规模以上工业增加值同比增长5.8%。工业投资连续八个月保持两位数增长。高技术制造业增长较快。",
    "bridge.txt": "The old bridge was built in 1890 by engineers from the city. It is 300 metres long.",
    "library.md": "The city library opens at 9 am and closes at 6 pm on weekdays. It was founded in 1921.",
    "weather.txt": "今年夏天雨水偏多，气温比常年偏高一度左右。",
}
NEW = {k: v for k, v in BASE.items() if k != "library.md"}
NEW["bridge.txt"] = "The old bridge was rebuilt in 1990 after the flood. It is 320 metres long now."
NEW["museum.txt"] = "The museum opens at 10 am on Sundays and the library opens at 8 am on Saturdays."
NEW["article.txt"] = BASE["article.txt"] + "高技术制造业增加值同比增长8.9%。"
EXTRA = {"gallery.txt": "The art gallery opens at 11 am and its newest hall was finished in 2019."}

tokenize("前三季度工业增加值同比增长")  # load jieba's dictionary once, in the forkserver
# bm25s's progress bars would give each writer a multiprocessing lock (a named semaphore) that a
# SIGKILL leaks; a writer is single-threaded, a thread lock is all it needs.
tqdm.set_lock(threading.RLock())


@dataclass(frozen=True)
class Layout:
    """The documents folders and what each operation does."""

    old: Path  # the template index was built from it; remove takes library.md out
    new: Path  # build makes the index hold exactly it
    extra: Path  # add puts its one file in


@dataclass(frozen=True)
class Run:
    n: int
    op: str
    kind: str  # "step" or "random"
    step: str | None
    delay: float | None
    killed: bool
    exit_code: int | None
    state: str  # "before", "after", "broken"
    recovered: bool
    seconds: float
    problem: str = ""


def context() -> multiprocessing.context.BaseContext:
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["__main__"])
    return ctx


def writer(op: str, layout: Layout, index: str, step: str | None) -> None:
    """The operation ``op`` on ``index``; with ``step``, SIGKILL itself at that step."""
    store.fault_hook = kill_at(step) if step else None
    operate(op, layout, Path(index))


def operate(op: str, layout: Layout, index: Path) -> None:
    if op == "build":
        IndexWriter(index, model=MODEL).sync([layout.new])
    elif op == "add":
        IndexWriter(index, model=MODEL).add([layout.extra / name for name in EXTRA])
    elif op == "remove":
        IndexWriter(index).remove([layout.old / "library.md"])
    else:
        raise ValueError(op)


def fill(folder: Path, docs: dict[str, str]) -> None:
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    for name, text in docs.items():
        (folder / name).write_text(text, encoding="utf-8")


def fingerprint(index: Path) -> str:
    """What a fresh load answers: search hits and answers for fixed questions, and the sources."""
    qa = rag.load(index)
    out: list[object] = []
    for q in QUERIES:
        out.append([(h.source, h.start, h.end, round(h.score, 5)) for h in qa.search(q, k=3)])
        ans = qa.ask(q)
        out.append([ans.found, ans.span, ans.text])
    out.append(sorted(qa.sources()))
    return json.dumps(out, ensure_ascii=False)


def folder_digest(folders: list[Path]) -> dict[str, str]:
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest()
            for f in folders for p in sorted(f.rglob("*")) if p.is_file()}


def run_writer(ctx: multiprocessing.context.BaseContext, op: str, layout: Layout, index: Path, *,
               step: str | None = None, kill_after: float | None = None) -> int | None:
    proc = ctx.Process(target=writer, args=(op, layout, str(index), step))  # type: ignore[attr-defined]
    proc.start()
    if kill_after is not None:
        proc.join(kill_after)
        if proc.is_alive():
            os.kill(proc.pid, signal.SIGKILL)
    proc.join(120)
    if proc.is_alive():
        os.kill(proc.pid, signal.SIGKILL)
        proc.join()
        raise RuntimeError(f"the {op} writer on {index} hung")
    return proc.exitcode


def check(index: Path, before: str, after: str) -> tuple[str, str]:
    try:
        got = fingerprint(index)
    except Exception as exc:  # noqa: BLE001 - any failure to load or answer is a broken index
        return "broken", f"{exc.__class__.__name__}: {exc}"
    if got == before:
        return "before", ""
    if got == after:
        return "after", ""
    return "broken", "answers neither like the index before nor like the index after"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=100, help="writers to kill with SIGKILL (default 100)")
    parser.add_argument("--seed", type=int, default=20240505)
    parser.add_argument("--work", type=Path, default=None, help="working folder (default: a temporary one, removed)")
    parser.add_argument("--json", type=Path, default=Path(__file__).resolve().parent / "results" / "bench_faults.json",
                        help="where to write the results (default benchmarks/results/bench_faults.json)")
    args = parser.parse_args(argv)
    work = args.work or Path(tempfile.mkdtemp(prefix="bench-faults-"))
    t_start = time.perf_counter()
    try:
        result = bench(work, args.runs, args.seed)
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    result["seconds"] = round(time.perf_counter() - t_start, 1)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    s = result["summary"]
    print(f"{s['killed']} writers killed with SIGKILL ({s['runs']} runs: {s['by_op']}), {result['seconds']}s in all; "
          f"broken indexes: {s['broken']}, not recovered: {s['not_recovered']}, lost user files: {s['lost_user_files']}; "
          f"left the before state {s['states'].get('before', 0)}, the after state {s['states'].get('after', 0)}")
    print(f"wrote {args.json}")
    return 0 if s["broken"] == s["not_recovered"] == s["lost_user_files"] == 0 else 1


def bench(work: Path, target: int, seed: int) -> dict[str, object]:
    layout = Layout(work / "docs" / "old", work / "docs" / "new", work / "docs" / "extra")
    fill(layout.old, {"article.txt": "最初的版本。"})
    template = work / "template"
    IndexWriter(template, model=MODEL).sync([layout.old])
    fill(layout.old, BASE)
    IndexWriter(template, model=MODEL).sync([layout.old])  # two versions: the next publish prunes
    fill(layout.new, NEW)
    fill(layout.extra, EXTRA)
    before = fingerprint(template)
    after: dict[str, str] = {}
    for op in OPS:
        ref = work / f"reference-{op}"
        shutil.copytree(template, ref)
        operate(op, layout, ref)
        after[op] = fingerprint(ref)
        if after[op] == before:
            raise RuntimeError(f"{op}: the reference operation changed nothing")
    folders = [layout.old, layout.new, layout.extra]
    user_files = folder_digest(folders)

    ctx = context()
    writer_seconds: dict[str, float] = {}
    for op in OPS:  # the first probe also starts the forkserver: the median of three is kept
        durations = []
        for k in range(3):
            probe = work / f"probe-{op}-{k}"
            shutil.copytree(template, probe)
            t0 = time.perf_counter()
            if run_writer(ctx, op, layout, probe) != 0:
                raise RuntimeError(f"{op}: an uninterrupted writer failed")
            durations.append(time.perf_counter() - t0)
            shutil.rmtree(probe)
        writer_seconds[op] = sorted(durations)[1]

    rng = random.Random(seed)
    plan: list[tuple[str, str | None, float | None]] = [(op, s, None) for op in OPS for s in FAULT_STEPS]
    runs: list[Run] = []
    killed = 0
    lost = 0
    n = 0
    while killed < target and n < 4 * target + len(plan):
        if n < len(plan):
            op, step, delay = plan[n]
        else:
            op, step, delay = OPS[n % len(OPS)], None, rng.uniform(0.0, 1.1 * writer_seconds[OPS[n % len(OPS)]])
        index = work / "run"
        shutil.rmtree(index, ignore_errors=True)
        shutil.copytree(template, index)
        t0 = time.perf_counter()
        code = run_writer(ctx, op, layout, index, step=step, kill_after=delay)
        was_killed = code == -signal.SIGKILL
        problem = "" if code in (0, -signal.SIGKILL) else f"the writer exited with {code}"
        state, why = check(index, before, after[op])
        if why:
            problem = f"{problem}; {why}" if problem else why
        try:  # the next writer cleans up after the dead one and finishes the operation
            if not (op == "remove" and state == "after"):  # (a second remove has nothing to remove)
                operate(op, layout, index)
            recovered = fingerprint(index) == after[op]
        except Exception as exc:  # noqa: BLE001
            recovered = False
            problem = f"{problem}; recovery: {exc.__class__.__name__}: {exc}".lstrip("; ")
        if folder_digest(folders) != user_files:
            lost += 1
            problem = f"{problem}; user files changed".lstrip("; ")
            user_files = folder_digest(folders)
        runs.append(Run(n, op, "step" if step else "random", step, round(delay, 4) if delay is not None else None,
                        was_killed, code, state, recovered, round(time.perf_counter() - t0, 3), problem))
        killed += was_killed
        n += 1
    killed_runs = [r for r in runs if r.killed]
    summary = {
        "runs": len(runs),
        "killed": killed,
        "by_op": dict(Counter(r.op for r in killed_runs)),
        "step_kills": sum(r.kind == "step" for r in killed_runs),
        "random_kills": sum(r.kind == "random" for r in killed_runs),
        "finished_before_the_kill": sum(not r.killed for r in runs),
        "states": dict(Counter(r.state for r in runs)),
        "broken": sum(r.state == "broken" for r in runs),
        "not_recovered": sum(not r.recovered for r in runs),
        "lost_user_files": lost,
        "writer_seconds": {k: round(v, 3) for k, v in writer_seconds.items()},
    }
    return {
        "benchmark": "bench_faults",
        "summary": summary,
        "fault_steps": list(FAULT_STEPS),
        "problems": [asdict(r) for r in runs if r.problem],
        "runs": [asdict(r) for r in runs],
        "python": platform.python_version(),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
    }


if __name__ == "__main__":
    sys.exit(main())
