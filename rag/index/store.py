"""The index on disk: writing a version and publishing it atomically, loading the published one.

Layout of an index folder::

    index/
      .rag-index           marker: written first when rag creates (or adopts) the folder
      CURRENT              name of the published version folder (swapped atomically)
      .lock                writers hold an exclusive flock on it (readers never lock)
      v-<seq>-<time>-<id>/ one complete version; the published one and the one before it are kept
        .rag-version       marker: the first file written into the folder (not in the manifest)
        manifest.json      written last (:mod:`rag.index.manifest`)
        vectors.faiss      normalised vectors, inner-product index (row i is chunk i)
        chunks.jsonl       one chunk a line: id, source, start, end, text, visibility
        documents.jsonl    one cleaned document a line, with its cleaning report
        signatures.npy     MinHash signatures of the documents (near-duplicate detection)
        terms.npy          BM25 term ids of every chunk (int32), so an update refits BM25 without
        term_offsets.npy   re-tokenising: chunk i's are terms[offsets[i]:offsets[i+1]] (int64)
        vocabulary.json    the terms, in id order
        bm25/              bm25s arrays (.npy, no pickle) and vocabulary (.json)

Publishing: a version is written in a ``.tmp-*`` folder (its marker first, every file fsynced,
the manifest last), the folder renamed to its final name, then ``CURRENT`` replaced atomically
and the parent folder synced. A reader therefore sees the old version or the new one, never a
mix. Loading verifies every file against the manifest's checksums; a corrupt published version
is refused, and the previous version is loaded instead when it is intact; when ``CURRENT`` is
missing, the newest intact version is loaded (``StoredIndex.warning`` says which, and why).
After publishing, rag's versions other than the published one and the one before it are
removed, unless ``CURRENT`` was missing or broken before: then every version is kept. What is
rag's in a folder, and what it may remove, is :mod:`rag.index.ownership`'s; writers hold
:func:`rag.index.lock.writer_lock`.

No pickle anywhere: JSON, JSON lines, .npy loaded with ``allow_pickle=False``, FAISS's own format.

Fault injection: a writer calls :func:`fault_point` at each of :data:`FAULT_STEPS`, which calls
:data:`fault_hook` when one is installed; the crash-safety tests and ``benchmarks/bench_faults.py``
install one in a writer process that SIGKILLs it at the step chosen. Nothing is installed
otherwise: then a fault point does nothing.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rag import fs
from rag.hashing import sha256_file
from rag.index import vectors as dense_index
from rag.index.lexical import BM25Index, ChunkTerms
from rag.index.loading import LoadWarning, StoredIndex, current_version, load_index, locate_version
from rag.index.lock import DEFAULT_LOCK_TIMEOUT, writer_lock
from rag.index.manifest import (
    FORMAT_VERSION,
    MANIFEST,
    Manifest,
    SourceRecord,
    document_to_json,
    library_versions,
    read_manifest,
    verify_files,
)
from rag.index.ownership import (
    INDEX_MARKER,
    LOCK,
    POINTER,
    VERSION_MARKER,
    VERSION_MARKER_TEXT,
    claim_index_dir,
    next_name,
    owned_version,
    read_pointer,
    remove_owned,
    remove_temporaries,
    sound_name,
    tidy,
    version_key,
    version_folders,
    write_error,
)
from rag.ingest.neardup import NearDuplicate
from rag.settings import IndexSettings
from rag.types import Chunk, Document

__all__ = [  # the index's public names; the layout's constants and writer lock re-exported from their homes
    "DEFAULT_LOCK_TIMEOUT", "FAULT_STEPS", "FORMAT_VERSION", "INDEX_MARKER", "LOCK", "MANIFEST", "POINTER",
    "VERSION_MARKER", "FaultHook", "IndexContent", "LoadWarning", "Manifest", "SourceRecord", "StoredIndex",
    "claim_index_dir", "current_version", "fault_hook", "fault_point", "kill_at", "load_index", "locate_version",
    "prune", "read_manifest", "tidy", "verify_files", "write_error", "write_index", "writer_lock",
]

#: how many versions retention keeps: the published one and the one before it (for fallback)
_KEEP_VERSIONS = 2

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
    tokens: ChunkTerms
    bm25: BM25Index
    near_duplicates: tuple[NearDuplicate, ...] = ()
    fingerprint: str = ""
    build_seconds: float = 0.0
    precision: str = "float32"


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
    try:
        index_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise write_error(index_dir, exc) from exc
    fault_point("start")
    previous = read_pointer(index_dir)
    name = next_name(index_dir)
    tmp = index_dir / f".tmp-{name}"
    final = index_dir / name
    pointer_tmp = index_dir / f".{POINTER}.{uuid.uuid4().hex[:8]}"
    renamed = published = False
    try:
        tmp.mkdir()
        fault_point("after-temp-folder")
        fs.create_file(tmp / VERSION_MARKER, VERSION_MARKER_TEXT)  # first: the folder is provably rag's
        fault_point("after-marker")
        vec_index, ann = dense_index.build(content.vectors, content.dimension, content.settings)
        _write_faiss(vec_index, tmp / "vectors.faiss", index_dir)
        fault_point("after-faiss")
        vis = content.chunk_visibility
        with open(tmp / "chunks.jsonl", "w", encoding="utf-8") as f:
            for i, c in enumerate(content.chunks):
                f.write(json.dumps([c.chunk_id, c.source, c.start, c.end, c.text, round(float(vis[i]), 6)], ensure_ascii=False) + "\n")
        fault_point("after-chunks")
        with open(tmp / "documents.jsonl", "w", encoding="utf-8") as f:
            for d in content.documents:
                f.write(json.dumps(document_to_json(d), ensure_ascii=False) + "\n")
        fault_point("after-documents")
        np.save(tmp / "signatures.npy", np.ascontiguousarray(content.signatures, dtype=np.uint64), allow_pickle=False)
        fault_point("after-signatures")
        np.save(tmp / "terms.npy", np.ascontiguousarray(content.tokens.ids, dtype=np.int32), allow_pickle=False)
        np.save(tmp / "term_offsets.npy", np.ascontiguousarray(content.tokens.offsets, dtype=np.int64), allow_pickle=False)
        with open(tmp / "vocabulary.json", "w", encoding="utf-8") as f:
            json.dump(list(content.tokens.vocabulary), f, ensure_ascii=False)
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
            ann=ann,
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
    if sound_name(previous) and (index_dir / str(previous)).is_dir():
        prune(index_dir, keep, (previous, based_on))
    else:
        remove_temporaries(index_dir)


def prune(index_dir: Path, published: str, also_keep: Iterable[str | None] = ()) -> list[str]:
    """Retention, once CURRENT names ``published``: keep it, the versions named in
    ``also_keep`` and, when none of those is another existing version, the newest of rag's
    versions before it; remove every other version rag provably wrote (see the module's
    docstring), and its temporaries. Call with the writer lock held. Returns the names removed."""
    keep = {published} | {n for n in also_keep if sound_name(n) and (index_dir / str(n)).is_dir()}
    if len(keep) == 1:
        seq = version_key(published)[0]
        older = [p.name for p in version_folders(index_dir)
                 if p.name != published and version_key(p.name)[0] < seq and owned_version(p)]
        keep.update(older[: _KEEP_VERSIONS - 1])
    removed: list[str] = []
    first = True
    for p in version_folders(index_dir):
        if p.name in keep or not owned_version(p):
            continue
        if first:
            fault_point("during-prune")
            first = False
        if remove_owned(p):
            removed.append(p.name)
    return removed + remove_temporaries(index_dir)
