"""Run a block with a given number of torch threads (a process-wide setting), under one lock.

A question is a tiny input: one thread answers it fastest, and with several threads every
operator waits at a barrier for a sibling that a busy machine has descheduled (measured: 85 ms
with one thread against 2 s with two, on a loaded 2-core machine); batches of passages use all
cores. Because the setting is global, blocks that change it run one at a time: concurrent
requests would otherwise race and leave the wrong count behind.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from rag import environment

_LOCK = threading.RLock()
_SMALL_BATCH = 8

#: oneDNN's cache of compiled kernels, in entries (its default: 1,024). Each new input shape
#: compiles a kernel per Linear shape, and a build meets thousands of shapes (rows x tokens of
#: every batch): at the default the cache grew by 230 MiB over 1,536 chunks and kept growing
#: (``benchmarks/bench_batching.py``'s chunks, 1 thread), 77 MiB at 32 entries, at the same
#: chunks/s; 107 MiB and levelling off at 128. 128 keeps ~40 recent shapes, as many as question lengths vary, so questions still
#: find theirs compiled. Read by oneDNN once, when it first compiles, so it is set when this
#: module loads, before the encoders; a value the user set in the environment is kept.
KERNEL_CACHE_ENTRIES = 128
environment.set_kernel_cache_default(KERNEL_CACHE_ENTRIES)


def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity, e.g. ``taskset`` or a container's
    cpuset), not every core the machine has."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not Linux
        return max(1, os.cpu_count() or 1)


def threads_for(count: int) -> int:
    """Threads for encoding ``count`` texts: one for a question or a few, every usable core for a
    batch."""
    return 1 if count <= _SMALL_BATCH else usable_cores()


@contextmanager
def torch_threads(count: int) -> Iterator[None]:
    import torch

    with _LOCK:
        before = torch.get_num_threads()
        if count != before:
            torch.set_num_threads(count)
        try:
            yield
        finally:
            if count != before:
                torch.set_num_threads(before)
