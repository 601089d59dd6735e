"""Documents taken out of an index on purpose, so that syncing with their folder does not
add them back: the record ``<index>/excluded.json``.

A user who removes a file of a watched folder (the chat's documents folder) from the index
does not want the file deleted, nor indexed again by the next :meth:`rag.IndexWriter.sync`.
The record lists such sources (the index's source names); :meth:`~rag.IndexWriter.sync`
skips the files it names and drops them from the index if they are still there. Restoring a
source removes it from the record. Of the writer's methods only ``sync`` reads the record
(``add`` indexes what it is given); the chat's start-up check reads it too.

The record lives at the index folder's root, beside ``CURRENT``, and is written only while
the writer lock is held, which first makes sure the folder is rag's
(:func:`rag.index.ownership.claim_index_dir`). It is replaced atomically (a temporary sibling
renamed over it, :func:`rag.fs.atomic_write_text`), never opened or written through a symbolic
link (such a record is refused), and deleted when it lists nothing. An unreadable record
raises :class:`ExclusionRecordError`, naming the file, before anything is written: the index
stays as it was.

Layout (JSON, UTF-8)::

    {"format": 1, "excluded": [{"source": "docs/a.txt", "sha256": "…", "excluded_at": "2025-01-31T12:00:00Z"}]}
"""

from __future__ import annotations

import json
import os
import re
import stat
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from rag import fs
from rag.errors import RagError
from rag.index.lock import writer_lock
from rag.index.ownership import EXCLUSIONS, write_error

RECORD = EXCLUSIONS
FORMAT = 1
MAX_RECORD_BYTES = 8 * 1024 * 1024
"""A record larger than this is refused as corrupt (a record of even 100,000 sources is far smaller)."""

# the temporaries :func:`rag.fs.atomic_write_text` makes for the record; a crash can leave one
_RECORD_TEMP = re.compile(r"\.excluded\.json\.[0-9a-f]{8}\.tmp")


class ExclusionRecordError(RagError):
    """The record of excluded documents cannot be read or written (corrupt, a link, not a
    plain file). Nothing was changed: neither the index nor the record."""

    def __init__(self, path: str | os.PathLike[str], reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{path}: {reason}")


@dataclass(frozen=True)
class Exclusion:
    """A source taken out of the index: its name, the sha256 of its content then (``""`` when
    unknown) and when (UTC, ISO 8601)."""

    source: str
    sha256: str = ""
    excluded_at: str = ""


def record_path(index_dir: str | os.PathLike[str]) -> Path:
    return Path(index_dir) / RECORD


def _corrupt(path: Path, reason: str) -> ExclusionRecordError:
    return ExclusionRecordError(
        path,
        f"the record of excluded documents is unusable ({reason}); the index was not changed. "
        "Fix the file, or delete it to index every file of the folder again at the next sync",
    )


def _read_bytes(path: Path) -> bytes | None:
    """The record's bytes, never through a link; None when there is none."""
    try:
        fd = os.open(path, os.O_RDONLY | fs.O_NOFOLLOW | fs.O_CLOEXEC | fs.O_NONBLOCK)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:
        st = fs.lstat(path)
        if st is not None and stat.S_ISLNK(st.st_mode):
            raise _corrupt(path, "it is a symbolic link, which rag never reads or writes through") from None
        raise _corrupt(path, exc.strerror or str(exc)) from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise _corrupt(path, "not a plain file")
        if st.st_size > MAX_RECORD_BYTES:
            raise _corrupt(path, f"{st.st_size} bytes, over the {MAX_RECORD_BYTES} byte limit")
        chunks: list[bytes] = []
        while True:
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks)
    except OSError as exc:
        raise _corrupt(path, exc.strerror or str(exc)) from None
    finally:
        os.close(fd)


