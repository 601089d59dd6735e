"""The chat server under load, through ``gradio_client`` on 127.0.0.1.

Three measurements (each can be skipped):

* ``startup``: ``python app.py`` with the default model (no ``--model``) from a fresh start
  (no index: it builds one) and again with the index present: seconds until the HTTP server
  answers, and until the first answer through ``/ask``.
* ``latency``: each seed dev question asked once, one at a time: median / p95 / max seconds.
* ``load``: ``--users`` concurrent clients (default 8), each with its own ``Client``, asking
  questions in a loop for ``--duration`` seconds (default 60): requests, errors, p50 / p95 / max.

Only loopback addresses are used; every loop is bounded in time. Example::

    python -m benchmarks.bench_ui_load --json benchmarks/results/ui_load.json
    python -m benchmarks.bench_ui_load --skip-startup --model test-hash --duration 20
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import platform
import shutil
import statistics
import sys
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rag.ui.launcher import ServerProcess

ROOT = Path(__file__).resolve().parents[1]
SEED_QUESTIONS = ROOT.parent / "shared" / "data" / "seed_qa_dev.jsonl"
FALLBACK_QUESTIONS = (
    "前三季度规模以上工业增加值同比增长多少？",
    "工业投资连续几个月保持两位数增长？",
    "规模以上工业对宏观经济增长的贡献率是多少？",
    "有几个工业大省增速超过全国平均水平？",
    "我国累计培育孵化机构多少家？",
    "前三季度全国技术合同成交总额是多少？",
    "國家技術轉移區域中心有幾個？",
    "灵璧县属于哪个省？",
)


def load_questions(path: Path | None) -> list[str]:
    if path is not None and path.is_file():
        out = [json.loads(line)["question"] for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        if out:
            return out
    return list(FALLBACK_QUESTIONS)


def pct(values: Sequence[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    i = min(len(s) - 1, max(0, int(round(q / 100 * (len(s) - 1)))))
    return s[i]


def summary(values: Sequence[float]) -> dict[str, float]:
    return {
        "n": len(values),
        "median_s": round(statistics.median(values), 4) if values else float("nan"),
        "p95_s": round(pct(values, 95), 4),
        "max_s": round(max(values), 4) if values else float("nan"),
        "mean_s": round(statistics.fmean(values), 4) if values else float("nan"),
    }


def _check_loopback(url: str) -> None:
    host = urllib.parse.urlparse(url).hostname or ""
    if host != "localhost" and not ipaddress.ip_address(host).is_loopback:
        raise SystemExit(f"refusing to load-test {url}: only loopback addresses (127.0.0.0/8, ::1, localhost)")


def _client(url: str) -> Any:
    from gradio_client import Client

    return Client(url, verbose=False)


def _first_answer(url: str, timeout: float = 300.0) -> float:
    t0 = time.perf_counter()
    client = _client(url)
    client.predict(FALLBACK_QUESTIONS[0], api_name="/ask")
    return time.perf_counter() - t0


def measure_startup(work: Path, model: str | None) -> dict[str, Any]:
    """Fresh start (no index) and a later start (index present) of the real app."""
    docs = work / "docs"
    shutil.copytree(ROOT / "docs", docs)
    args = ["--docs", str(docs), "--index", str(work / "index"), "--uploads", str(work / "uploads")]
    if model:
        args += ["--model", model]
    out: dict[str, Any] = {}
    for label in ("fresh", "later"):
        t0 = time.perf_counter()
        srv = ServerProcess(args, log_path=work / f"startup_{label}.log", cwd=ROOT)
        try:
            srv.start(timeout=600)
            http_s = time.perf_counter() - t0
            first = _first_answer(srv.url)
            out[label] = {"http_ready_s": round(http_s, 2), "first_answer_s": round(time.perf_counter() - t0, 2),
                          "first_answer_after_http_s": round(first, 2)}
        finally:
            srv.stop()
        print(f"startup {label}: HTTP answers after {out[label]['http_ready_s']}s, "
              f"first answer after {out[label]['first_answer_s']}s", flush=True)
    return out


def measure_latency(url: str, questions: Sequence[str]) -> dict[str, Any]:
    client = _client(url)
    client.predict(questions[0], api_name="/ask")  # connection warm-up, not counted
    times: list[float] = []
    found = 0
    for q in questions:
        t0 = time.perf_counter()
        ans = client.predict(q, api_name="/ask")
        times.append(time.perf_counter() - t0)
        found += bool(ans["found"])
    result = summary(times) | {"found": found}
    print(f"latency: {len(times)} questions, median {result['median_s']}s, p95 {result['p95_s']}s, "
          f"max {result['max_s']}s ({found} answered)", flush=True)
    return result


def measure_load(url: str, questions: Sequence[str], users: int, duration: float) -> dict[str, Any]:
    times: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    start = threading.Barrier(users + 1)
    deadline: list[float] = [0.0]

    def user(i: int) -> None:
        try:
            client = _client(url)
        except Exception as exc:  # noqa: BLE001 - counted as an error
            with lock:
                errors.append(f"user {i}: connect: {exc}")
            start.wait()
            return
        start.wait()
        n = i
        while time.perf_counter() < deadline[0]:
            q = questions[n % len(questions)]
            n += 1
            t0 = time.perf_counter()
            try:
                ans = client.predict(q, api_name="/ask")
                ok = isinstance(ans, dict) and "found" in ans
            except Exception as exc:  # noqa: BLE001 - counted as an error
                with lock:
                    errors.append(f"user {i}: {exc.__class__.__name__}: {exc}")
                continue
            dt = time.perf_counter() - t0
            with lock:
                times.append(dt)
                if not ok:
                    errors.append(f"user {i}: malformed answer")

    threads = [threading.Thread(target=user, args=(i,), daemon=True) for i in range(users)]
    for t in threads:
        t.start()
    start.wait()
    t_start = time.perf_counter()
    deadline[0] = t_start + duration
    for t in threads:
        t.join(timeout=duration + 120)
    wall = time.perf_counter() - t_start
    result = summary(times) | {"users": users, "duration_s": round(wall, 1), "requests": len(times),
                               "errors": len(errors), "error_samples": errors[:5],
                               "throughput_rps": round(len(times) / wall, 2) if wall else 0.0}
    print(f"load: {users} users for {wall:.0f}s: {len(times)} answers, {len(errors)} errors, "
          f"p50 {result['median_s']}s, p95 {result['p95_s']}s, max {result['max_s']}s, "
          f"{result['throughput_rps']} answers/s", flush=True)
    return result


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--url", help="an already running server (loopback only); default: start one")
    p.add_argument("--model", default=None, help="model for the index (default: the app's default model)")
    p.add_argument("--questions", type=Path, default=SEED_QUESTIONS, help="JSON-lines questions (seed dev set)")
    p.add_argument("--users", type=int, default=8)
    p.add_argument("--duration", type=float, default=60.0)
    p.add_argument("--skip-startup", action="store_true")
    p.add_argument("--skip-load", action="store_true")
    p.add_argument("--json", type=Path, help="write the results here")
    args = p.parse_args(argv)
    if not 1 <= args.users <= 64 or not 1 <= args.duration <= 600:
        raise SystemExit("--users must be 1-64 and --duration 1-600 seconds")
    questions = load_questions(args.questions)
    results: dict[str, Any] = {"machine": {"python": platform.python_version(), "platform": platform.platform()},
                               "model": args.model or "default", "questions": len(questions)}
    work = Path(tempfile.mkdtemp(prefix="bench-ui-"))
    try:
        if not args.skip_startup and not args.url:
            results["startup"] = measure_startup(work / "startup", args.model)
        if args.url:
            _check_loopback(args.url)
            results["latency"] = measure_latency(args.url, questions)
            if not args.skip_load:
                results["load"] = measure_load(args.url, questions, args.users, args.duration)
        else:
            docs = work / "docs"
            shutil.copytree(ROOT / "docs", docs)
            srv_args = ["--docs", str(docs), "--index", str(work / "index"), "--uploads", str(work / "uploads")]
            if args.model:
                srv_args += ["--model", args.model]
            with ServerProcess(srv_args, log_path=work / "server.log", cwd=ROOT) as srv:
                _first_answer(srv.url)  # the model is loaded before measuring
                results["latency"] = measure_latency(srv.url, questions)
                if not args.skip_load:
                    results["load"] = measure_load(srv.url, questions, args.users, args.duration)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, ensure_ascii=False, indent=2), encoding="utf-8")
        print(f"results: {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
