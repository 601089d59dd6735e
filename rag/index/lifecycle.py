"""The index's life: build it, add and remove documents, keep it in step with its files, and
say how it compares with them.

Every change publishes a complete new version (chunk ids are row numbers, renumbered each
time; BM25 is refitted from all chunk texts), but embedding, the expensive part, is done only
for chunk texts the current index does not already hold: their vectors are reused from it when
the model, dimension, format and chunking settings are the same. Unchanged files (same
sha256) are not even read again: their cleaned text comes from the index. The result is the
same index a fresh build of the same documents gives: documents in source order, each content
indexed once (an exact duplicate under another name is recorded, not indexed twice), and
near-duplicates reported.

All writers hold the index's lock (:func:`rag.index.store.writer_lock`) from reading the current
version to publishing the new one, and clean what a crashed writer left before starting.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import TypeAlias

import numpy as np

from rag.ingest.chunking import chunk_document
from rag.ingest.clean import clean_text, restore_original
from rag.encoder import precision as rag_precision
from rag.index.embedding import DEFAULT_MODEL, TEST_HASH, Embedder, canonical_name, load_embedder
from rag.errors import (
    DocumentError,
    IndexCorruptError,
    IndexError_,
    IndexIncompatibleError,
    IndexNotFoundError,
    NoDocumentsError,
    SourceNotFoundError,
)
from rag.hashing import sha256_file
from rag.index.lexical import BM25Index, tokenize
from rag.ingest.loaders import RawDocument, collect_paths, document_from_bytes, read_bytes, source_name
from rag.ingest.neardup import NearDuplicate, Previous, find_near_duplicates, signature
from rag.settings import Settings
from rag.index.store import (
    IndexContent,
    LoadWarning,
    SourceRecord,
    StoredIndex,
    load_index,
    locate_version,
    prune,
    read_manifest,
    tidy,
    write_index,
    writer_lock,
)
from rag.types import Chunk, Document, IndexInfo

Progress = Callable[[str, int, int], None]
"""Progress callback: (stage, done, total). Stages: read, chunk, embed, bm25, write."""

PathArg: TypeAlias = "str | os.PathLike[str]"
Paths: TypeAlias = "str | os.PathLike[str] | Iterable[str | os.PathLike[str]]"
"""What ``paths`` and ``sources`` take: one path (``str`` or ``os.PathLike``), or any iterable of them."""

#: the modules that turn files into chunks and terms (files under ``rag/``)
_FINGERPRINT_MODULES = ("ingest/clean", "normalize", "ingest/chunking", "ingest/loaders", "ingest/extractors",
                        "ingest/neardup", "index/lexical")


@dataclass(frozen=True)
class Duplicate:
    """``source`` has exactly the content (sha256) of ``same_as``, which is indexed in its stead."""

    source: str
    same_as: str


@dataclass(frozen=True)
class BuildReport:
    """What a build, add, update or remove did.

    ``errors`` are the files refused, each with its reason. ``added``/``updated``/``removed``/
    ``unchanged`` compare the documents with the index before. ``embedded_chunks`` were
    embedded now, ``reused_chunks`` took their vectors from the index before; ``full`` is true
    when nothing could be reused. ``published`` is false when nothing changed (the index is
    kept as it is). ``warnings`` say why a full rebuild happened or that a corrupt version
    was passed over.
    """

    info: IndexInfo
    errors: tuple[DocumentError, ...]
    added: tuple[str, ...] = ()
    updated: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    unchanged: tuple[str, ...] = ()
    duplicates: tuple[Duplicate, ...] = ()
    near_duplicates: tuple[NearDuplicate, ...] = ()
    embedded_chunks: int = 0
    reused_chunks: int = 0
    full: bool = True
    published: bool = True
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class IndexStatus:
    """How an index compares with the files it should hold.

    ``exists`` is False when there is no readable index; then every file counts as new.
    ``new``/``changed``/``removed`` are only computed against the ``paths`` given.
    """

    index_dir: str
    exists: bool
    model: str | None
    documents: int
    chunks: int
    created: str | None
    new: tuple[str, ...]
    changed: tuple[str, ...]
    removed: tuple[str, ...]
    problem: str | None = None
    duplicates: tuple[Duplicate, ...] = ()
    near_duplicates: tuple[NearDuplicate, ...] = ()
    version: str | None = None
    warning: str | None = None
    #: the arithmetic the index's vectors were made with, and what this machine would pick for a
    #: new build (:func:`rag.encoder.precision.choose`); a rebuild (``--full``) moves it there
    precision: str | None = None
    preferred_precision: str | None = None

    @property
    def stale(self) -> bool:
        return not self.exists or bool(self.new or self.changed or self.removed)


@dataclass(frozen=True)
class _Plan:
    """What the new version is built with, and what of the old one may be reused."""

    model: str
    settings: Settings
    fingerprint: str
    reuse_vectors: bool
    reuse_documents: bool
    embedder: Embedder | None
    refuse_mismatch: bool = False
    precision: str = "float32"


def _noop(stage: str, done: int, total: int) -> None:
    return None


@lru_cache(maxsize=1)
def pipeline_fingerprint() -> str:
    """A digest of the code that turns files into chunks: when it changes, files are re-read."""
    h = hashlib.sha256()
    here = Path(__file__).resolve().parents[1]
    for mod in _FINGERPRINT_MODULES:
        try:
            h.update((here / f"{mod}.py").read_bytes())
        except OSError:
            h.update(mod.encode())
    return h.hexdigest()[:16]


def as_paths(paths: object, what: str = "paths") -> list[PathArg]:
    """``paths`` as a list of paths: one path (``str`` or ``os.PathLike``) is a one-element list,
    never iterated character by character; anything else must be an iterable of such paths.
    Other types (``bytes``, ``None``, numbers, an iterable holding them) raise ``TypeError``."""
    items: list[object]
    if isinstance(paths, (str, os.PathLike)):
        items = [paths]
    elif paths is None or isinstance(paths, (bytes, bytearray, memoryview)) or not isinstance(paths, Iterable):
        raise TypeError(f"{what} must be a path (str or os.PathLike) or a sequence of paths, not {type(paths).__name__}")
    else:
        items = list(paths)
    out: list[PathArg] = []
    for item in items:
        if not isinstance(item, (str, os.PathLike)) or not isinstance(os.fspath(item), str):
            raise TypeError(f"{what} must be paths (str or os.PathLike); got {type(item).__name__} {item!r:.80}")
        out.append(item)
    return out


def clean_raw(raw: RawDocument) -> Document:
    """Clean a read file into the :class:`Document` that citations point into."""
    doc = clean_text(raw.text, raw.source)
    return Document(doc.source, doc.text, doc.report, raw.sha256, raw.encoding)


def text_document(source: str, text: str) -> Document:
    """A cleaned document from in-memory text (its sha256 is that of the UTF-8 text)."""
    doc = clean_text(text, source)
    return Document(doc.source, doc.text, doc.report, hashlib.sha256(text.encode("utf-8")).hexdigest(), "utf-8")


# ---------------------------------------------------------------- public operations


def update_index(
    paths: Paths,
    index_dir: str | os.PathLike[str] = "index",
    model: str | None = None,
    *,
    settings: Settings | None = None,
    embedder: Embedder | None = None,
    progress: Progress | None = None,
    full: bool = False,
    strict: bool = False,
    lock_timeout: float | None = None,
    precision: str | None = None,
) -> BuildReport:
    """Make the index hold exactly the files under ``paths``: add new ones, re-embed changed
    ones, drop removed ones. Refuses ("rebuild needed") an index built with another model,
    dimension, format or chunking, unless ``full``."""
    return sync_index(paths, index_dir, model, settings=settings, embedder=embedder, progress=progress,
                      full=full, strict=strict, refuse_mismatch=True, lock_timeout=lock_timeout, precision=precision)


def sync_index(
    paths: Paths,
    index_dir: str | os.PathLike[str] = "index",
    model: str | None = None,
    *,
    settings: Settings | None = None,
    embedder: Embedder | None = None,
    progress: Progress | None = None,
    full: bool = False,
    strict: bool = False,
    refuse_mismatch: bool = False,
    lock_timeout: float | None = None,
    precision: str | None = None,
) -> BuildReport:
    """What ``rag build`` does: :func:`update_index`, but an index built with another model or
    chunking is rebuilt in full instead of refused (``refuse_mismatch=False``)."""
    t0 = time.perf_counter()
    paths = as_paths(paths)
    progress = progress or _noop
    index = Path(index_dir)
    with writer_lock(index, lock_timeout):
        tidy(index)
        prev, warnings = _previous(index, required=False)
        plan = _plan(index, prev, model, settings, embedder, full, refuse_mismatch, warnings, precision)
        files, errors = collect_paths(paths)
        if strict and errors:
            raise errors[0]
        known = _known_by_sha(prev) if plan.reuse_documents else {}
        docs, read_errors = _read_files(files, plan.settings, known, progress, strict)
        members = {d.source: d for d in docs}
        return _publish(index, members, plan, prev, errors + read_errors, warnings, progress, t0)


def add_documents(
    paths: Paths,
    index_dir: str | os.PathLike[str] = "index",
    model: str | None = None,
    progress: Progress | None = None,
    *,
    settings: Settings | None = None,
    embedder: Embedder | None = None,
    full: bool = False,
    strict: bool = False,
    lock_timeout: float | None = None,
    precision: str | None = None,
) -> BuildReport:
    """Add the files under ``paths`` to the index (a file already there by name is replaced
    when its content changed). Creates the index when there is none."""
    t0 = time.perf_counter()
    paths = as_paths(paths)
    progress = progress or _noop
    index = Path(index_dir)
    with writer_lock(index, lock_timeout):
        tidy(index)
        prev, warnings = _previous(index, required=False, must_read=True)
        plan = _plan(index, prev, model, settings, embedder, full, True, warnings, precision)
        files, errors = collect_paths(paths)
        if strict and errors:
            raise errors[0]
        members = _members(prev, plan)
        known = _known_by_sha(prev) if plan.reuse_documents else {}
        docs, read_errors = _read_files(files, plan.settings, known, progress, strict)
        members.update((d.source, d) for d in docs)
        return _publish(index, members, plan, prev, errors + read_errors, warnings, progress, t0)


def add_texts(
    items: Iterable[tuple[str, str]],
    index_dir: str | os.PathLike[str] = "index",
    model: str | None = None,
    progress: Progress | None = None,
    *,
    settings: Settings | None = None,
    embedder: Embedder | None = None,
    replace_all: bool = False,
    full: bool = False,
    lock_timeout: float | None = None,
    precision: str | None = None,
) -> BuildReport:
    """Add in-memory (source, text) pairs; with ``replace_all`` the index holds exactly them."""
    t0 = time.perf_counter()
    progress = progress or _noop
    index = Path(index_dir)
    docs = [text_document(s, t) for s, t in items]
    with writer_lock(index, lock_timeout):
        tidy(index)
        prev, warnings = _previous(index, required=False, must_read=not replace_all)
        plan = _plan(index, prev, model, settings, embedder, full, not replace_all, warnings, precision)
        members = {} if replace_all else _members(prev, plan)
        seen: set[str] = set()
        for d in docs:
            if replace_all and d.source in seen:
                continue  # the first text of a name wins, as in a fresh build
            seen.add(d.source)
            members[d.source] = d
        return _publish(index, members, plan, prev, [], warnings, progress, t0)


def remove_documents(
    sources: Paths,
    index_dir: str | os.PathLike[str] = "index",
    *,
    progress: Progress | None = None,
    lock_timeout: float | None = None,
) -> BuildReport:
    """Remove documents by source name (or path, or a folder holding them) from the index.

    Sources not in the index are reported in ``errors``; when none of them is, raises
    :class:`SourceNotFoundError`. Removing every document is refused (the index is kept).
    No model is loaded unless stored data from an older version must be recomputed.
    """
    t0 = time.perf_counter()
    sources = as_paths(sources, "sources")
    progress = progress or _noop
    index = Path(index_dir)
    if not index.is_dir():  # say so before the lock creates the folder
        raise IndexNotFoundError(f"{index}: no index here (build one with: python -m rag build)")
    with writer_lock(index, lock_timeout):
        tidy(index)
        prev, warnings = _previous(index, required=True, must_read=True)
        assert prev is not None
        plan = _plan(index, prev, None, None, None, False, True, warnings)
        members = _members(prev, plan)
        gone, missing = _match_sources(sources, members)
        if not gone:
            raise SourceNotFoundError(f"{', '.join(missing)}: not in the index {index}")
        for s in gone:
            del members[s]
        errors = [DocumentError(m, f"not in the index {index}") for m in missing]
        return _publish(index, members, plan, prev, errors, warnings, progress, t0)


def index_status(
    index_dir: str | os.PathLike[str],
    paths: Paths = (),
    *,
    verify: bool = False,
) -> IndexStatus:
    """Describe the index and compare its manifest (sha256 per source) with the files under
    ``paths``. With ``verify``, every index file is checked against its checksum first. With
    CURRENT missing, the newest version is described and ``warning`` says so."""
    paths = as_paths(paths)
    files, _ = collect_paths(paths) if paths else ([], [])
    on_disk = {source_name(f): f for f in files}
    index = Path(index_dir)
    warning = None
    try:
        if verify:
            stored = load_index(index)
            manifest, version = stored.manifest, stored.path
            warning = stored.warning.message if stored.warning else None
        else:
            version, warning = locate_version(index)
            manifest = read_manifest(version)
    except IndexError_ as exc:
        return IndexStatus(str(index_dir), False, None, 0, 0, None, tuple(sorted(on_disk)), (), (), str(exc))
    indexed = {r.source: r.sha256 for r in manifest.documents}
    new = sorted(s for s in on_disk if s not in indexed)
    removed = sorted(s for s in indexed if s not in on_disk) if paths else []
    changed = sorted(s for s in on_disk if s in indexed and _file_sha256(on_disk[s]) != indexed[s])
    return IndexStatus(
        str(index_dir), True, manifest.model, len(manifest.indexed), manifest.chunks, manifest.created,
        tuple(new), tuple(changed), tuple(removed),
        duplicates=tuple(Duplicate(r.source, r.duplicate_of or "") for r in manifest.duplicates),
        near_duplicates=manifest.near_duplicates,
        version=version.name,
        warning=warning,
        precision=manifest.precision,
        preferred_precision=rag_precision.choose(),
    )


# ---------------------------------------------------------------- steps


def _file_sha256(path: Path) -> str:
    try:
        return sha256_file(path)
    except OSError:
        return ""


def _previous(index: Path, *, required: bool, must_read: bool = False) -> tuple[StoredIndex | None, list[str]]:
    """The current index (or the intact one before it) and warnings about it.

    ``required``: no index raises. ``must_read``: an index that exists but cannot be read
    raises (an add or remove cannot know its documents); otherwise it is rebuilt from scratch.
    """
    warnings: list[str] = []
    try:
        stored = load_index(index, tokens=True)
    except IndexNotFoundError:
        if required:
            raise
        return None, warnings
    except (IndexCorruptError, IndexIncompatibleError) as exc:
        if must_read or required:
            raise type(exc)(f"{exc}; rebuild it from its files with: python -m rag build --full PATH ...") from exc
        warnings.append(f"the current index cannot be used ({exc}); rebuilding from scratch")
        return None, warnings
    if stored.warning is not None:
        warnings.append(stored.warning.message)
    return stored, warnings


def _plan(
    index: Path,
    prev: StoredIndex | None,
    model: str | None,
    settings: Settings | None,
    embedder: Embedder | None,
    full: bool,
    refuse_mismatch: bool,
    warnings: list[str],
    precision: str | None = None,
) -> _Plan:
    """``precision``: what the caller asked for (else ``RAG_PRECISION``); without either an
    index keeps its own (new vectors never mix with others) and a new one takes what this CPU
    runs best (:func:`rag.encoder.precision.choose`)."""
    fingerprint = pipeline_fingerprint()
    asked = getattr(embedder, "precision", "float32") if embedder is not None else rag_precision.requested(precision)
    want = asked or (prev.manifest.precision if prev is not None else rag_precision.choose())
    if embedder is not None:
        name = embedder.name
    elif model is not None:
        name = canonical_name(model)
    else:
        name = prev.manifest.model if prev is not None else DEFAULT_MODEL
    if settings is None:
        settings = prev.manifest.settings if prev is not None else Settings()
    if prev is None:
        return _Plan(name, settings, fingerprint, False, False, embedder, refuse_mismatch, want)
    m = prev.manifest
    reasons = []
    if m.model != name:
        reasons.append(f"model {m.model!r}, not {name!r}")
    if m.precision != want and name != TEST_HASH:
        reasons.append(f"precision {m.precision}, not {want}")
    if embedder is not None and embedder.dimension != m.dimension:
        reasons.append(f"dimension {m.dimension}, not {embedder.dimension}")
    if (m.settings.chunk_chars, m.settings.chunk_overlap) != (settings.chunk_chars, settings.chunk_overlap):
        reasons.append(
            f"chunk_chars={m.settings.chunk_chars}, chunk_overlap={m.settings.chunk_overlap}, "
            f"not {settings.chunk_chars}, {settings.chunk_overlap}"
        )
    if reasons and not full:
        message = f"{index}: the index was built with {'; '.join(reasons)}"
        if refuse_mismatch:
            raise IndexIncompatibleError(f"{message}: rebuild needed (python -m rag build --full, or full=True)")
        warnings.append(f"{message}: rebuilding in full")
    reuse = not full and not reasons
    return _Plan(name, settings, fingerprint, reuse, not full and m.fingerprint == fingerprint, embedder,
                 refuse_mismatch, want)


def _renamed(doc: Document, source: str) -> Document:
    if doc.source == source:
        return doc
    return Document(source, doc.text, replace(doc.report, source=source), doc.sha256, doc.encoding)


def _members(prev: StoredIndex | None, plan: _Plan) -> dict[str, Document]:
    """Every document of the index before, duplicates included; re-cleaned from their
    restored original text when the cleaning code has changed since."""
    if prev is None:
        return {}
    docs: dict[str, Document] = {}
    for source, d in prev.documents.items():
        if not plan.reuse_documents:
            cleaned = clean_text(restore_original(d.text, d.report.edits), source)
            d = Document(source, cleaned.text, cleaned.report, d.sha256, d.encoding)
        docs[source] = d
    for r in prev.manifest.duplicates:
        primary = docs.get(r.duplicate_of or "")
        if primary is not None:
            docs[r.source] = _renamed(primary, r.source)
    return docs


def _known_by_sha(prev: StoredIndex | None) -> dict[str, Document]:
    if prev is None:
        return {}
    return {d.sha256: d for d in prev.documents.values() if d.sha256}


def _read_files(
    files: Sequence[Path],
    settings: Settings,
    known: dict[str, Document],
    progress: Progress,
    strict: bool,
) -> tuple[list[Document], list[DocumentError]]:
    """Read and clean each file; a file whose content the index already holds is not re-read.
    Each failure is one file's: its error is collected and the others go on."""
    docs: list[Document] = []
    errors: list[DocumentError] = []
    for i, f in enumerate(files):
        progress("read", i, len(files))
        name = source_name(f)
        try:
            data = read_bytes(f, max_bytes=settings.max_file_bytes, source=name)
            sha = hashlib.sha256(data).hexdigest()
            if sha in known:
                docs.append(_renamed(known[sha], name))
            else:
                docs.append(clean_raw(document_from_bytes(data, f.suffix, name)))
        except DocumentError as exc:
            if strict:
                raise
            errors.append(exc)
        except Exception as exc:  # noqa: BLE001 - one file's surprise must not stop the batch
            err = DocumentError(name, f"unexpected {exc.__class__.__name__} while reading: {exc}")
            if strict:
                raise err from exc
            errors.append(err)
    progress("read", len(files), len(files))
    return docs, errors


