"""The index on disk: FAISS vectors, chunk and document stores, BM25, and a manifest.

Layout of an index folder::

    index/
      .rag-index           marker: written first when rag creates (or adopts) the folder
      CURRENT              name of the published version folder (swapped atomically)
      .lock                writers hold an exclusive flock on it (readers never lock)
      v-<seq>-<time>-<id>/ one complete version; the published one and the one before it are kept
        .rag-version       marker: the first file written into the folder (not in the manifest)
        manifest.json      written last: format, model, dimension, settings, counts, the
                           documents (sha256, duplicates), near-duplicates, the sha256 of
                           every other file here, library versions, and its own digest
        vectors.faiss      normalised vectors, inner-product index (row i is chunk i)
        chunks.jsonl       one chunk a line: id, source, start, end, text, visibility
        documents.jsonl    one cleaned document a line, with its cleaning report
        signatures.npy     MinHash signatures of the documents (near-duplicate detection)
        tokens.jsonl       BM25 terms of each chunk, so an update refits BM25 without re-tokenising
        bm25/              bm25s arrays (.npy, no pickle) and vocabulary (.json)

Publishing: a version is written in a ``.tmp-*`` folder (its marker first, every file fsynced,
the manifest last), the folder renamed to its final name, then ``CURRENT`` replaced atomically
and the parent folder synced. A reader therefore sees the old version or the new one, never a
mix. Loading verifies every file against the manifest's checksums; a corrupt published version
is refused, and the previous version is loaded instead when it is intact; when ``CURRENT`` is
missing, the newest intact version is loaded (``StoredIndex.warning`` says which, and why).

Ownership: rag deletes only what it provably wrote. A writer refuses a folder that is neither
new, empty (placeholder files such as a README aside), marked, nor an index that an earlier
rag wrote (one of its versions proves it), and so never writes into someone else's folder.
Inside an index, a folder is rag's when it carries the version marker, or, for indexes written
before markers existed, when it is named ``v-<6 digits>-<time>-<8 hex>``, its manifest verifies
and it holds nothing the manifest does not list. Writers are serialised by :func:`writer_lock`
and start by removing what a crashed writer left (:func:`tidy`): marked (or empty) ``.tmp-*``
folders, pointer temporaries, and rag's versions newer than the one a sound ``CURRENT`` names
(renamed but never published). After publishing, rag's versions other than the published one
and the one before it are removed, unless ``CURRENT`` was missing or broken before: then every
version is kept. Everything else in the folder is left alone. Removing a folder deletes its
marker last, so a removal cut short is still recognised next time. The lock, ``CURRENT``, the
markers and pointer temporaries are never opened, written or truncated through a symbolic or
hard link: such a lock or marker is refused (:class:`UnsafeIndexPathError`), and a linked
``CURRENT`` counts as broken and is replaced (the link itself, never its target).

No pickle anywhere: JSON, JSON lines, .npy loaded with ``allow_pickle=False``, FAISS's own format.

Fault injection: a writer calls :func:`fault_point` at each of :data:`FAULT_STEPS`, which calls
:data:`fault_hook` when one is installed; the crash-safety tests and ``benchmarks/bench_faults.py``
install one in a writer process that SIGKILLs it at the step chosen. Nothing is installed
otherwise: then a fault point does nothing.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import shutil
import socket
import stat
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from rag import fs
from rag.errors import (
    IndexCorruptError,
    IndexError_,
    IndexIncompatibleError,
    IndexLockedError,
    IndexNotFoundError,
    IndexWriteError,
    NotAnIndexError,
    UnsafeIndexPathError,
)
from rag.hashing import sha256_file
from rag.index.lexical import BM25Index
from rag.ingest.neardup import NearDuplicate
from rag.settings import IndexSettings
from rag.types import Chunk, CleaningReport, Document, Edit

#: 2: Markdown documents are cleaned of their syntax (rag/ingest/clean.py): an index of format 1
#: may hold Markdown as it was written, so it is rebuilt (``build``) or refused (``load``, ``add``).
FORMAT_VERSION = 2
POINTER = "CURRENT"
MANIFEST = "manifest.json"
LOCK = ".lock"
INDEX_MARKER = ".rag-index"
VERSION_MARKER = ".rag-version"
_KEEP_VERSIONS = 2
DEFAULT_LOCK_TIMEOUT = 600.0

_INDEX_MARKER_TEXT = "rag index folder: rag wrote this file when it created (or adopted) the folder\n"
_VERSION_MARKER_TEXT = "rag index version: rag wrote this file first, before anything else in this folder\n"
# What a version folder of rag's is called (``v-<seq>-<time>-<id>``, see :func:`_next_name`),
# its temporary folder, and a temporary of CURRENT: only such names, and only when what they
# hold proves it too, are ever removed.
_VERSION_NAME = re.compile(r"v-\d{6}-\d{8}T\d{6}-[0-9a-f]{8}")
_TEMP_PREFIX = ".tmp-v-"
_POINTER_TEMP_NAME = re.compile(r"\.CURRENT\.[0-9a-f]{8}")
# Files a repository keeps in a folder that is empty otherwise (like this project's index/README.md):
# a folder holding only these is as good as empty. rag never writes or removes them.
_PLACEHOLDERS = frozenset({"README", "README.md", "README.txt", "README.rst", ".gitkeep", ".keep", ".gitignore"})

FAULT_STEPS: tuple[str, ...] = (
    "start",
    "after-temp-folder",
    "after-marker",
    "after-faiss",
    "after-chunks",
    "after-documents",
    "after-signatures",
    "after-tokens",
    "after-bm25",
    "after-fsync",
    "after-manifest",
    "after-rename",
    "after-pointer-temp",
    "after-publish",
    "during-prune",
)


FaultHook = Callable[[str], None]
#: Called with the step's name at each of :data:`FAULT_STEPS` a writer passes (None: nothing is
#: called). Fault-injection tests set it in a writer process, e.g. to SIGKILL it at one step.
fault_hook: FaultHook | None = None


def kill_at(step: str) -> FaultHook:
    """A :data:`fault_hook` that SIGKILLs the writing process at ``step`` (for the kill -9 tests
    and ``benchmarks/bench_faults.py``, which install it in a writer process they started)."""
    if step not in FAULT_STEPS:
        raise ValueError(f"unknown fault step {step!r}")

    def hook(reached: str) -> None:
        if reached == step:
            import signal

            os.kill(os.getpid(), signal.SIGKILL)

    return hook


def fault_point(step: str) -> None:
    """Where a writer may be interrupted: calls :data:`fault_hook` with ``step`` when one is set."""
    hook = fault_hook
    if hook is not None:
        hook(step)


@dataclass(frozen=True)
class SourceRecord:
    """One document of the index as the manifest records it.

    ``duplicate_of`` names the indexed document with the same content (sha256) when this one
    is an exact duplicate: it is a member of the index, but its chunks are not stored twice.
    """

    source: str
    sha256: str
    chunks: int
    encoding: str
    duplicate_of: str | None = None


@dataclass(frozen=True)
class Manifest:
    format_version: int
    model: str
    dimension: int
    settings: IndexSettings
    documents: tuple[SourceRecord, ...]
    chunks: int
    visibility: float
    created: str
    build_seconds: float
    files: dict[str, str]
    versions: dict[str, str]
    near_duplicates: tuple[NearDuplicate, ...] = ()
    fingerprint: str = ""
    #: the encoder arithmetic the vectors were made with (:mod:`rag.encoder.precision`); queries use it too
    precision: str = "float32"

    @property
    def duplicates(self) -> tuple[SourceRecord, ...]:
        return tuple(r for r in self.documents if r.duplicate_of)

    @property
    def indexed(self) -> tuple[SourceRecord, ...]:
        return tuple(r for r in self.documents if not r.duplicate_of)

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "format_version": self.format_version,
            "model": self.model,
            "dimension": self.dimension,
            "settings": self.settings.to_dict(),
            "documents": [dict(r.__dict__) for r in self.documents],
            "chunks": self.chunks,
            "visibility": self.visibility,
            "created": self.created,
            "build_seconds": self.build_seconds,
            "files": self.files,
            "versions": self.versions,
            "near_duplicates": [[n.source, n.similar_to, n.jaccard] for n in self.near_duplicates],
            "fingerprint": self.fingerprint,
            "precision": self.precision,
        }
        data["digest"] = _digest(data)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Manifest":
        return cls(
            format_version=int(data["format_version"]),
            model=str(data["model"]),
            dimension=int(data["dimension"]),
            settings=IndexSettings.from_dict(data.get("settings", {})),
            documents=tuple(SourceRecord(**r) for r in data["documents"]),
            chunks=int(data["chunks"]),
            visibility=float(data.get("visibility", 1.0)),
            created=str(data.get("created", "")),
            build_seconds=float(data.get("build_seconds", 0.0)),
            files=dict(data["files"]),
            versions=dict(data.get("versions", {})),
            near_duplicates=tuple(NearDuplicate(str(a), str(b), float(j)) for a, b, j in data.get("near_duplicates", [])),
            fingerprint=str(data.get("fingerprint", "")),
            precision=str(data.get("precision") or legacy_precision(str(data["model"]))),
        )


def legacy_precision(model: str) -> str:
    """The precision of an index whose manifest predates the record: multilingual-e5-small was
    embedded on its dynamic int8 fast path, every other model in float32."""
    return "int8" if model == "multilingual-e5-small" else "float32"


def _digest(data: dict[str, Any]) -> str:
    body = {k: v for k, v in data.items() if k != "digest"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class LoadWarning:
    """The published version was refused and an earlier, intact version was loaded instead, or
    CURRENT is missing and the newest intact version was loaded (``refused`` names CURRENT)."""

    message: str
    refused: str
    loaded: str


@dataclass(frozen=True)
class StoredIndex:
    """Everything a loaded index holds.

    ``chunk_visibility`` (the model's known-token share per chunk) and ``signatures`` (MinHash
    per document, rows in ``documents`` order) are None for indexes written before they were
    stored. ``warning`` is set when the published version was corrupt and this is the one before,
    or when CURRENT is missing and this is the newest intact version.
    ``tokens`` (BM25 terms per chunk) are loaded only when asked for.
    """

    path: Path
    manifest: Manifest
    chunks: tuple[Chunk, ...]
    documents: dict[str, Document]
    vectors: np.ndarray
    faiss_index: Any
    bm25: BM25Index
    chunk_visibility: np.ndarray | None = None
    signatures: np.ndarray | None = None
    warning: LoadWarning | None = None
    tokens: tuple[tuple[str, ...], ...] | None = None


@dataclass(frozen=True, eq=False)
class IndexContent:
    """What a new version holds; rows of ``vectors`` and ``chunk_visibility`` are chunk ids,
    rows of ``signatures`` follow ``documents`` (the indexed documents, duplicates excluded)."""

    model: str
    dimension: int
    settings: IndexSettings
    documents: tuple[Document, ...]
    duplicates: tuple[SourceRecord, ...]
    chunks: tuple[Chunk, ...]
    vectors: np.ndarray
    chunk_visibility: np.ndarray
    signatures: np.ndarray
    tokens: tuple[tuple[str, ...], ...]
    bm25: BM25Index
    near_duplicates: tuple[NearDuplicate, ...] = ()
    fingerprint: str = ""
    build_seconds: float = 0.0
    precision: str = "float32"


def library_versions() -> dict[str, str]:
    out: dict[str, str] = {}
    for dist in ("rag", "faiss-cpu", "sentence-transformers", "torch", "bm25s", "jieba", "opencc", "numpy"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return out


def _document_json(doc: Document) -> dict[str, Any]:
    return {
        "source": doc.source,
        "sha256": doc.sha256,
        "encoding": doc.encoding,
        "text": doc.text,
        "original_chars": doc.report.original_chars,
        "edits": [[e.start, e.end, e.removed, e.replacement, e.reason, e.clean_start] for e in doc.report.edits],
    }


def _document_from_json(d: dict[str, Any]) -> Document:
    edits = tuple(Edit(*e) for e in d["edits"])
    report = CleaningReport(d["source"], int(d["original_chars"]), len(d["text"]), edits)
    return Document(d["source"], d["text"], report, d.get("sha256", ""), d.get("encoding", "utf-8"))


# ---------------------------------------------------------------- versions, pointer, lock


def _version_key(name: str) -> tuple[int, str]:
    """Versions sort by their sequence number (``v-000012-...``); older names sort first."""
    parts = name.split("-")
    if len(parts) >= 2 and len(parts[1]) == 6 and parts[1].isdigit():
        return int(parts[1]), name
    return 0, name


def _versions(index_dir: Path) -> list[Path]:
    """Version folders, newest first."""
    return sorted((p for p in index_dir.glob("v-*") if p.is_dir()), key=lambda p: _version_key(p.name), reverse=True)


def _read_pointer(index_dir: Path) -> str | None:
    """The version CURRENT names; None when there is no CURRENT, "" when it cannot be read
    (not text, not a plain file, or a symbolic link: it is never read through one)."""
    try:
        fd = os.open(index_dir / POINTER, os.O_RDONLY | fs.O_NOFOLLOW | fs.O_CLOEXEC | fs.O_NONBLOCK)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError:
        return ""
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return ""
        return os.read(fd, 4096).decode("utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return ""
    finally:
        os.close(fd)


def _sound_name(name: str | None) -> bool:
    """``name`` can be a version folder's name (no path, no hidden or special name)."""
    return name is not None and name != "" and "/" not in name and not name.startswith(".") and "\x00" not in name


