"""File-system primitives for crash-safe writing: fsync of files and folders, synced and atomic
writes, files created without following a link, and the advisory (``flock``) lock.

Shared by the model folder (:mod:`rag.encoder.model_folder`), the weights' verification record
(:mod:`rag.encoder.weights`) and the index store (:mod:`rag.index.store`). These functions hold
no policy of their callers' (which names are rag's, what a lock refuses): they raise the
``OSError`` the system raises, which each caller turns into its own typed error, except where a
function says it is best effort.
"""

from __future__ import annotations

import os
import stat
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

try:  # POSIX only; elsewhere nothing is locked
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None  # type: ignore[assignment]

#: Whether this platform has advisory locks; without them writers are not serialised.
LOCKS_AVAILABLE = fcntl is not None
#: ``os.open`` flags, 0 where the platform lacks them.
O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
O_NONBLOCK = getattr(os, "O_NONBLOCK", 0)


# ---------------------------------------------------------------- fsync


def sync(fh: IO[Any]) -> None:
    """Flush an open file and fsync it."""
    fh.flush()
    os.fsync(fh.fileno())


def fsync_file(path: str | os.PathLike[str]) -> None:
    """fsync the file ``path`` (opened read-only)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path: str | os.PathLike[str]) -> None:
    """fsync the folder ``path``, so that names created, renamed or removed in it are durable.
    Best effort: where a folder cannot be opened or synced (some platforms), nothing happens."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


# ---------------------------------------------------------------- writing


def write_synced(path: str | os.PathLike[str], data: bytes) -> None:
    """Create (or truncate) ``path``, write ``data`` and fsync it. Not atomic: for files inside
    a folder that is published as a whole (by :func:`replace_synced`)."""
    with open(path, "wb") as fh:
        fh.write(data)
        sync(fh)


def replace_synced(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
    """Rename ``src`` to ``dst`` atomically (replacing it), then fsync ``dst``'s folder."""
    os.replace(src, dst)
    fsync_dir(Path(dst).parent)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes, *, durable: bool = True) -> None:
    """Replace the content of ``path`` with ``data`` atomically (see :func:`atomic_write_text`)."""
    _atomic_write(Path(path), "wb", data, None, durable)


def atomic_write_text(path: str | os.PathLike[str], text: str, *, encoding: str = "utf-8",
                      durable: bool = True) -> None:
    """Replace the content of ``path`` with ``text`` atomically: it is written to a temporary
    sibling ``.<name>.<8 hex>.tmp``, then renamed over ``path``, so a reader sees the old content
    or the new one, never a part. ``durable``: also fsync the file before the rename and the
    folder after it. When anything fails the temporary is removed and the error raised."""
    _atomic_write(Path(path), "w", text, encoding, durable)


def _atomic_write(path: Path, mode: str, data: str | bytes, encoding: str | None, durable: bool) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(tmp, mode, encoding=encoding) as fh:
            fh.write(data)
            if durable:
                sync(fh)
        os.replace(tmp, path)
    except BaseException:
        try:
            tmp.unlink()
        except OSError:
            pass
        raise
    if durable:
        fsync_dir(path.parent)


def create_file(path: str | os.PathLike[str], text: str) -> None:
    """Create ``path`` holding ``text``, fsynced. It must not exist: an existing name (a symbolic
    link included) raises ``FileExistsError``, so nothing is ever written through a link."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o644)
    try:
        data = text.encode("utf-8")
        while data:
            data = data[os.write(fd, data):]
        os.fsync(fd)
    finally:
        os.close(fd)


# ---------------------------------------------------------------- what a name is


def lstat(path: str | os.PathLike[str]) -> os.stat_result | None:
    """``os.lstat(path)`` (a link itself, not its target), or None when it cannot be read."""
    try:
        return os.lstat(path)
    except OSError:
        return None


def is_plain_file(path: str | os.PathLike[str]) -> bool:
    """A regular file, not a symbolic link."""
    st = lstat(path)
    return st is not None and stat.S_ISREG(st.st_mode)


def is_real_dir(path: str | os.PathLike[str]) -> bool:
    """A folder, not a symbolic link to one."""
    st = lstat(path)
    return st is not None and stat.S_ISDIR(st.st_mode)


# ---------------------------------------------------------------- advisory locks


def try_lock(fd: int) -> bool:
    """Take an exclusive advisory lock on the open file ``fd`` without waiting; False when
    another open file description holds it. Only where :data:`LOCKS_AVAILABLE`."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def lock(fd: int) -> None:
    """Take an exclusive advisory lock on the open file ``fd``, waiting as long as it takes."""
    fcntl.flock(fd, fcntl.LOCK_EX)


def unlock(fd: int) -> None:
    """Release the advisory lock on ``fd``."""
    fcntl.flock(fd, fcntl.LOCK_UN)


@contextmanager
def exclusive_lock(path: str | os.PathLike[str]) -> Iterator[None]:
    """Hold an exclusive advisory lock on the file ``path`` (created when missing), waiting as
    long as it takes. Without advisory locks (non-POSIX) this holds nothing: the caller relies
    on its atomic renames alone."""
    if not LOCKS_AVAILABLE:  # pragma: no cover
        yield
        return
    with open(path, "a+b") as fh:
        lock(fh.fileno())
        try:
            yield
        finally:
            unlock(fh.fileno())