def _match_sources(sources: Sequence[PathArg], members: dict[str, Document]) -> tuple[list[str], list[str]]:
    """Members named by ``sources``: exact source names, paths, or folders holding them."""
    gone: list[str] = []
    missing: list[str] = []
    for raw in sources:
        s = os.fspath(raw)
        candidates = {s, s.rstrip("/")}
        try:
            candidates.add(source_name(Path(s)))
        except (OSError, RuntimeError):
            pass
        hits = [c for c in candidates if c in members]
        if not hits:
            prefixes = tuple(c.rstrip("/") + "/" for c in candidates if c)
            hits = [m for m in members if m.startswith(prefixes)]
        if hits:
            gone.extend(h for h in sorted(set(hits)) if h not in gone)
        else:
            missing.append(s)
    return gone, missing


def _publish(
    index: Path,
    members: dict[str, Document],
    plan: _Plan,
    prev: StoredIndex | None,
    errors: list[DocumentError],
    warnings: list[str],
    progress: Progress,
    t0: float,
) -> BuildReport:
    """Build the new version for ``members`` (reusing what ``plan`` allows) and publish it."""
    before = {s: d.sha256 for s, d in _members(prev, replace(plan, reuse_documents=True)).items()} if prev else {}
    primaries: list[Document] = []
    duplicates: list[SourceRecord] = []
    first: dict[str, Document] = {}
    for source in sorted(members):
        d = members[source]
        if d.sha256 and d.sha256 in first:
            duplicates.append(SourceRecord(source, d.sha256, 0, d.encoding, duplicate_of=first[d.sha256].source))
            continue
        if d.sha256:
            first[d.sha256] = d
        primaries.append(d)
    after = {s: d.sha256 for s, d in members.items()}
    added = tuple(sorted(s for s in after if s not in before))
    updated = tuple(sorted(s for s in after if s in before and before[s] != after[s]))
    removed = tuple(sorted(s for s in before if s not in after))
    unchanged = tuple(sorted(s for s in after if s in before and before[s] == after[s]))
    dups = tuple(Duplicate(r.source, r.duplicate_of or "") for r in duplicates)
    skipped = tuple(e.path for e in errors)

    if (
        prev is not None and plan.reuse_vectors and plan.reuse_documents and not warnings
        and after == before and prev.manifest.settings == plan.settings
        and prev.chunk_visibility is not None and prev.signatures is not None
        and _same_texts(prev, primaries)
    ):
        if prev.path != index:  # nothing to publish: retention a writer killed while pruning missed
            prune(index, prev.path.name)
        m = prev.manifest
        info = IndexInfo(str(prev.path), m.model, m.dimension, len(m.indexed), m.chunks,
                         round(time.perf_counter() - t0, 3), skipped)
        return BuildReport(info, tuple(errors), added, updated, removed, unchanged, dups, m.near_duplicates,
                           embedded_chunks=0, reused_chunks=m.chunks, full=False, published=False)

    chunks: list[Chunk] = []
    for i, d in enumerate(primaries):
        progress("chunk", i, len(primaries))
        chunks.extend(chunk_document(d, chunk_chars=plan.settings.chunk_chars, overlap=plan.settings.chunk_overlap,
                                     first_id=len(chunks)))
    progress("chunk", len(primaries), len(primaries))
    if not chunks:
        kept = " (the current index is kept)" if prev is not None else ""
        raise NoDocumentsError(
            "nothing to index: no readable document with text"
            + (f" (skipped: {', '.join(skipped)})" if skipped else "") + kept
        )
    texts = [c.text for c in chunks]
    vectors, visibility, embedder_name, dimension, embedded, reuse, precision = _vectors(index, texts, plan, prev,
                                                                                         progress)
    if not reuse and plan.reuse_vectors:
        warnings.append(f"{index}: the model gives another dimension than the index; rebuilt in full")
    tokens = _tokens(texts, prev if plan.reuse_documents else None, progress)
    bm25 = _fit_bm25(tokens)
    sigs = _signatures(primaries, prev if plan.reuse_documents else None)
    near = tuple(find_near_duplicates([d.source for d in primaries], [d.text for d in primaries], sigs,
                                      previous=_near_previous(prev) if plan.reuse_documents else None))
    progress("write", 0, 1)
    seconds = time.perf_counter() - t0
    content = IndexContent(
        model=embedder_name,
        dimension=dimension,
        settings=plan.settings,
        documents=tuple(primaries),
        duplicates=tuple(duplicates),
        chunks=tuple(chunks),
        vectors=vectors,
        chunk_visibility=visibility,
        signatures=sigs,
        tokens=tokens,
        bm25=bm25,
        near_duplicates=near,
        fingerprint=plan.fingerprint,
        precision=precision,
        build_seconds=seconds,
    )
    based_on = prev.path.name if prev is not None and prev.path != index else None
    version = write_index(index, content, based_on=based_on)
    progress("write", 1, 1)
    info = IndexInfo(str(version), embedder_name, dimension, len(primaries), len(chunks),
                     round(time.perf_counter() - t0, 3), skipped)
    return BuildReport(info, tuple(errors), added, updated, removed, unchanged, dups, near,
                       embedded_chunks=embedded, reused_chunks=len(chunks) - embedded, full=not reuse,
                       published=True, warnings=tuple(warnings))