# ---------------------------------------------------------------- what rag wrote


def _marked(folder: Path) -> bool:
    """``folder`` is a real folder holding rag's version marker: rag created it."""
    return fs.is_real_dir(folder) and fs.is_plain_file(folder / VERSION_MARKER)


def _legacy_version(folder: Path) -> bool:
    """A version written before markers existed, provably by rag: named as rag names versions,
    its manifest reads and its digest verifies, and it holds nothing its manifest does not
    list (no other file, no link)."""
    if not _VERSION_NAME.fullmatch(folder.name) or not fs.is_real_dir(folder):
        return False
    try:
        manifest = read_manifest(folder)
    except IndexError_:
        return False
    listed = set(manifest.files) | {MANIFEST}
    for root, dirs, files in os.walk(folder):
        base = Path(root)
        for d in dirs:
            if not fs.is_real_dir(base / d):
                return False  # a link to a folder
        for f in files:
            p = base / f
            if not fs.is_plain_file(p) or p.relative_to(folder).as_posix() not in listed:
                return False
    return True


def _owned_version(folder: Path) -> bool:
    """``folder`` (a ``v-*`` entry of an index) is a version rag provably wrote."""
    return _marked(folder) or _legacy_version(folder)


def _owned_temp(entry: Path) -> bool:
    """``entry`` is a temporary a writer of rag's left: a ``.tmp-v-*`` folder with the version
    marker (or empty: killed before the marker), or a ``.CURRENT.<8 hex>`` plain file."""
    if entry.name.startswith(_TEMP_PREFIX):
        return _marked(entry) or (fs.is_real_dir(entry) and not os.listdir(entry))
    return bool(_POINTER_TEMP_NAME.fullmatch(entry.name)) and fs.is_plain_file(entry)


