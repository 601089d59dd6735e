"""An index version's manifest (``manifest.json``): what the version holds and how it was made,
and the checks that a version is whole.

The manifest is written last into a version folder: format, model, dimension, settings, counts,
the documents (sha256, duplicates), near-duplicates, the sha256 of every other file, library
versions and the manifest's own digest. :func:`read_manifest` refuses a manifest that does not
verify or is of another format ("rebuild needed"); :func:`verify_files` checks every file.
Documents are stored as JSON lines (:func:`document_to_json`); no pickle anywhere.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from rag.errors import IndexCorruptError, IndexIncompatibleError
from rag.hashing import sha256_file
from rag.index.vectors import AnnRecord
from rag.ingest.neardup import NearDuplicate
from rag.settings import IndexSettings
from rag.types import CleaningReport, Document, Edit

#: 2: Markdown documents are cleaned of their syntax (rag/ingest/clean.py): an index of format 1
#: may hold Markdown as it was written. 3: chunks' BM25 terms are stored as ids into a vocabulary
#: (``terms.npy``, ``term_offsets.npy``, ``vocabulary.json``) instead of strings (``tokens.jsonl``).
#: An index of an older format is rebuilt in full by ``build`` and the start-up sync, and refused
#: ("rebuild needed") by ``load``, ``add`` and ``remove``.
FORMAT_VERSION = 3


MANIFEST = "manifest.json"


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
    #: the approximate vector index and its measured recall (:mod:`rag.index.vectors`); None: exact
    ann: AnnRecord | None = None

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
            "ann": self.ann.to_json() if self.ann else None,
        }
        data["digest"] = manifest_digest(data)
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
            ann=AnnRecord.from_json(data.get("ann")),
        )


def legacy_precision(model: str) -> str:
    """The precision of an index whose manifest predates the record: multilingual-e5-small was
    embedded on its dynamic int8 fast path, every other model in float32."""
    return "int8" if model == "multilingual-e5-small" else "float32"


def manifest_digest(data: dict[str, Any]) -> str:
    body = {k: v for k, v in data.items() if k != "digest"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode("utf-8")).hexdigest()


def library_versions() -> dict[str, str]:
    out: dict[str, str] = {}
    for dist in ("rag", "faiss-cpu", "sentence-transformers", "torch", "bm25s", "jieba", "opencc", "numpy"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return out


def document_to_json(doc: Document) -> dict[str, Any]:
    return {
        "source": doc.source,
        "sha256": doc.sha256,
        "encoding": doc.encoding,
        "text": doc.text,
        "original_chars": doc.report.original_chars,
        "edits": [[e.start, e.end, e.removed, e.replacement, e.reason, e.clean_start] for e in doc.report.edits],
    }


def document_from_json(d: dict[str, Any]) -> Document:
    edits = tuple(Edit(*e) for e in d["edits"])
    report = CleaningReport(d["source"], int(d["original_chars"]), len(d["text"]), edits)
    return Document(d["source"], d["text"], report, d.get("sha256", ""), d.get("encoding", "utf-8"))


def read_manifest(version: Path) -> Manifest:
    mpath = version / MANIFEST
    if not mpath.is_file():
        raise IndexCorruptError(f"{mpath}: manifest missing; the index is incomplete (rebuild needed)")
    try:
        data = json.loads(mpath.read_text(encoding="utf-8"))
        if "digest" in data and data["digest"] != manifest_digest(data):
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
