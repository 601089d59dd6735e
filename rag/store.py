"""The index on disk: FAISS vectors, chunk and document stores, BM25, and a manifest.

Layout of an index folder::

    index/
      CURRENT              name of the published version folder (swapped atomically)
      .lock                writers hold an exclusive flock on it (readers never lock)
      v-<seq>-<time>-<id>/ one complete version; the published one and the one before it are kept
        manifest.json      written last: format, model, dimension, settings, counts, the
                           documents (sha256, duplicates), near-duplicates, the sha256 of
                           every file here, library versions, and its own digest
        vectors.faiss      normalised vectors, inner-product index (row i is chunk i)
        chunks.jsonl       one chunk a line: id, source, start, end, text, visibility
        documents.jsonl    one cleaned document a line, with its cleaning report
        signatures.npy     MinHash signatures of the documents (near-duplicate detection)
        tokens.jsonl       BM25 terms of each chunk, so an update refits BM25 without re-tokenising
        bm25/              bm25s arrays (.npy, no pickle) and vocabulary (.json)

Publishing: a version is written in a ``.tmp-*`` folder, every file fsynced, the manifest
written last, the folder renamed to its final name, then ``CURRENT`` replaced atomically and the
parent folder synced. A reader therefore sees the old version or the new one, never a mix.
Loading verifies every file against the manifest's checksums; a corrupt published version is
refused, and the previous version is loaded instead when it is intact (``StoredIndex.warning``
says so). Writers are serialised by :func:`writer_lock`; stale temporary folders and
unpublished versions left by a crashed writer are removed when the next writer starts.

No pickle anywhere: JSON, JSON lines, .npy loaded with ``allow_pickle=False``, FAISS's own format.

For fault-injection tests, setting ``RAG_FAULT_STEP`` to one of :data:`FAULT_STEPS` makes a
writing process kill itself (SIGKILL) at that step.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import socket
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from .errors import IndexCorruptError, IndexError_, IndexIncompatibleError, IndexLockedError, IndexNotFoundError
from .hashing import sha256_file
from .lexical import BM25Index
from .neardup import NearDuplicate
from .settings import Settings
from .types import Chunk, CleaningReport, Document, Edit

try:  # POSIX only; elsewhere writers are not serialised
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None  # type: ignore[assignment]

FORMAT_VERSION = 1
POINTER = "CURRENT"
MANIFEST = "manifest.json"
LOCK = ".lock"
_KEEP_VERSIONS = 2
DEFAULT_LOCK_TIMEOUT = 600.0

FAULT_ENV = "RAG_FAULT_STEP"
FAULT_STEPS: tuple[str, ...] = (
    "start",
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


def fault_point(step: str) -> None:
    """Kill this process with SIGKILL when ``RAG_FAULT_STEP`` names ``step`` (tests only)."""
    if os.environ.get(FAULT_ENV) == step:
        os.kill(os.getpid(), signal.SIGKILL)


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
    settings: Settings
    documents: tuple[SourceRecord, ...]
    chunks: int
    visibility: float
    created: str
    build_seconds: float
    files: dict[str, str]
    versions: dict[str, str]
    near_duplicates: tuple[NearDuplicate, ...] = ()
    fingerprint: str = ""

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
        }
        data["digest"] = _digest(data)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Manifest":
        return cls(
            format_version=int(data["format_version"]),
            model=str(data["model"]),
            dimension=int(data["dimension"]),
            settings=Settings.from_dict(data.get("settings", {})),
            documents=tuple(SourceRecord(**r) for r in data["documents"]),
            chunks=int(data["chunks"]),
            visibility=float(data.get("visibility", 1.0)),
            created=str(data.get("created", "")),
            build_seconds=float(data.get("build_seconds", 0.0)),
            files=dict(data["files"]),
            versions=dict(data.get("versions", {})),
            near_duplicates=tuple(NearDuplicate(str(a), str(b), float(j)) for a, b, j in data.get("near_duplicates", [])),
            fingerprint=str(data.get("fingerprint", "")),
        )


def _digest(data: dict[str, Any]) -> str:
    body = {k: v for k, v in data.items() if k != "digest"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class LoadWarning:
    """The published version was refused and an earlier, intact version was loaded instead."""

    message: str
    refused: str
    loaded: str


@dataclass(frozen=True)
class StoredIndex:
    """Everything a loaded index holds.

    ``chunk_visibility`` (the model's known-token share per chunk) and ``signatures`` (MinHash
    per document, rows in ``documents`` order) are None for indexes written before they were
    stored. ``warning`` is set when the published version was corrupt and this is the one before.
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
    settings: Settings
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