def _remove_owned(entry: Path) -> bool:
    """Remove a folder (or pointer temporary) rag wrote. A folder loses its marker last (one
    that had none, a pre-marker version, gets one first), so a removal cut short by a kill
    leaves a folder still recognised as rag's. Returns whether it is gone."""
    if not fs.is_real_dir(entry):
        try:
            entry.unlink()
        except FileNotFoundError:
            pass
        except OSError:
            return False
        return True
    marker = entry / VERSION_MARKER
    if not fs.is_plain_file(marker):
        try:
            fs.create_file(marker, _VERSION_MARKER_TEXT)
        except OSError:
            pass
    try:
        for child in sorted(os.listdir(entry)):
            if child == VERSION_MARKER:
                continue
            p = entry / child
            if fs.is_real_dir(p):
                shutil.rmtree(p)  # never follows a link inside
            else:
                p.unlink()
        marker.unlink(missing_ok=True)
        entry.rmdir()
    except OSError:
        return False
    return True


def _adoptable(index_dir: Path) -> tuple[bool, list[str]]:
    """Whether a folder without the index marker may be used as an index: it holds one of rag's
    versions (a pre-marker index, perhaps one that lost CURRENT) or a legacy single-version
    manifest, or nothing but what rag or a repository puts into an empty folder (the lock,
    CURRENT, temporaries, placeholders). Returns that and the names that are not rag's."""
    foreign: list[str] = []
    ours = False
    for name in sorted(os.listdir(index_dir)):
        p = index_dir / name
        if name.startswith("v-") and _owned_version(p):
            ours = True
        elif name == MANIFEST and fs.is_plain_file(p):
            try:
                read_manifest(index_dir)
                ours = True
            except IndexError_:
                foreign.append(name)
        elif name in (LOCK, POINTER) and fs.is_plain_file(p):
            continue
        elif name in _PLACEHOLDERS and fs.is_plain_file(p):
            continue
        elif _owned_temp(p) or (name.startswith(_TEMP_PREFIX) and fs.is_real_dir(p)):
            continue  # a crashed writer's (one of before markers, too: kept, but no sign of foreign data)
        else:
            foreign.append(name)
    return ours or not foreign, foreign


