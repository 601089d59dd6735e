"""The one index writer: :class:`IndexWriter` builds an index, keeps it in step with its files,
adds and removes documents. Each of its methods is one transaction: take the store's writer
lock, clean what a crashed writer left, read the current version, plan what may be reused,
read the documents, write the new version and publish it atomically.

Every change publishes a complete new version (chunk ids are row numbers, renumbered each
time; BM25 is refitted from all chunk texts), but embedding, the expensive part, is done only
for chunk texts the current index does not already hold: their vectors are reused from it when
the model, dimension, format and chunking settings are the same (:mod:`rag.index.reuse`).
Unchanged files (same sha256) are not even read again: their cleaned text comes from the index.
The result is the same index a fresh build of the same documents gives: documents in source
order, each content indexed once (an exact duplicate under another name is recorded, not
indexed twice), and near-duplicates reported.

The writer talks to its index through the :class:`rag.index.store_api.Store` protocol: a
folder (:class:`rag.index.folder_store.FolderStore`) unless it is given another store.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

from rag.encoder import precision as rag_precision
from rag.errors import (
    DocumentError,
    IndexCorruptError,
    IndexIncompatibleError,
    IndexNotFoundError,
    NoDocumentsError,
    SourceNotFoundError,
)
from rag.index.embedding import DEFAULT_MODEL, TEST_HASH, Embedder, canonical_name
from rag.index.exclusions import excluded_sources
from rag.index.folder_store import FolderStore, open_store
from rag.index.inputs import PathArg, Paths, as_paths, clean_raw, pipeline_fingerprint, text_document
from rag.index.reuse import (
    BuildPlan,
    chunk_tokens,
    chunk_vectors,
    document_signatures,
    fit_bm25,
    near_previous,
)
from rag.index.store import IndexContent, SourceRecord, StoredIndex
from rag.index.store_api import Store
from rag.ingest.chunking import chunk_document
from rag.ingest.clean import clean_text, restore_original
from rag.ingest.loaders import collect_paths, document_from_bytes, read_bytes, source_name
from rag.ingest.neardup import NearDuplicate, find_near_duplicates
from rag.settings import IndexSettings, Settings, index_settings
from rag.types import Chunk, Document, IndexInfo, Progress


@dataclass(frozen=True)
class Duplicate:
    """``source`` has exactly the content (sha256) of ``same_as``, which is indexed in its stead."""

    source: str
    same_as: str


@dataclass(frozen=True)
class BuildReport:
    """What one :class:`IndexWriter` transaction (a sync, add or remove) did.

    ``errors`` are the files refused, each with its reason. ``added``/``updated``/``removed``/
    ``unchanged`` compare the documents with the index before. ``embedded_chunks`` were
    embedded now, ``reused_chunks`` took their vectors from the index before; ``full`` is true
    when nothing could be reused. ``published`` is false when nothing changed (the index is
    kept as it is). ``warnings`` say why a full rebuild happened or that a corrupt version
    was passed over. ``excluded`` (a sync only) are the files it found that the index's record
    of excluded documents names (:mod:`rag.index.exclusions`): not indexed.
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
    excluded: tuple[str, ...] = ()


def _noop(stage: str, done: int, total: int) -> None:
    return None


# ---------------------------------------------------------------- the writer


