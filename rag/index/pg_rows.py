"""How a version's parts become PostgreSQL rows and back, and the checksums that prove they
came back whole (:mod:`rag.index.pg_store`).

Each part of a version has a sha256 in its manifest's ``files`` (the folder store keeps one per
file; here one per part): ``chunks`` and ``documents`` over the same JSON lines the folder store
writes, ``vectors`` over the half-precision rows as stored (little-endian), ``terms`` over the
term ids and row offsets, ``vocabulary`` over its JSON list, ``signatures`` over the MinHash rows.
A reader recomputes them from what it read; a mismatch is a corrupt version.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from rag.errors import IndexCorruptError, IndexIncompatibleError
from rag.index.lexical import ChunkTerms
from rag.index.manifest import FORMAT_VERSION, Manifest, document_from_json, document_to_json, manifest_digest
from rag.types import Chunk, Document

#: the parts a version's checksums cover, in the order they are checked
PARTS = ("documents", "chunks", "vocabulary", "terms", "vectors", "signatures")


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def chunk_row(chunk: Chunk, visibility: float | None) -> list[Any]:
    """A chunk as the folder store's ``chunks.jsonl`` line holds it (visibility rounded alike)."""
    row: list[Any] = [chunk.chunk_id, chunk.source, chunk.start, chunk.end, chunk.text]
    if visibility is not None:
        row.append(round(float(visibility), 6))
    return row


def chunks_digest(chunks: Sequence[Chunk], visibility: Sequence[float] | np.ndarray | None) -> str:
    h = hashlib.sha256()
    for i, c in enumerate(chunks):
        vis = None if visibility is None else float(visibility[i])
        h.update((json.dumps(chunk_row(c, vis), ensure_ascii=False) + "\n").encode("utf-8"))
    return h.hexdigest()


def documents_digest(documents: Iterable[Document]) -> str:
    h = hashlib.sha256()
    for d in documents:
        h.update((json.dumps(document_to_json(d), ensure_ascii=False) + "\n").encode("utf-8"))
    return h.hexdigest()


def report_json(doc: Document) -> str:
    """A document's cleaning report as stored (``json``, not ``jsonb``: an edit may have removed
    a NUL character, which ``jsonb`` cannot hold)."""
    data = document_to_json(doc)
    return json.dumps({"original_chars": data["original_chars"], "edits": data["edits"]}, ensure_ascii=False)


def document_of(source: str, sha256: str, encoding: str, text: str, report: Any) -> Document:
    """A document from its row (``report`` as the driver loads ``json``: parsed, or its text)."""
    data = json.loads(report) if isinstance(report, (str, bytes)) else report
    return document_from_json({"source": source, "sha256": sha256, "encoding": encoding, "text": text,
                               "original_chars": data["original_chars"], "edits": data["edits"]})


def half(vectors: np.ndarray) -> np.ndarray:
    """Vectors as ``halfvec`` holds them: float16, little-endian, C order."""
    return np.ascontiguousarray(vectors, dtype="<f2")


def vectors_digest(halves: np.ndarray) -> str:
    return _sha(f"{halves.shape[0]}x{halves.shape[1] if halves.ndim == 2 else 0}:".encode() + half(halves).tobytes())


def terms_digest(terms: ChunkTerms) -> str:
    ids = np.ascontiguousarray(terms.ids, dtype="<i4").tobytes()
    offsets = np.ascontiguousarray(terms.offsets, dtype="<i8").tobytes()
    return _sha(ids + b"|" + offsets)


def vocabulary_digest(vocabulary: Sequence[str]) -> str:
    return _sha(json.dumps(list(vocabulary), ensure_ascii=False).encode("utf-8"))


def signatures_digest(signatures: np.ndarray | None) -> str:
    if signatures is None:
        return ""
    sig = np.ascontiguousarray(signatures, dtype="<u8")
    return _sha(f"{sig.shape}".encode() + sig.tobytes())