def claim_index_dir(index_dir: Path) -> None:
    """Make sure writers may use ``index_dir``, creating it when it does not exist.

    A new folder gets the index marker first. An existing one is used when it carries the
    marker, or when :func:`_adoptable` (an index of an earlier rag, an empty folder): then it is
    marked. Anything else (someone's folder of files) raises :class:`NotAnIndexError` before
    anything is written into it; a marker that is not a plain file raises
    :class:`UnsafeIndexPathError`.
    """
    try:
        st = os.stat(index_dir)  # the folder itself may be a link: the caller named it
    except FileNotFoundError:
        st = None
    except OSError as exc:
        raise write_error(index_dir, exc) from exc
    if st is None:
        try:
            index_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise write_error(index_dir, exc) from exc
    elif not stat.S_ISDIR(st.st_mode):
        raise NotAnIndexError(f"{index_dir}: not a folder, so not an index; give a new or empty folder")
    marker = index_dir / INDEX_MARKER
    if os.path.lexists(marker):
        if not fs.is_plain_file(marker):
            raise UnsafeIndexPathError(
                f"{marker}: the index marker is a symbolic link or not a plain file; refused "
                "(rag never writes through a link): remove it"
            )
        return
    if st is not None:
        ok, foreign = _adoptable(index_dir)
        if not ok:
            shown = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
            raise NotAnIndexError(
                f"{index_dir}: not an index folder, and not empty (it holds {shown}, which rag did not write); "
                "refusing to write into it: give a new or empty folder, or an index rag built"
            )
    try:
        fs.create_file(marker, _INDEX_MARKER_TEXT)
    except FileExistsError:  # another writer marked it just now
        if not fs.is_plain_file(marker):
            raise UnsafeIndexPathError(f"{marker}: the index marker is a symbolic link or not a plain file; refused") from None
    except OSError as exc:
        raise write_error(index_dir, exc) from exc


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