def library_versions() -> dict[str, str]:
    out: dict[str, str] = {}
    for dist in ("rag", "faiss-cpu", "sentence-transformers", "torch", "bm25s", "jieba", "opencc", "numpy"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return out


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


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
    try:
        return (index_dir / POINTER).read_text(encoding="utf-8").strip()
    except (FileNotFoundError, NotADirectoryError):
        return None
    except (OSError, UnicodeDecodeError):
        return ""


@contextmanager
def writer_lock(index_dir: Path, timeout: float | None = None) -> Iterator[None]:
    """Hold the index's writer lock (``index/.lock``), waiting up to ``timeout`` seconds.

    Serialises writers across processes and threads (each acquisition opens its own file
    description). Raises :class:`IndexLockedError` naming the holder when the wait runs out.
    """
    timeout = DEFAULT_LOCK_TIMEOUT if timeout is None else timeout
    index_dir.mkdir(parents=True, exist_ok=True)
    path = index_dir / LOCK
    if fcntl is None:  # pragma: no cover
        yield
        return
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    holder = _lock_holder(path)
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
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _lock_holder(path: Path) -> str:
    try:
        text = path.read_text(encoding="utf-8").strip()
    except OSError:
        return ""
    return f" ({text})" if text else ""


def tidy(index_dir: Path) -> list[str]:
    """Remove what a crashed writer left: temporary folders, pointer temps, versions that were
    never published (newer than the published one) and versions it had not pruned yet (all
    but the newest one before the published one). Call with the writer lock held.
    Returns the names removed."""
    removed: list[str] = []
    if not index_dir.is_dir():
        return removed
    for p in list(index_dir.glob(".tmp-*")) + list(index_dir.glob(f".{POINTER}.*")):
        _remove(p)
        removed.append(p.name)
    current = _read_pointer(index_dir)
    if current is None:
        if (index_dir / MANIFEST).is_file():
            return removed  # a legacy single-version index: leave it alone
        unpublished = _versions(index_dir)  # nothing was ever published
    elif current and (index_dir / current).is_dir():
        key = _version_key(current)
        unpublished = [p for p in _versions(index_dir) if _version_key(p.name) > key]
        older = [p for p in _versions(index_dir) if _version_key(p.name) < key]
        unpublished += older[_KEEP_VERSIONS - 1:]  # left by a writer killed before it pruned
    else:
        unpublished = []  # a broken pointer: keep every version for fallback
    for p in unpublished:
        _remove(p)
        removed.append(p.name)
    return removed


def _remove(p: Path) -> None:
    if p.is_dir() and not p.is_symlink():
        shutil.rmtree(p, ignore_errors=True)
    else:
        try:
            p.unlink()
        except OSError:
            pass


def _next_name(index_dir: Path) -> str:
    seq = max((_version_key(p.name)[0] for p in index_dir.glob("v-*")), default=0) + 1
    return f"v-{seq:06d}-{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:8]}"


# ---------------------------------------------------------------- writing


def write_index(index_dir: Path, content: IndexContent) -> Path:
    """Write a complete new version and publish it atomically. Returns the version folder.

    Call with :func:`writer_lock` held. The previously published version is kept (for
    fallback); older ones are removed after the new one is published.
    """
    import faiss

    index_dir.mkdir(parents=True, exist_ok=True)
    fault_point("start")
    previous = _read_pointer(index_dir)
    name = _next_name(index_dir)
    tmp = index_dir / f".tmp-{name}"
    tmp.mkdir()
    try:
        vec_index = faiss.IndexFlatIP(content.dimension)
        if len(content.vectors):
            vec_index.add(np.ascontiguousarray(content.vectors, dtype=np.float32))
        faiss.write_index(vec_index, str(tmp / "vectors.faiss"))
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
        files = {p.relative_to(tmp).as_posix(): sha256_file(p) for p in sorted(tmp.rglob("*")) if p.is_file()}
        for p in tmp.rglob("*"):
            if p.is_file():
                _fsync_file(p)
        for p in [tmp / "bm25", tmp]:
            _fsync_dir(p)
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
        )
        mpath = tmp / MANIFEST
        mpath.write_text(json.dumps(manifest.to_json(), ensure_ascii=False, indent=2), encoding="utf-8")
        _fsync_file(mpath)
        _fsync_dir(tmp)
        fault_point("after-manifest")
        final = index_dir / name
        os.replace(tmp, final)
        _fsync_dir(index_dir)
        fault_point("after-rename")
        pointer_tmp = index_dir / f".{POINTER}.{uuid.uuid4().hex[:8]}"
        pointer_tmp.write_text(name + "\n", encoding="utf-8")
        _fsync_file(pointer_tmp)
        fault_point("after-pointer-temp")
        os.replace(pointer_tmp, index_dir / POINTER)
        _fsync_dir(index_dir)
        fault_point("after-publish")
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _prune(index_dir, keep=name, previous=previous)
    return final


def _prune(index_dir: Path, keep: str, previous: str | None) -> None:
    """Keep the published version and the one published before it; remove the rest and temps."""
    keep_names = {keep}
    if previous and previous != keep and (index_dir / previous).is_dir():
        keep_names.add(previous)
    else:  # no previous pointer: keep the newest older version, if any
        older = [p.name for p in _versions(index_dir) if p.name != keep]
        keep_names.update(older[: _KEEP_VERSIONS - 1])
    first = True
    for p in _versions(index_dir):
        if p.name in keep_names:
            continue
        if first:
            fault_point("during-prune")
            first = False
        shutil.rmtree(p, ignore_errors=True)
    for p in index_dir.glob(".tmp-*"):
        shutil.rmtree(p, ignore_errors=True)
    for p in index_dir.glob(f".{POINTER}.*"):
        p.unlink(missing_ok=True)


# ---------------------------------------------------------------- reading


def current_version(index_dir: Path) -> Path:
    if not index_dir.is_dir():
        raise IndexNotFoundError(f"{index_dir}: no index here (build one with: python -m rag build)")
    name = _read_pointer(index_dir)
    if name is None:
        if (index_dir / MANIFEST).is_file():
            return index_dir
        raise IndexNotFoundError(f"{index_dir}: no index here (build one with: python -m rag build)")
    version = index_dir / name
    if not name or "/" in name or name.startswith(".") or not version.is_dir():
        raise IndexCorruptError(f"{index_dir / POINTER}: points to a missing version {name!r}")
    return version


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
    ``StoredIndex.warning`` says what was refused and why.
    """
    failure: IndexCorruptError | None = None
    name: str | None = None
    for _ in range(5):
        name = _read_pointer(index_dir)
        try:
            version = current_version(index_dir) if name is None else _pointed(index_dir, name)
            return _load_version(version, verify, tokens)
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


def _pointed(index_dir: Path, name: str) -> Path:
    version = index_dir / name
    if not name or "/" in name or name.startswith(".") or not version.is_dir():
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