def _same_texts(prev: StoredIndex, primaries: list[Document]) -> bool:
    if [d.source for d in primaries] != list(prev.documents):
        return False
    return all(prev.documents[d.source].text == d.text for d in primaries)


def _vectors(
    index: Path, texts: list[str], plan: _Plan, prev: StoredIndex | None, progress: Progress
) -> tuple[np.ndarray, np.ndarray, str, int, int, bool, str]:
    """Vectors and visibilities of ``texts``: reused by exact text from ``prev`` where the plan
    allows, embedded otherwise. Returns (vectors, visibility, model, dimension, embedded, reused,
    precision)."""
    reuse = plan.reuse_vectors and prev is not None
    row_of: dict[str, int] = {}
    if reuse:
        assert prev is not None
        for c in prev.chunks:
            row_of.setdefault(c.text, c.chunk_id)
    unique = list(dict.fromkeys(texts))
    need = [t for t in unique if t not in row_of]
    need_visibility = reuse and prev is not None and prev.chunk_visibility is None
    emb = plan.embedder
    if need or need_visibility or not reuse:
        emb = emb or _embedder(plan.model, plan.settings.batch_size, plan.precision)
        if reuse and prev is not None and emb.dimension != prev.manifest.dimension:
            message = (f"{index}: the index has dimension {prev.manifest.dimension}, model {emb.name!r} "
                       f"gives {emb.dimension}")
            if plan.refuse_mismatch:
                raise IndexIncompatibleError(f"{message}: rebuild needed (python -m rag build --full, or full=True)")
            reuse, row_of, need = False, {}, unique
    if emb is not None:
        name, dim = emb.name, emb.dimension
    else:
        assert prev is not None
        name, dim = prev.manifest.model, prev.manifest.dimension
    new_vec: dict[str, np.ndarray] = {}
    new_vis: dict[str, float] = {}
    if need:
        assert emb is not None
        step = max(1, plan.settings.batch_size * 4)
        for s in range(0, len(need), step):
            progress("embed", s, len(need))
            batch = need[s:s + step]
            vecs = emb.encode(batch, kind="passage")
            vis = emb.visibility(batch)
            for t, v, w in zip(batch, vecs, vis):
                new_vec[t] = v
                new_vis[t] = round(float(w), 6)
        progress("embed", len(need), len(need))
    if need_visibility and reuse:
        assert emb is not None
        old = [t for t in unique if t in row_of]
        for t, w in zip(old, emb.visibility(old)):
            new_vis.setdefault(t, round(float(w), 6))
    vectors = np.zeros((len(texts), dim), dtype=np.float32)
    visibility = np.zeros(len(texts), dtype=np.float64)
    for i, t in enumerate(texts):
        if t in new_vec:
            vectors[i] = new_vec[t]
        else:
            assert prev is not None
            vectors[i] = prev.vectors[row_of[t]]
        if t in new_vis:
            visibility[i] = new_vis[t]
        else:
            assert prev is not None and prev.chunk_visibility is not None
            visibility[i] = prev.chunk_visibility[row_of[t]]
    embedded = sum(1 for t in texts if t in new_vec)
    precision = getattr(emb, "precision", "float32") if emb is not None else plan.precision
    return vectors, visibility, name, dim, embedded, reuse, precision