def document_frequencies(terms: ChunkTerms) -> np.ndarray:
    """In how many chunks each vocabulary term occurs (the corpus statistic IDF is made from)."""
    size = len(terms.vocabulary)
    if not len(terms.ids) or not size:
        return np.zeros(size, dtype=np.int64)
    rows = np.repeat(np.arange(len(terms), dtype=np.int64), np.diff(terms.offsets))
    pairs = np.unique(rows * size + terms.ids.astype(np.int64))
    return np.bincount(pairs % size, minlength=size)


def term_bytes(ids: np.ndarray) -> bytes:
    """Term (or chunk) ids as ``bytea`` holds them: int32, big-endian (as ``int4send`` writes them)."""
    return np.ascontiguousarray(ids, dtype=">i4").tobytes()


def impact_bytes(impacts: np.ndarray) -> bytes:
    """BM25 impacts as ``rag_postings.impacts`` holds them: float32, big-endian."""
    return np.ascontiguousarray(impacts, dtype=">f4").tobytes()


def ids_of(data: bytes | memoryview) -> np.ndarray:
    """The ids of a :func:`term_bytes` value (native int32)."""
    return np.frombuffer(data, dtype=">i4").astype(np.int32)


def impacts_of(data: bytes | memoryview) -> np.ndarray:
    return np.frombuffer(data, dtype=">f4").astype(np.float32)


def terms_from_rows(rows: Sequence[bytes], vocabulary: Sequence[str]) -> ChunkTerms:
    """Chunks' term ids (``rag_chunks.term_ids``, in chunk order) as :class:`ChunkTerms`."""
    if any(len(r) % 4 for r in rows):
        raise ValueError("a chunk's term ids are not whole int32 values")
    lengths = np.fromiter((len(r) // 4 for r in rows), dtype=np.int64, count=len(rows))
    offsets = np.zeros(len(rows) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    ids = np.frombuffer(b"".join(rows), dtype=">i4").astype(np.int32) if rows else np.zeros(0, np.int32)
    terms = ChunkTerms(ids, offsets, tuple(vocabulary))
    terms.check()
    return terms


def manifest_from_row(data: Any, where: str) -> Manifest:
    """A version's manifest from its ``jsonb``, with the folder store's checks: its digest
    (:class:`IndexCorruptError`), its fields, and the format (:class:`IndexIncompatibleError`:
    "rebuild needed")."""
    try:
        if not isinstance(data, dict):
            data = json.loads(data)
        if data.get("digest") != manifest_digest(data):
            raise IndexCorruptError(f"{where}: manifest checksum mismatch, the row is corrupt or was changed "
                                    "(rebuild needed)")
        manifest = Manifest.from_json(data)
    except IndexCorruptError:
        raise
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise IndexCorruptError(f"{where}: unreadable manifest ({exc}); rebuild needed") from exc
    if manifest.format_version != FORMAT_VERSION:
        raise IndexIncompatibleError(
            f"{where}: index format {manifest.format_version}, this version reads {FORMAT_VERSION}: rebuild needed"
        )
    return manifest


def verify(where: str, manifest: Manifest, found: dict[str, str]) -> None:
    """Compare the checksums recomputed from what was read with the manifest's."""
    for part in PARTS:
        want = manifest.files.get(part)
        if want is None:
            raise IndexCorruptError(f"{where}: the manifest has no checksum for {part} (rebuild needed)")
        if found.get(part) != want:
            raise IndexCorruptError(f"{where}: {part} checksum mismatch, the rows are corrupt or were changed "
                                    "(rebuild needed)")


__all__ = [
    "PARTS", "chunk_row", "chunks_digest", "document_frequencies", "document_of", "documents_digest", "half",
    "ids_of", "impact_bytes", "impacts_of", "term_bytes",
    "manifest_from_row", "report_json", "signatures_digest", "terms_digest", "terms_from_rows", "vectors_digest",
    "verify", "vocabulary_digest",
]
