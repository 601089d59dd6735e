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

_LOCK = threading.RLock()
_SMALL_BATCH = 8


def threads_for(count: int) -> int:
    """Threads for encoding ``count`` texts: one for a question or a few, every core for a batch."""
    return 1 if count <= _SMALL_BATCH else max(1, os.cpu_count() or 1)


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
