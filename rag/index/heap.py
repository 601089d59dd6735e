"""Giving memory a build no longer uses back to the system between its stages.

Two kinds, both measured with ``benchmarks/bench_scale.py`` and ``/proc/self/smaps``:

* **The C heap's free memory.** Encoding passages allocates and frees activation tensors of many
  shapes, tokenising builds many small arrays; glibc keeps the freed memory in its heap, so a
  build held it through every later stage (at 100k chunks ~150 MiB after tokenising, ~300 MiB
  after embedding, above what live objects needed). ``malloc_trim`` returns it.
* **The model's weight pages.** sentence-transformers maps ``model.safetensors`` into memory;
  embedding touches most of the 366 MiB word-embedding matrix, and those clean file pages stay
  in the build's resident set through tokenising, BM25 and writing, where the model is idle.
  ``madvise(MADV_PAGEOUT)`` drops them; the next encode reads them back from the page cache.
  Pages a process changed are never dropped (the kernel pages out only what it can read back).
"""

from __future__ import annotations

import ctypes
import ctypes.util
from functools import lru_cache

#: ``madvise`` advice: reclaim these pages now (Linux 5.4 on; older kernels answer EINVAL)
MADV_PAGEOUT = 21
#: weight files whose mappings :func:`release_model_pages` drops
WEIGHT_SUFFIXES = (".safetensors",)


@lru_cache(maxsize=1)
def _libc():  # type: ignore[no-untyped-def]
    name = ctypes.util.find_library("c")
    if not name:
        return None
    try:
        return ctypes.CDLL(name, use_errno=True)
    except OSError:
        return None


def release_freed_memory() -> bool:
    """Return the heap's free pages to the system; False where the C library has no
    ``malloc_trim`` (not glibc: the call is then a no-op)."""
    libc = _libc()
    trim = getattr(libc, "malloc_trim", None) if libc is not None else None
    if trim is None:
        return False
    trim(0)
    return True


def weight_mappings(maps: str) -> list[tuple[int, int]]:
    """(start, end) of the mappings of weight files in ``/proc/self/maps`` text (safetensors maps
    them private and writable: pages written would be anonymous, and ``MADV_PAGEOUT`` keeps
    those without swap, so only the file's clean pages go)."""
    out = []
    for line in maps.splitlines():
        parts = line.split(maxsplit=5)
        if len(parts) < 6 or not parts[5].strip().endswith(WEIGHT_SUFFIXES):
            continue
        start, end = (int(a, 16) for a in parts[0].split("-"))
        out.append((start, end))
    return out


def release_model_pages() -> int:
    """Drop the resident pages of this process's weight-file mappings (the model stays loaded:
    they are read back from the page cache when it runs again). Returns the bytes advised, 0
    where the platform cannot (no ``/proc``, no ``madvise``, an older kernel)."""
    libc = _libc()
    madvise = getattr(libc, "madvise", None) if libc is not None else None
    if madvise is None:
        return 0
    try:
        with open("/proc/self/maps", encoding="utf-8") as fh:
            maps = fh.read()
    except OSError:
        return 0
    madvise.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)
    done = 0
    for start, end in weight_mappings(maps):
        if madvise(ctypes.c_void_p(start), ctypes.c_size_t(end - start), MADV_PAGEOUT) == 0:
            done += end - start
    return done
