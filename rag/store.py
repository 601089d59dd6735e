"""The index on disk: FAISS vectors, chunk and document stores, BM25, and a manifest.

Layout of an index folder::

    index/
      CURRENT              name of the published version folder (swapped atomically)
      v-<time>-<id>/       one complete version
        manifest.json      written last: format, model, dimension, settings, counts,
                           sha256 of each source document and of each file here, versions
        vectors.faiss      normalised vectors, inner-product index
        chunks.jsonl       one chunk a line: id, source, start, end, text
        documents.jsonl    one cleaned document a line, with its cleaning report
        bm25/              bm25s arrays (.npy, no pickle) and vocabulary (.json)

No pickle anywhere: JSON, JSON lines, .npy loaded with ``allow_pickle=False``, FAISS's own format.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
import uuid
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from .errors import IndexCorruptError, IndexIncompatibleError, IndexNotFoundError
from .lexical import BM25Index
from .settings import Settings
from .types import Chunk, CleaningReport, Document, Edit

FORMAT_VERSION = 1
POINTER = "CURRENT"
MANIFEST = "manifest.json"
_KEEP_VERSIONS = 2


@dataclass(frozen=True)
class SourceRecord:
    """One indexed document as the manifest records it."""

    source: str
    sha256: str
    chunks: int
    encoding: str


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

    def to_json(self) -> dict[str, Any]:
        return {
            "format_version": self.format_version,
            "model": self.model,
            "dimension": self.dimension,
            "settings": self.settings.to_dict(),
            "documents": [r.__dict__ for r in self.documents],
            "chunks": self.chunks,
            "visibility": self.visibility,
            "created": self.created,
            "build_seconds": self.build_seconds,
            "files": self.files,
            "versions": self.versions,
        }

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
        )


@dataclass(frozen=True)
class StoredIndex:
    """Everything a loaded index holds."""

    path: Path
    manifest: Manifest
    chunks: tuple[Chunk, ...]
    documents: dict[str, Document]
    vectors: np.ndarray
    faiss_index: Any
    bm25: BM25Index


def library_versions() -> dict[str, str]:
    out: dict[str, str] = {}
    for dist in ("rag", "faiss-cpu", "sentence-transformers", "torch", "bm25s", "jieba", "opencc", "numpy"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return out


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


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


def write_index(
    index_dir: Path,
    *,
    model: str,
    dimension: int,
    settings: Settings,
    documents: list[Document],
    chunks: list[Chunk],
    vectors: np.ndarray,
    bm25: BM25Index,
    visibility: float,
    build_seconds: float,
) -> Path:
    """Write a complete new version and publish it atomically. Returns the version folder."""
    import faiss

    index_dir.mkdir(parents=True, exist_ok=True)
    name = f"v-{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:8]}"
    tmp = index_dir / f".tmp-{name}"
    tmp.mkdir()
    try:
        vec_index = faiss.IndexFlatIP(dimension)
        if len(vectors):
            vec_index.add(np.ascontiguousarray(vectors, dtype=np.float32))
        faiss.write_index(vec_index, str(tmp / "vectors.faiss"))
        with open(tmp / "chunks.jsonl", "w", encoding="utf-8") as f:
            for c in chunks:
                f.write(json.dumps([c.chunk_id, c.source, c.start, c.end, c.text], ensure_ascii=False) + "\n")
        with open(tmp / "documents.jsonl", "w", encoding="utf-8") as f:
            for d in documents:
                f.write(json.dumps(_document_json(d), ensure_ascii=False) + "\n")
        bm25.save(tmp / "bm25")
        files = {
            p.relative_to(tmp).as_posix(): _sha256(p) for p in sorted(tmp.rglob("*")) if p.is_file()
        }
        for p in tmp.rglob("*"):
            if p.is_file():
                _fsync_file(p)
        per_doc: dict[str, int] = {}
        for c in chunks:
            per_doc[c.source] = per_doc.get(c.source, 0) + 1
        manifest = Manifest(
            format_version=FORMAT_VERSION,
            model=model,
            dimension=dimension,
            settings=settings,
            documents=tuple(SourceRecord(d.source, d.sha256, per_doc.get(d.source, 0), d.encoding) for d in documents),
            chunks=len(chunks),
            visibility=visibility,
            created=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            build_seconds=round(build_seconds, 3),
            files=files,
            versions=library_versions(),
        )
        mpath = tmp / MANIFEST
        mpath.write_text(json.dumps(manifest.to_json(), ensure_ascii=False, indent=2), encoding="utf-8")
        _fsync_file(mpath)
        _fsync_dir(tmp)
        final = index_dir / name
        os.replace(tmp, final)
        _fsync_dir(index_dir)
        pointer_tmp = index_dir / f".{POINTER}.{uuid.uuid4().hex[:8]}"
        pointer_tmp.write_text(name + "\n", encoding="utf-8")
        _fsync_file(pointer_tmp)
        os.replace(pointer_tmp, index_dir / POINTER)
        _fsync_dir(index_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _prune(index_dir, keep=name)
    return final


def _versions(index_dir: Path) -> list[Path]:
    return sorted((p for p in index_dir.glob("v-*") if p.is_dir()), key=lambda p: p.name, reverse=True)


def _prune(index_dir: Path, keep: str) -> None:
    """Keep the published version and the one before it; remove older ones and stale temps."""
    kept = 0
    for p in _versions(index_dir):
        if p.name == keep or kept < _KEEP_VERSIONS - 1:
            if p.name != keep:
                kept += 1
            continue
        shutil.rmtree(p, ignore_errors=True)
    for p in index_dir.glob(".tmp-*"):
        shutil.rmtree(p, ignore_errors=True)
    for p in index_dir.glob(f".{POINTER}.*"):
        p.unlink(missing_ok=True)


def current_version(index_dir: Path) -> Path:
    pointer = index_dir / POINTER
    if not index_dir.is_dir():
        raise IndexNotFoundError(f"{index_dir}: no index here (build one with: python -m rag build)")
    if not pointer.is_file():
        if (index_dir / MANIFEST).is_file():
            return index_dir
        raise IndexNotFoundError(f"{index_dir}: no index here (build one with: python -m rag build)")
    name = pointer.read_text(encoding="utf-8").strip()
    version = index_dir / name
    if not name or "/" in name or not version.is_dir():
        raise IndexCorruptError(f"{pointer}: points to a missing version {name!r}")
    return version


def read_manifest(version: Path) -> Manifest:
    mpath = version / MANIFEST
    if not mpath.is_file():
        raise IndexCorruptError(f"{mpath}: manifest missing; the index is incomplete (rebuild needed)")
    try:
        manifest = Manifest.from_json(json.loads(mpath.read_text(encoding="utf-8")))
    except (ValueError, KeyError, TypeError) as exc:
        raise IndexCorruptError(f"{mpath}: unreadable manifest ({exc})") from exc
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
        if _sha256(p) != digest:
            raise IndexCorruptError(f"{p}: checksum mismatch, the file is corrupt or was changed (rebuild needed)")


def load_index(index_dir: Path, *, verify: bool = True) -> StoredIndex:
    """Load the published version, verifying every file against the manifest's checksums."""
    import faiss

    version = current_version(index_dir)
    manifest = read_manifest(version)
    if verify:
        verify_files(version, manifest)
    try:
        faiss_index = faiss.read_index(str(version / "vectors.faiss"))
        chunks = []
        with open(version / "chunks.jsonl", encoding="utf-8") as f:
            for line in f:
                cid, source, start, end, text = json.loads(line)
                chunks.append(Chunk(int(cid), source, int(start), int(end), text))
        documents: dict[str, Document] = {}
        with open(version / "documents.jsonl", encoding="utf-8") as f:
            for line in f:
                doc = _document_from_json(json.loads(line))
                documents[doc.source] = doc
        bm25 = BM25Index.load(version / "bm25", len(chunks))
    except (OSError, ValueError, KeyError, TypeError, RuntimeError) as exc:
        raise IndexCorruptError(f"{version}: cannot read the index ({exc}); rebuild needed") from exc
    if faiss_index.ntotal != len(chunks) or faiss_index.d != manifest.dimension:
        raise IndexCorruptError(
            f"{version}: {faiss_index.ntotal} vectors of dimension {faiss_index.d} for {len(chunks)} chunks "
            f"of dimension {manifest.dimension}; rebuild needed"
        )
    vectors = faiss_index.reconstruct_n(0, faiss_index.ntotal) if faiss_index.ntotal else np.zeros((0, manifest.dimension), np.float32)
    return StoredIndex(version, manifest, tuple(chunks), documents, np.asarray(vectors, dtype=np.float32), faiss_index, bm25)