class IndexWriter:
    """Writes the index at ``index_dir`` (a folder, or any :class:`rag.index.store_api.Store`).

    The configuration is shared by every transaction: ``model`` and ``settings`` (a
    :class:`rag.IndexSettings`, or a :class:`rag.Settings`, whose ``index`` part is used;
    ``None``: the index's, or the defaults for a new index), ``embedder`` (a loaded model instead of
    ``model``), ``precision`` (:mod:`rag.encoder.precision`: "float32", "bf16", "int8"; default
    ``RAG_PRECISION``, else the index's, else what this CPU runs best; recorded in the manifest),
    ``progress`` (:class:`rag.types.Progress`: stages read, chunk, embed, bm25, write) and
    ``lock_timeout`` (seconds to wait for another writer; default 600).

    Each method is one transaction and returns a :class:`BuildReport`. Writers of one index
    are serialised by the store's lock, across threads and processes; a transaction that fails
    publishes nothing (the index stays as it was).
    """

    def __init__(
        self,
        index_dir: str | os.PathLike[str] | Store = "index",
        *,
        model: str | None = None,
        settings: Settings | IndexSettings | None = None,
        embedder: Embedder | None = None,
        precision: str | None = None,
        progress: Progress | None = None,
        lock_timeout: float | None = None,
    ) -> None:
        self.store: Store = open_store(index_dir)
        self.model = model
        self.settings = index_settings(settings)
        self.embedder = embedder
        self.precision = precision
        self.progress: Progress = progress or _noop
        self.lock_timeout = lock_timeout

    def __repr__(self) -> str:
        return f"IndexWriter({self.store!r}, model={self.model!r})"

    def sync(self, paths: Paths, *, full: bool = False, strict: bool = False,
             refuse_mismatch: bool = False) -> BuildReport:
        """Make the index hold exactly the files under ``paths`` (what ``rag build`` does): add
        new ones, re-embed changed ones, drop removed ones. An index built with another model,
        dimension, precision, format or chunking is rebuilt in full (a warning says why), or,
        with ``refuse_mismatch``, refused ("rebuild needed"); ``full`` re-reads and re-embeds
        everything. Unusable files are skipped with their reason (``errors``); with ``strict``
        the first one raises instead. Files the index's record of excluded documents names
        (:mod:`rag.index.exclusions`, a folder index only) are left out, and dropped from the
        index if it still holds them (``excluded``); an unreadable record raises
        :class:`rag.index.exclusions.ExclusionRecordError` and nothing is written."""
        t0 = time.perf_counter()
        paths = as_paths(paths)
        with self._transaction(full=full, refuse_mismatch=refuse_mismatch, must_read=False) as (prev, warnings, plan):
            files, errors = collect_paths(paths)
            if strict and errors:
                raise errors[0]
            excluded = excluded_sources(self.store.folder) if isinstance(self.store, FolderStore) else frozenset()
            left_out = tuple(name for name in (source_name(f) for f in files) if name in excluded)
            if left_out:
                files = [f for f in files if source_name(f) not in excluded]
            known = _known_by_sha(prev) if plan.reuse_documents else {}
            docs, read_errors = _read_files(files, plan.settings, known, self.progress, strict)
            members = {d.source: d for d in docs}
            report = _publish(self.store, members, plan, prev, errors + read_errors, warnings, self.progress, t0)
            return replace(report, excluded=left_out) if left_out else report

    def add(self, paths: Paths, *, full: bool = False, strict: bool = False) -> BuildReport:
        """Add the files under ``paths`` to the index (a file already there by name is replaced
        when its content changed). Creates the index when there is none; refuses ("rebuild
        needed") an index built with another model, dimension, precision, format or chunking,
        unless ``full``."""
        t0 = time.perf_counter()
        paths = as_paths(paths)
        with self._transaction(full=full, refuse_mismatch=True, must_read=True) as (prev, warnings, plan):
            files, errors = collect_paths(paths)
            if strict and errors:
                raise errors[0]
            members = _members(prev, plan)
            known = _known_by_sha(prev) if plan.reuse_documents else {}
            docs, read_errors = _read_files(files, plan.settings, known, self.progress, strict)
            members.update((d.source, d) for d in docs)
            return _publish(self.store, members, plan, prev, errors + read_errors, warnings, self.progress, t0)

    def add_texts(self, items: Iterable[tuple[str, str]], *, replace_all: bool = False,
                  full: bool = False) -> BuildReport:
        """Add in-memory (source, text) pairs, as :meth:`add` adds files. With ``replace_all``
        the index holds exactly them (the first text of a name wins), as :meth:`sync` does."""
        t0 = time.perf_counter()
        docs = [text_document(s, t) for s, t in items]
        with self._transaction(full=full, refuse_mismatch=not replace_all,
                               must_read=not replace_all) as (prev, warnings, plan):
            members = {} if replace_all else _members(prev, plan)
            seen: set[str] = set()
            for d in docs:
                if replace_all and d.source in seen:
                    continue  # the first text of a name wins, as in a fresh build
                seen.add(d.source)
                members[d.source] = d
            return _publish(self.store, members, plan, prev, [], warnings, self.progress, t0)

    def remove(self, sources: Paths) -> BuildReport:
        """Remove documents by source name (or path, or a folder holding them) from the index.

        Sources not in the index are reported in ``errors``; when none of them is, raises
        :class:`SourceNotFoundError`. Removing every document is refused (the index is kept).
        No model is loaded unless stored data from an older version must be recomputed; a
        model, settings or precision the writer was given must be the index's ("rebuild needed").
        """
        t0 = time.perf_counter()
        sources = as_paths(sources, "sources")
        if not self.store.exists():  # say so before the lock creates the folder
            raise IndexNotFoundError(f"{self.store.location}: no index here (build one with: python -m rag build)")
        with self._transaction(full=False, refuse_mismatch=True, must_read=True,
                               required=True) as (prev, warnings, plan):
            members = _members(prev, plan)
            gone, missing = _match_sources(sources, members)
            if not gone:
                raise SourceNotFoundError(f"{', '.join(missing)}: not in the index {self.store.location}")
            for s in gone:
                del members[s]
            errors = [DocumentError(m, f"not in the index {self.store.location}") for m in missing]
            return _publish(self.store, members, plan, prev, errors, warnings, self.progress, t0)

    @contextmanager
    def _transaction(
        self, *, full: bool, refuse_mismatch: bool, must_read: bool, required: bool = False
    ) -> Iterator[tuple[StoredIndex | None, list[str], BuildPlan]]:
        """Hold the lock; clean what a crashed writer left; read the current version (``prev``)
        and plan the new one. Yields (prev, warnings, plan)."""
        with self.store.lock(self.lock_timeout):
            self.store.tidy()
            prev, warnings = _previous(self.store, required=required, must_read=must_read)
            plan = _plan(self.store.location, prev, self.model, self.settings, self.embedder, full, refuse_mismatch,
                         warnings, self.precision)
            yield prev, warnings, plan