def tidy(index_dir: Path) -> list[str]:
    """Remove what a crashed writer provably left: its temporaries (``.tmp-v-*`` folders with
    the version marker or empty, ``.CURRENT.<8 hex>`` files) and versions of rag's that are
    newer than the one a sound ``CURRENT`` names (renamed, never published). Nothing else:
    with CURRENT missing or broken every version is kept (loading recovers the newest intact
    one), and what rag cannot prove it wrote is never touched. Call with the writer lock held.
    Returns the names removed."""
    if not index_dir.is_dir():
        return []
    removed = _remove_temporaries(index_dir)
    current = _read_pointer(index_dir)
    if not _sound_name(current) or not (index_dir / str(current)).is_dir():
        return removed  # no pointer, or a broken one: keep every version for recovery
    seq = _version_key(str(current))[0]
    if seq == 0:
        return removed  # not a name rag gives: which versions are newer is unknown
    for p in _versions(index_dir):
        if _version_key(p.name)[0] > seq and _owned_version(p) and _remove_owned(p):
            removed.append(p.name)
    return removed


def _remove_temporaries(index_dir: Path) -> list[str]:
    removed: list[str] = []
    for name in sorted(os.listdir(index_dir)):
        p = index_dir / name
        if (name.startswith(_TEMP_PREFIX) or name.startswith(f".{POINTER}.")) and _owned_temp(p) and _remove_owned(p):
            removed.append(name)
    return removed


def _next_name(index_dir: Path) -> str:
    seq = max((_version_key(p.name)[0] for p in index_dir.glob("v-*")), default=0) + 1
    return f"v-{seq:06d}-{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:8]}"


# ---------------------------------------------------------------- writing


_FAISS_PREFIX = re.compile(r"^Error in .*? at \S+:\d+: (?:Error: '.*?' failed: )?", re.DOTALL)


def write_error(index_dir: Path, exc: BaseException) -> IndexWriteError:
    """The :class:`IndexWriteError` for an ``OSError`` (or a FAISS ``RuntimeError``) raised
    while writing into ``index_dir``: the reason in one line, without FAISS's source location."""
    if isinstance(exc, OSError):
        reason = exc.strerror or str(exc) or exc.__class__.__name__
        if exc.filename is not None:
            name = Path(os.fsdecode(exc.filename)).name
            reason += " (creating the new version)" if name.startswith(".tmp-") else f" (writing {name})"
    else:
        reason = _FAISS_PREFIX.sub("", str(exc)).strip() or exc.__class__.__name__
        reason = re.sub(r"\S*/(\.tmp-[^/\s]+/)?", "", reason)  # folder names (the index is named already)
    return IndexWriteError(index_dir, " ".join(reason.split()))


def _write_faiss(vec_index: Any, path: Path, index_dir: Path) -> None:
    import faiss

    try:
        faiss.write_index(vec_index, str(path))
    except RuntimeError as exc:  # FAISS reports a failed open or write as RuntimeError
        raise write_error(index_dir, exc) from exc


