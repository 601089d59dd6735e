"""The writer lock of an index folder (``index/.lock``): writers are serialised across
processes and threads; readers never lock. The lock file is never opened through a symbolic
link or written when it is a hard link (:class:`UnsafeIndexPathError`)."""

from __future__ import annotations

import errno
import os
import socket
import stat
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from rag import fs
from rag.errors import IndexLockedError, UnsafeIndexPathError
from rag.index.ownership import LOCK, claim_index_dir, write_error

DEFAULT_LOCK_TIMEOUT = 600.0


@contextmanager
def writer_lock(index_dir: Path, timeout: float | None = None) -> Iterator[None]:
    """Hold the index's writer lock (``index/.lock``), waiting up to ``timeout`` seconds.

    Serialises writers across processes and threads (each acquisition opens its own file
    description). Raises :class:`IndexLockedError` naming the holder when the wait runs out.
    """
    timeout = DEFAULT_LOCK_TIMEOUT if timeout is None else timeout
    path = index_dir / LOCK
    claim_index_dir(index_dir)  # before anything is written: refuses someone else's folder
    if not fs.LOCKS_AVAILABLE:  # pragma: no cover
        yield
        return
    fd = _open_lock(path, index_dir)
    try:
        deadline = time.monotonic() + timeout
        while not fs.try_lock(fd):
            if time.monotonic() >= deadline:
                holder = _lock_holder(fd)
                raise IndexLockedError(
                    f"{path}: another process is writing this index{holder}; gave up after waiting "
                    f"{timeout:g}s (try again when it has finished)"
                ) from None
            time.sleep(0.05)
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()} since {time.strftime('%Y-%m-%dT%H:%M:%S')}\n".encode(), 0)
        except OSError:
            pass
        try:
            yield
        finally:
            fs.unlock(fd)
    finally:
        os.close(fd)


def _open_lock(path: Path, index_dir: Path) -> int:
    """Open (or create) the lock file for reading and writing: never through a symbolic link
    (``O_NOFOLLOW``, no ``O_TRUNC``), and never when it is a hard link to another file, or not
    a plain file (a FIFO, a device): those raise :class:`UnsafeIndexPathError`."""
    st = fs.lstat(path)
    if st is not None and not stat.S_ISREG(st.st_mode):
        kind = "a symbolic link" if stat.S_ISLNK(st.st_mode) else "not a plain file"
        raise UnsafeIndexPathError(
            f"{path}: the writer lock is {kind}; refused (rag never opens, truncates or writes its lock "
            "through a link): remove it"
        )
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | fs.O_NOFOLLOW | fs.O_CLOEXEC | fs.O_NONBLOCK, 0o644)
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # became a link since the check
            raise UnsafeIndexPathError(f"{path}: the writer lock is a symbolic link; refused: remove it") from None
        raise write_error(index_dir, exc) from exc  # a read-only folder or file system, no permission, a full disk
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1:
        os.close(fd)
        what = f"a hard link ({st.st_nlink} names for one file)" if stat.S_ISREG(st.st_mode) else "not a plain file"
        raise UnsafeIndexPathError(
            f"{path}: the writer lock is {what}; refused (writing it would change the other file): remove it"
        )
    return fd


def _lock_holder(fd: int) -> str:
    """Who holds the lock, as it wrote into the lock file (read from the open file, not the name)."""
    try:
        text = os.pread(fd, 512, 0).decode("utf-8", "replace").strip()
    except OSError:
        return ""
    return f" ({text})" if text else ""