def _parse(path: Path, data: bytes) -> tuple[Exclusion, ...]:
    try:
        obj = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise _corrupt(path, "not UTF-8 text") from None
    except ValueError as exc:
        raise _corrupt(path, f"not valid JSON: {exc}") from None
    if not isinstance(obj, dict) or not isinstance(obj.get("excluded"), list):
        raise _corrupt(path, 'expected an object {"format": 1, "excluded": [...]}')
    if obj.get("format") != FORMAT:
        raise _corrupt(path, f"format {obj.get('format')!r}, this rag reads format {FORMAT}")
    out: list[Exclusion] = []
    seen: set[str] = set()
    for i, item in enumerate(obj["excluded"]):
        if not isinstance(item, dict) or not isinstance(item.get("source"), str) or not item["source"]:
            raise _corrupt(path, f"entry {i} has no source name")
        sha, when = item.get("sha256", ""), item.get("excluded_at", "")
        if not isinstance(sha, str) or not isinstance(when, str):
            raise _corrupt(path, f"entry {i} ({item['source']}): sha256 and excluded_at must be text")
        if item["source"] not in seen:
            seen.add(item["source"])
            out.append(Exclusion(item["source"], sha, when))
    return tuple(out)


def read_exclusions(index_dir: str | os.PathLike[str]) -> tuple[Exclusion, ...]:
    """The excluded sources of the index at ``index_dir``, in the order they were excluded
    (none when there is no record). Raises :class:`ExclusionRecordError` for a record that
    is not one (corrupt JSON, another layout, a link, not a plain file)."""
    path = record_path(index_dir)
    data = _read_bytes(path)
    return () if data is None else _parse(path, data)


def excluded_sources(index_dir: str | os.PathLike[str]) -> frozenset[str]:
    """The source names :func:`read_exclusions` lists."""
    return frozenset(e.source for e in read_exclusions(index_dir))


def _write(index_dir: Path, items: Sequence[Exclusion]) -> None:
    """Replace the record with ``items`` (delete it when empty). Call with the writer lock held."""
    path = record_path(index_dir)
    st = fs.lstat(path)
    if st is not None and not stat.S_ISREG(st.st_mode):
        kind = "a symbolic link" if stat.S_ISLNK(st.st_mode) else "not a plain file"
        raise ExclusionRecordError(path, f"the record of excluded documents is {kind}; refused (rag never writes "
                                         "through a link): remove it")
    for name in os.listdir(index_dir):  # what a writer killed while writing the record left
        if _RECORD_TEMP.fullmatch(name) and fs.is_plain_file(index_dir / name):
            try:
                (index_dir / name).unlink()
            except OSError:
                pass
    try:
        if not items:
            if st is not None:
                path.unlink()
                fs.fsync_dir(index_dir)
            return
        body = {"format": FORMAT, "excluded": [
            {"source": e.source, "sha256": e.sha256, "excluded_at": e.excluded_at} for e in items]}
        fs.atomic_write_text(path, json.dumps(body, ensure_ascii=False, indent=1) + "\n")
    except OSError as exc:
        raise write_error(index_dir, exc) from exc


def exclude(index_dir: str | os.PathLike[str], items: Iterable[Exclusion], *,
            lock_timeout: float | None = None) -> tuple[Exclusion, ...]:
    """Add ``items`` to the record (a source already there keeps its entry; an item without
    ``excluded_at`` is stamped now), under the index's writer lock. Returns the record as
    written. It changes only the record: the caller removes the sources from the index
    (:meth:`rag.IndexWriter.remove`), or the next sync does."""
    folder = Path(index_dir)
    wanted = list(items)
    with writer_lock(folder, lock_timeout):
        current = list(read_exclusions(folder))
        known = {e.source for e in current}
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        for e in wanted:
            if e.source and e.source not in known:
                known.add(e.source)
                current.append(Exclusion(e.source, e.sha256, e.excluded_at or now))
        _write(folder, current)
        return tuple(current)


def restore(index_dir: str | os.PathLike[str], sources: Iterable[str], *,
            lock_timeout: float | None = None) -> tuple[Exclusion, ...]:
    """Remove ``sources`` from the record, under the index's writer lock; returns what is
    left. The caller adds the files back (:meth:`rag.IndexWriter.add`), or the next sync does."""
    folder = Path(index_dir)
    gone = set(sources)
    if not record_path(folder).exists() and not os.path.islink(record_path(folder)):
        return ()
    with writer_lock(folder, lock_timeout):
        current = read_exclusions(folder)
        kept = [e for e in current if e.source not in gone]
        if len(kept) != len(current):
            _write(folder, kept)
        return tuple(kept)


__all__ = ["Exclusion", "ExclusionRecordError", "MAX_RECORD_BYTES", "RECORD", "exclude", "excluded_sources",
           "read_exclusions", "record_path", "restore"]
