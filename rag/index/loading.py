"""Loading an index folder: the published version, verified against its manifest, or an
intact earlier one when the published one is broken or ``CURRENT`` is lost.

A version that a concurrent writer removes while it is being read is retried with the newly
published one. Nothing is written here: recovery only chooses what to read, and says so in
:class:`LoadWarning`; the next writer publishes it again (:mod:`rag.index.store`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from rag.errors import IndexCorruptError, IndexError_, IndexIncompatibleError, IndexNotFoundError
from rag.index import vectors as dense_index
from rag.index.lexical import BM25Index, ChunkTerms
from rag.index.manifest import MANIFEST, Manifest, document_from_json, read_manifest, verify_files
from rag.index.ownership import POINTER, read_pointer, sound_name, version_folders, version_key
from rag.types import Chunk, Document


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
    tokens: ChunkTerms | None = None


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
    name = read_pointer(index_dir)
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
    versions = version_folders(index_dir)
    if not any((v / MANIFEST).is_file() for v in versions):
        raise IndexNotFoundError(f"{index_dir}: no index here (build one with: python -m rag build)")
    return versions


def _nothing_intact(index_dir: Path, first: IndexError_ | None) -> IndexError_:
    message = f"{_missing_pointer(index_dir)}, and no version is intact ({first}); rebuild needed"
    if isinstance(first, IndexIncompatibleError):
        return IndexIncompatibleError(message)
    return IndexCorruptError(message)


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
        name = read_pointer(index_dir)
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
            if read_pointer(index_dir) == name:
                break  # not a race with a writer: this version really is broken
    assert failure is not None
    if not fallback:
        raise failure
    current_key = version_key(name) if name and (index_dir / name).is_dir() else None
    for candidate in version_folders(index_dir):
        if candidate.name == name or (current_key is not None and version_key(candidate.name) > current_key):
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
    if not sound_name(name) or not version.is_dir():
        raise IndexCorruptError(f"{index_dir / POINTER}: points to a missing version {name!r}")
    return version


def _load_version(version: Path, verify: bool, with_tokens: bool = False) -> StoredIndex:
    import faiss

    manifest = read_manifest(version)
    if verify:
        verify_files(version, manifest)
    try:
        faiss_index = dense_index.prepare(faiss.read_index(str(version / "vectors.faiss")), manifest.ann)
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
                doc = document_from_json(json.loads(line))
                documents[doc.source] = doc
        sig_path = version / "signatures.npy"
        signatures = np.load(sig_path, allow_pickle=False) if sig_path.is_file() else None
        bm25 = BM25Index.load(version / "bm25", len(chunks))
        token_lists: ChunkTerms | None = None
        if with_tokens and (version / "terms.npy").is_file():
            token_lists = ChunkTerms(np.load(version / "terms.npy", allow_pickle=False),
                                     np.load(version / "term_offsets.npy", allow_pickle=False),
                                     tuple(json.loads((version / "vocabulary.json").read_text(encoding="utf-8"))))
            token_lists.check()
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