def write_index(index_dir: Path, content: IndexContent, *, based_on: str | None = None) -> Path:
    """Write a complete new version and publish it atomically. Returns the version folder.

    Call with :func:`writer_lock` held. The previously published version is kept (for
    fallback), and so is ``based_on`` (the version the new content was read from, when that
    is another one); rag's older versions are removed after the new one is published, unless
    CURRENT was missing or broken before: then every version is kept.
    """
    import faiss

    try:
        index_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise write_error(index_dir, exc) from exc
    fault_point("start")
    previous = _read_pointer(index_dir)
    name = _next_name(index_dir)
    tmp = index_dir / f".tmp-{name}"
    final = index_dir / name
    pointer_tmp = index_dir / f".{POINTER}.{uuid.uuid4().hex[:8]}"
    renamed = published = False
    try:
        tmp.mkdir()
        fault_point("after-temp-folder")
        fs.create_file(tmp / VERSION_MARKER, _VERSION_MARKER_TEXT)  # first: the folder is provably rag's
        fault_point("after-marker")
        vec_index = faiss.IndexFlatIP(content.dimension)
        if len(content.vectors):
            vec_index.add(np.ascontiguousarray(content.vectors, dtype=np.float32))
        _write_faiss(vec_index, tmp / "vectors.faiss", index_dir)
        fault_point("after-faiss")
        vis = content.chunk_visibility
        with open(tmp / "chunks.jsonl", "w", encoding="utf-8") as f:
            for i, c in enumerate(content.chunks):
                f.write(json.dumps([c.chunk_id, c.source, c.start, c.end, c.text, round(float(vis[i]), 6)], ensure_ascii=False) + "\n")
        fault_point("after-chunks")
        with open(tmp / "documents.jsonl", "w", encoding="utf-8") as f:
            for d in content.documents:
                f.write(json.dumps(_document_json(d), ensure_ascii=False) + "\n")
        fault_point("after-documents")
        np.save(tmp / "signatures.npy", np.ascontiguousarray(content.signatures, dtype=np.uint64), allow_pickle=False)
        fault_point("after-signatures")
        with open(tmp / "tokens.jsonl", "w", encoding="utf-8") as f:
            for toks in content.tokens:
                f.write(json.dumps(list(toks), ensure_ascii=False) + "\n")
        fault_point("after-tokens")
        content.bm25.save(tmp / "bm25")
        fault_point("after-bm25")
        files = {p.relative_to(tmp).as_posix(): sha256_file(p) for p in sorted(tmp.rglob("*"))
                 if p.is_file() and p != tmp / VERSION_MARKER}  # the marker is about ownership, not content
        for p in tmp.rglob("*"):
            if p.is_file():
                fs.fsync_file(p)
        for p in [tmp / "bm25", tmp]:
            fs.fsync_dir(p)
        fault_point("after-fsync")
        per_doc: dict[str, int] = {}
        for c in content.chunks:
            per_doc[c.source] = per_doc.get(c.source, 0) + 1
        records = [SourceRecord(d.source, d.sha256, per_doc.get(d.source, 0), d.encoding) for d in content.documents]
        records.extend(content.duplicates)
        manifest = Manifest(
            format_version=FORMAT_VERSION,
            model=content.model,
            dimension=content.dimension,
            settings=content.settings,
            documents=tuple(sorted(records, key=lambda r: r.source)),
            chunks=len(content.chunks),
            visibility=round(float(np.mean(vis)), 6) if len(vis) else 1.0,
            created=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            build_seconds=round(content.build_seconds, 3),
            files=files,
            versions=library_versions(),
            near_duplicates=content.near_duplicates,
            fingerprint=content.fingerprint,
            precision=content.precision,
        )
        mpath = tmp / MANIFEST
        mpath.write_text(json.dumps(manifest.to_json(), ensure_ascii=False, indent=2), encoding="utf-8")
        fs.fsync_file(mpath)
        fs.fsync_dir(tmp)
        fault_point("after-manifest")
        os.replace(tmp, final)
        renamed = True
        fs.fsync_dir(index_dir)
        fault_point("after-rename")
        fs.create_file(pointer_tmp, name + "\n")  # a new file (O_EXCL, no link followed), fsynced
        fault_point("after-pointer-temp")
        os.replace(pointer_tmp, index_dir / POINTER)
        published = True
        fs.fsync_dir(index_dir)
        fault_point("after-publish")
    except OSError as exc:  # read-only, disk full, no permission: nothing was published
        _discard_unpublished(tmp, final if renamed and not published else None, pointer_tmp)
        raise write_error(index_dir, exc) from exc
    except BaseException:
        _discard_unpublished(tmp, final if renamed and not published else None, pointer_tmp)
        raise
    _prune(index_dir, keep=name, previous=previous, based_on=based_on)
    return final


def _discard_unpublished(tmp: Path, unpublished: Path | None, pointer_tmp: Path) -> None:
    """Remove what a failed :func:`write_index` wrote: its temporary folder, the version folder
    when it was renamed but never published, and the pointer's temporary file."""
    shutil.rmtree(tmp, ignore_errors=True)
    if unpublished is not None:
        shutil.rmtree(unpublished, ignore_errors=True)
    try:
        pointer_tmp.unlink(missing_ok=True)
    except OSError:
        pass


def _prune(index_dir: Path, keep: str, previous: str | None, based_on: str | None = None) -> None:
    """After publishing ``keep``: when CURRENT named a version before (``previous``), keep it and
    ``based_on`` and remove rag's other versions (:func:`prune`); when CURRENT was missing or
    broken, keep every version (only a failed write's temporaries go)."""
    if _sound_name(previous) and (index_dir / str(previous)).is_dir():
        prune(index_dir, keep, (previous, based_on))
    else:
        _remove_temporaries(index_dir)


def prune(index_dir: Path, published: str, also_keep: Iterable[str | None] = ()) -> list[str]:
    """Retention, once CURRENT names ``published``: keep it, the versions named in
    ``also_keep`` and, when none of those is another existing version, the newest of rag's
    versions before it; remove every other version rag provably wrote (see the module's
    docstring), and its temporaries. Call with the writer lock held. Returns the names removed."""
    keep = {published} | {n for n in also_keep if _sound_name(n) and (index_dir / str(n)).is_dir()}
    if len(keep) == 1:
        seq = _version_key(published)[0]
        older = [p.name for p in _versions(index_dir)
                 if p.name != published and _version_key(p.name)[0] < seq and _owned_version(p)]
        keep.update(older[: _KEEP_VERSIONS - 1])
    removed: list[str] = []
    first = True
    for p in _versions(index_dir):
        if p.name in keep or not _owned_version(p):
            continue
        if first:
            fault_point("during-prune")
            first = False
        if _remove_owned(p):
            removed.append(p.name)
    return removed + _remove_temporaries(index_dir)


