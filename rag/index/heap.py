"""Giving memory a build no longer uses back to the system between its stages.

Two kinds, both measured with ``benchmarks/bench_scale.py`` and ``/proc/self/smaps``:

* **The C heap's free memory.** Encoding passages allocates and frees activation tensors of many
  shapes, tokenising builds many small arrays; glibc keeps the freed memory in its heap, so a
  build held it through every later stage (at 100k chunks ~150 MiB after tokenising, ~300 MiB
  after embedding, above what live objects needed). ``malloc_trim`` returns it.
* **The model's weight pages.** sentence-transformers maps ``model.safetensors`` into memory;
  embedding touches most of the 366 MiB word-embedding matrix, and those clean file pages stay
  in the build's resident set (at 100k chunks 550 MiB of file pages mid-embedding). A mapping
  no page of which this process changed is unmapped with ``madvise(MADV_DONTNEED)``: the pages
  stay in the page cache, shared with any other process that maps the file (a training run, the
  app), and the next lookup maps them back (a minor fault, no read). ``MADV_PAGEOUT``, used
  before, evicts them instead and does nothing to pages another process maps too. A mapping
  with changed (copy-on-write) pages gets ``MADV_PAGEOUT``, which keeps those: ``DONTNEED``
  would throw the changes away. The build calls this between embedding batches too, so the
  file pages stay at what one batch touches.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from functools import lru_cache

#: ``madvise`` advice: unmap these pages; a clean file page is mapped back from the page cache
MADV_DONTNEED = 4
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


def changed_pages(smaps: str) -> dict[int, int]:
    """Bytes of copy-on-write (changed) pages per mapping start, from ``/proc/self/smaps`` text."""
    out: dict[int, int] = {}
    start: int | None = None
    for line in smaps.splitlines():
        head = line.split(maxsplit=1)[0] if line.strip() else ""
        if "-" in head and not head.endswith(":"):
            try:
                start = int(head.split("-")[0], 16)
            except ValueError:
                start = None
        elif head == "Anonymous:" and start is not None:
            out[start] = int(line.split()[1]) * 1024
    return out


def release_model_pages() -> int:
    """Unmap the resident pages of this process's weight-file mappings (the model stays loaded:
    they are mapped back from the page cache when it runs again). Returns the bytes advised, 0
    where the platform cannot (no ``/proc``, no ``madvise``, an older kernel)."""
    libc = _libc()
    madvise = getattr(libc, "madvise", None) if libc is not None else None
    if madvise is None:
        return 0
    try:
        with open("/proc/self/maps", encoding="utf-8") as fh:
            maps = fh.read()
        mappings = weight_mappings(maps)
        if not mappings:
            return 0
        with open("/proc/self/smaps", encoding="utf-8") as fh:
            changed = changed_pages(fh.read())
    except OSError:
        return 0
    madvise.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)
    done = 0
    for start, end in mappings:
        # an unknown count is treated as changed: only PAGEOUT, which keeps changed pages
        advice = MADV_DONTNEED if changed.get(start, 1) == 0 else MADV_PAGEOUT
        if madvise(ctypes.c_void_p(start), ctypes.c_size_t(end - start), advice) == 0:
            done += end - start
    return done