# ---------------------------------------------------------------- steps


def _previous(store: Store, *, required: bool, must_read: bool = False) -> tuple[StoredIndex | None, list[str]]:
    """The current index (or the intact one before it) and warnings about it.

    ``required``: no index raises. ``must_read``: an index that exists but cannot be read
    raises (an add or remove cannot know its documents); otherwise it is rebuilt from scratch.
    """
    warnings: list[str] = []
    try:
        stored = store.read(tokens=True)
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
    location: str,
    prev: StoredIndex | None,
    model: str | None,
    settings: IndexSettings | None,
    embedder: Embedder | None,
    full: bool,
    refuse_mismatch: bool,
    warnings: list[str],
    precision: str | None = None,
) -> BuildPlan:
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
        settings = prev.manifest.settings if prev is not None else IndexSettings()
    if prev is None:
        return BuildPlan(name, settings, fingerprint, False, False, embedder, refuse_mismatch, want)
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
        message = f"{location}: the index was built with {'; '.join(reasons)}"
        if refuse_mismatch:
            raise IndexIncompatibleError(f"{message}: rebuild needed (python -m rag build --full, or full=True)")
        warnings.append(f"{message}: rebuilding in full")
    reuse = not full and not reasons
    return BuildPlan(name, settings, fingerprint, reuse, not full and m.fingerprint == fingerprint, embedder,
                 refuse_mismatch, want)


def _renamed(doc: Document, source: str) -> Document:
    if doc.source == source:
        return doc
    return Document(source, doc.text, replace(doc.report, source=source), doc.sha256, doc.encoding)


def _members(prev: StoredIndex | None, plan: BuildPlan) -> dict[str, Document]:
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
    settings: IndexSettings,
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
    store: Store,
    members: dict[str, Document],
    plan: BuildPlan,
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
        store.retain(prev)  # nothing to publish: retention a writer killed while pruning missed
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
    vec = chunk_vectors(store.location, texts, plan, prev, progress)
    if not vec.reused and plan.reuse_vectors:
        warnings.append(f"{store.location}: the model gives another dimension than the index; rebuilt in full")
    tokens = chunk_tokens(texts, prev if plan.reuse_documents else None, progress)
    bm25 = fit_bm25(tokens)
    sigs = document_signatures(primaries, prev if plan.reuse_documents else None)
    near = tuple(find_near_duplicates([d.source for d in primaries], [d.text for d in primaries], sigs,
                                      previous=near_previous(prev) if plan.reuse_documents else None))
    progress("write", 0, 1)
    seconds = time.perf_counter() - t0
    content = IndexContent(
        model=vec.model,
        dimension=vec.dimension,
        settings=plan.settings,
        documents=tuple(primaries),
        duplicates=tuple(duplicates),
        chunks=tuple(chunks),
        vectors=vec.vectors,
        chunk_visibility=vec.visibility,
        signatures=sigs,
        tokens=tokens,
        bm25=bm25,
        near_duplicates=near,
        fingerprint=plan.fingerprint,
        precision=vec.precision,
        build_seconds=seconds,
    )
    version = store.publish(content, based_on=prev)
    progress("write", 1, 1)
    info = IndexInfo(version, vec.model, vec.dimension, len(primaries), len(chunks),
                     round(time.perf_counter() - t0, 3), skipped)
    return BuildReport(info, tuple(errors), added, updated, removed, unchanged, dups, near,
                       embedded_chunks=vec.embedded, reused_chunks=len(chunks) - vec.embedded, full=not vec.reused,
                       published=True, warnings=tuple(warnings))


def _same_texts(prev: StoredIndex, primaries: list[Document]) -> bool:
    if [d.source for d in primaries] != list(prev.documents):
        return False
    return all(prev.documents[d.source].text == d.text for d in primaries)


__all__ = ["BuildReport", "Duplicate", "IndexWriter"]