# ---------------------------------------------------------------- reading


def current_version(index_dir: Path) -> Path:
    """The published version folder: the one CURRENT names (the index folder itself for a
    legacy single-version index). With CURRENT missing, the newest version whose manifest
    reads (:func:`locate_version` says so too)."""
    return locate_version(index_dir)[0]


def locate_version(index_dir: Path) -> tuple[Path, str | None]:
    """:func:`current_version`, and a warning naming the version used when CURRENT is missing
    (its manifest is read, its files are not verified: :func:`load_index` does that)."""
    if not index_dir.is_dir():
        raise IndexNotFoundError(f"{index_dir}: no index here (build one with: python -m rag build)")
    name = _read_pointer(index_dir)
    if name is not None:
        return _pointed(index_dir, name), None
    if (index_dir / MANIFEST).is_file():
        return index_dir, None
    versions = _unpointed_versions(index_dir)
    first: IndexError_ | None = None
    for candidate in versions:
        try:
            read_manifest(candidate)
        except IndexError_ as exc:
            first = first or exc
            continue
        return candidate, (f"{_missing_pointer(index_dir)}; this is the newest version, {candidate.name} "
                           "(the next build, add or remove publishes it again)")
    raise _nothing_intact(index_dir, first)


def _missing_pointer(index_dir: Path) -> str:
    return f"{index_dir / POINTER}: missing, so no version is marked as published"


def _unpointed_versions(index_dir: Path) -> list[Path]:
    """The versions of an index without CURRENT, newest first; :class:`IndexNotFoundError`
    when none has a manifest (then it is no index at all)."""
    versions = _versions(index_dir)
    if not any((v / MANIFEST).is_file() for v in versions):
        raise IndexNotFoundError(f"{index_dir}: no index here (build one with: python -m rag build)")
    return versions


def _nothing_intact(index_dir: Path, first: IndexError_ | None) -> IndexError_:
    message = f"{_missing_pointer(index_dir)}, and no version is intact ({first}); rebuild needed"
    if isinstance(first, IndexIncompatibleError):
        return IndexIncompatibleError(message)
    return IndexCorruptError(message)


def read_manifest(version: Path) -> Manifest:
    mpath = version / MANIFEST
    if not mpath.is_file():
        raise IndexCorruptError(f"{mpath}: manifest missing; the index is incomplete (rebuild needed)")
    try:
        data = json.loads(mpath.read_text(encoding="utf-8"))
        if "digest" in data and data["digest"] != _digest(data):
            raise IndexCorruptError(f"{mpath}: manifest checksum mismatch, the file is corrupt or was changed (rebuild needed)")
        manifest = Manifest.from_json(data)
    except IndexCorruptError:
        raise
    except (ValueError, KeyError, TypeError, AttributeError, UnicodeDecodeError) as exc:
        raise IndexCorruptError(f"{mpath}: unreadable manifest ({exc}); rebuild needed") from exc
    if manifest.format_version != FORMAT_VERSION:
        raise IndexIncompatibleError(
            f"{mpath}: index format {manifest.format_version}, this version reads {FORMAT_VERSION}: rebuild needed"
        )
    return manifest


def verify_files(version: Path, manifest: Manifest) -> None:
    for rel, digest in manifest.files.items():
        p = version / rel
        if not p.is_file():
            raise IndexCorruptError(f"{p}: missing from the index (rebuild needed)")
        if sha256_file(p) != digest:
            raise IndexCorruptError(f"{p}: checksum mismatch, the file is corrupt or was changed (rebuild needed)")


def load_index(index_dir: Path, *, verify: bool = True, fallback: bool = True, tokens: bool = False) -> StoredIndex:
    """Load the published version, verifying every file against the manifest's checksums.

    A version that a concurrent writer removes while it is being read is retried with the newly
    published one. A corrupt published version raises :class:`IndexCorruptError`, unless
    ``fallback`` is true and an earlier version is intact: then that one is loaded and
    ``StoredIndex.warning`` says what was refused and why. With CURRENT missing (deleted or
    lost), the newest intact version is loaded, with a warning naming it; with ``fallback``
    false that raises :class:`IndexCorruptError` instead.
    """
    failure: IndexCorruptError | None = None
    name: str | None = None
    for _ in range(5):
        name = _read_pointer(index_dir)
        if name is None:
            if not index_dir.is_dir():
                raise IndexNotFoundError(f"{index_dir}: no index here (build one with: python -m rag build)")
            if not (index_dir / MANIFEST).is_file():
                return _load_newest_intact(index_dir, verify, tokens, fallback)
            try:  # a legacy single-version index
                return _load_version(index_dir, verify, tokens)
            except IndexCorruptError as exc:
                failure = exc
                break
        try:
            return _load_version(_pointed(index_dir, name), verify, tokens)
        except IndexCorruptError as exc:
            failure = exc
            if _read_pointer(index_dir) == name:
                break  # not a race with a writer: this version really is broken
    assert failure is not None
    if not fallback:
        raise failure
    current_key = _version_key(name) if name and (index_dir / name).is_dir() else None
    for candidate in _versions(index_dir):
        if candidate.name == name or (current_key is not None and _version_key(candidate.name) > current_key):
            continue
        try:
            stored = _load_version(candidate, verify, tokens)
        except IndexError_:
            continue
        warning = LoadWarning(
            f"{failure}; loaded the previous version {candidate.name} instead (rebuild to repair)",
            refused=str(index_dir / name) if name else str(index_dir),
            loaded=str(candidate),
        )
        return replace(stored, warning=warning)
    raise failure