_EMBEDDERS: dict[tuple[str, int, str], Embedder] = {}
_EMBEDDERS_LOCK = threading.Lock()


def _embedder(model: str, batch_size: int, precision: str) -> Embedder:
    """The model for a build, loaded once per process (a load is 2-5 s: measured as most of a
    small build's time in ``benchmarks/bench_build.py``); the packaged models' weights were
    verified when it was loaded."""
    key = (model, batch_size, precision)
    with _EMBEDDERS_LOCK:
        if key not in _EMBEDDERS:
            _EMBEDDERS[key] = load_embedder(model, batch_size=batch_size, precision=precision)
        return _EMBEDDERS[key]


def _tokens(texts: list[str], prev: StoredIndex | None, progress: Progress) -> tuple[tuple[str, ...], ...]:
    """BM25 terms of each chunk text: from ``prev`` for texts it holds, tokenised otherwise."""
    known: dict[str, tuple[str, ...]] = {}
    if prev is not None and prev.tokens is not None:
        known = {c.text: toks for c, toks in zip(prev.chunks, prev.tokens)}
    out: list[tuple[str, ...]] = []
    for i, t in enumerate(texts):
        if i % 256 == 0:
            progress("bm25", i, len(texts))
        if t not in known:
            known[t] = tuple(tokenize(t))
        out.append(known[t])
    progress("bm25", len(texts), len(texts))
    return tuple(out)


