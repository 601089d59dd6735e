"""Writer processes for the PostgreSQL tests (``test_pg_store.py``), started through a
forkserver that has imported this module (as ``fault_workers`` does for the folder store)."""

from __future__ import annotations

import multiprocessing
import multiprocessing.context
import threading
import time
from pathlib import Path

from tqdm import tqdm

from rag.index import store
from rag.index.lexical import tokenize
from rag.index.pg_store import PgStore
from rag.index.store import kill_at
from rag.index.writer import IndexWriter

tokenize("前三季度工业增加值同比增长")  # load jieba's dictionary once, in the server
tqdm.set_lock(threading.RLock())  # no named semaphore for a SIGKILL to leak


def context() -> multiprocessing.context.BaseContext:
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload([__name__])
    return ctx


def write_index(corpus: str, url: str, step: str | None, full: bool, log: str | None) -> None:
    """Sync ``url`` with ``corpus``; with ``step``, SIGKILL itself there. With ``log``, every
    fault point reached is appended to that file with its time (the parent times its kill)."""
    killer = kill_at(step) if step else None

    def hook(reached: str) -> None:
        if log is not None:
            with open(log, "a", encoding="utf-8") as f:
                f.write(f"{reached} {time.monotonic():.6f}\n")
        if killer is not None:
            killer(reached)

    store.fault_hook = hook
    IndexWriter(url, model="test-hash").sync([corpus], full=full)


def hold_lock(url: str, ready: str, seconds: float) -> None:
    """Hold the writer lock of the index at ``url`` for ``seconds``, writing ``ready`` once held."""
    with PgStore(url).lock():
        Path(ready).write_text("yes")
        time.sleep(seconds)