def _load_newest_intact(index_dir: Path, verify: bool, tokens: bool, fallback: bool) -> StoredIndex:
    """An index whose CURRENT is missing: its newest intact version, with a warning."""
    versions = _unpointed_versions(index_dir)
    if not fallback:
        raise IndexCorruptError(
            f"{_missing_pointer(index_dir)} (with fallback the newest intact version is loaded; "
            "a build, add or remove publishes it again)"
        )
    first: IndexError_ | None = None
    for candidate in versions:
        try:
            stored = _load_version(candidate, verify, tokens)
        except IndexError_ as exc:
            first = first or exc
            continue
        warning = LoadWarning(
            f"{_missing_pointer(index_dir)}; loaded the newest intact version {candidate.name} instead "
            "(the next build, add or remove publishes it again)",
            refused=str(index_dir / POINTER),
            loaded=str(candidate),
        )
        return replace(stored, warning=warning)
    raise _nothing_intact(index_dir, first)


def _pointed(index_dir: Path, name: str) -> Path:
    version = index_dir / name
    if not name:
        raise IndexCorruptError(f"{index_dir / POINTER}: unreadable (empty, not text, not a plain file, or a symbolic link)")
    if not _sound_name(name) or not version.is_dir():
        raise IndexCorruptError(f"{index_dir / POINTER}: points to a missing version {name!r}")
    return version


def _load_version(version: Path, verify: bool, with_tokens: bool = False) -> StoredIndex:
    import faiss

    manifest = read_manifest(version)
    if verify:
        verify_files(version, manifest)
    try:
        faiss_index = faiss.read_index(str(version / "vectors.faiss"))
        chunks: list[Chunk] = []
        visibility: list[float] = []
        with open(version / "chunks.jsonl", encoding="utf-8") as f:
            for line in f:
                row = json.loads(line)
                cid, source, start, end, text = row[:5]
                chunks.append(Chunk(int(cid), source, int(start), int(end), text))
                if len(row) > 5:
                    visibility.append(float(row[5]))
        documents: dict[str, Document] = {}
        with open(version / "documents.jsonl", encoding="utf-8") as f:
            for line in f:
                doc = _document_from_json(json.loads(line))
                documents[doc.source] = doc
        sig_path = version / "signatures.npy"
        signatures = np.load(sig_path, allow_pickle=False) if sig_path.is_file() else None
        bm25 = BM25Index.load(version / "bm25", len(chunks))
        token_lists: tuple[tuple[str, ...], ...] | None = None
        tpath = version / "tokens.jsonl"
        if with_tokens and tpath.is_file():
            with open(tpath, encoding="utf-8") as f:
                token_lists = tuple(tuple(json.loads(line)) for line in f)
            if len(token_lists) != len(chunks):
                token_lists = None
    except (OSError, ValueError, KeyError, TypeError, RuntimeError, UnicodeDecodeError) as exc:
        raise IndexCorruptError(f"{version}: cannot read the index ({exc}); rebuild needed") from exc
    if faiss_index.ntotal != len(chunks) or faiss_index.d != manifest.dimension:
        raise IndexCorruptError(
            f"{version}: {faiss_index.ntotal} vectors of dimension {faiss_index.d} for {len(chunks)} chunks "
            f"of dimension {manifest.dimension}; rebuild needed"
        )
    if any(c.chunk_id != i for i, c in enumerate(chunks)):
        raise IndexCorruptError(f"{version / 'chunks.jsonl'}: chunk ids are not their row numbers; rebuild needed")
    if signatures is not None and signatures.shape[0] != len(documents):
        signatures = None
    vectors = faiss_index.reconstruct_n(0, faiss_index.ntotal) if faiss_index.ntotal else np.zeros((0, manifest.dimension), np.float32)
    return StoredIndex(
        version,
        manifest,
        tuple(chunks),
        documents,
        np.asarray(vectors, dtype=np.float32),
        faiss_index,
        bm25,
        np.asarray(visibility, dtype=np.float64) if len(visibility) == len(chunks) else None,
        signatures,
        None,
        token_lists,
    )