def _fit_bm25(tokens: tuple[tuple[str, ...], ...]) -> BM25Index:
    return BM25Index.fit_tokens(tokens)


def _near_previous(prev: StoredIndex | None) -> Previous | None:
    """The index before and its near-duplicates, so that only what changed is compared again."""
    if prev is None or prev.signatures is None or len(prev.signatures) != len(prev.documents):
        return None
    return Previous(tuple(prev.documents), tuple(d.text for d in prev.documents.values()), prev.signatures,
                    prev.manifest.near_duplicates)


def _signatures(primaries: list[Document], prev: StoredIndex | None) -> np.ndarray:
    known: dict[str, np.ndarray] = {}
    if prev is not None and prev.signatures is not None:
        for row, d in enumerate(prev.documents.values()):
            known[d.text] = prev.signatures[row]
    out = np.empty((len(primaries), len(signature(""))), dtype=np.uint64)
    for i, d in enumerate(primaries):
        out[i] = known[d.text] if d.text in known else signature(d.text)
    return out


__all__ = [
    "BuildReport",
    "Duplicate",
    "IndexStatus",
    "LoadWarning",
    "Progress",
    "add_documents",
    "add_texts",
    "clean_raw",
    "index_status",
    "pipeline_fingerprint",
    "remove_documents",
    "sync_index",
    "text_document",
    "update_index",
]
