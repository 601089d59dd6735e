"""Writer processes for the crash-safety tests (``test_faults.py``).

They are started through a forkserver that has imported this module, so each one begins as a
fork of a small, single-threaded, already warmed-up server: fast (a fraction of a second) and
safe. Forking the pytest process itself is not: by then it holds thread pools (torch, FAISS's
OpenMP, the Gradio tests' servers) whose locks a forked child can inherit mid-use.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.context
import threading
import time
from pathlib import Path

from tqdm import tqdm

from rag.index.lexical import tokenize
from rag.index import store
from rag.index.store import FAULT_STEPS, kill_at, writer_lock
from rag.index.writer import IndexWriter

tokenize("前三季度工业增加值同比增长")  # load jieba's dictionary once, in the server
# bm25s's progress bars would give each writer a multiprocessing lock (a named semaphore) that a
# SIGKILL leaks; a writer is single-threaded, a thread lock is all it needs.
tqdm.set_lock(threading.RLock())


def context() -> multiprocessing.context.BaseContext:
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload([__name__])
    return ctx


def write_index(corpus: str, index: str, step: str | None, full: bool) -> None:
    """Publish ``corpus`` into ``index``; with ``step``, SIGKILL itself at that step."""
    store.fault_hook = kill_at(step) if step else None
    IndexWriter(index, model="test-hash").sync([corpus], full=full)


def hold_lock(index: str, ready: str, seconds: float) -> None:
    """Hold ``index``'s writer lock for ``seconds``, writing ``ready`` once it is held."""
    with writer_lock(Path(index)):
        Path(ready).write_text("yes")
        time.sleep(seconds)


def change_index(op: str, target: str, index: str, step: str | None) -> None:
    """``add`` the file ``target`` to ``index`` or ``remove`` the source ``target`` from it;
    with ``step``, SIGKILL itself at that step."""
    store.fault_hook = kill_at(step) if step else None
    writer = IndexWriter(index, model="test-hash")
    if op == "add":
        writer.add([target])
    else:
        writer.remove([target])
