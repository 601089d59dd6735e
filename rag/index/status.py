"""How an index compares with the files it should hold: :func:`index_status` (it only reads,
so it needs no lock and never changes the index)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from rag.encoder import precision as rag_precision
from rag.errors import IndexError_
from rag.hashing import sha256_file
from rag.index.exclusions import excluded_sources
from rag.index.folder_store import FolderStore, open_store
from rag.index.store_api import Store
from rag.index.inputs import Paths, as_paths
from rag.index.writer import Duplicate
from rag.ingest.loaders import collect_paths, source_name
from rag.ingest.neardup import NearDuplicate


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
    #: files under ``paths`` taken out on purpose (:mod:`rag.index.exclusions`): not new, and a
    #: sync drops them when they are still indexed (then they are in ``removed`` too)
    excluded: tuple[str, ...] = ()

    @property
    def stale(self) -> bool:
        return not self.exists or bool(self.new or self.changed or self.removed)



def index_status(
    index_dir: str | os.PathLike[str] | Store,
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
    store = open_store(index_dir)
    # a folder as the caller wrote it; a database by its store's location, password masked
    name = str(index_dir) if isinstance(store, FolderStore) and store is not index_dir else store.location
    warning = None
    try:
        if verify:
            stored = store.read()
            manifest, version = stored.manifest, stored.path.name
            warning = stored.warning.message if stored.warning else None
        else:
            manifest, version, warning = store.manifest()
    except IndexError_ as exc:
        return IndexStatus(name, False, None, 0, 0, None, tuple(sorted(on_disk)), (), (), str(exc))
    indexed = {r.source: r.sha256 for r in manifest.documents}
    out = excluded_sources(store.location) if isinstance(store, FolderStore) else frozenset()
    excluded = sorted(s for s in on_disk if s in out)
    new = sorted(s for s in on_disk if s not in indexed and s not in out)
    removed = sorted(s for s in indexed if s not in on_disk or s in out) if paths else []
    changed = sorted(s for s in on_disk if s in indexed and s not in out and _file_sha256(on_disk[s]) != indexed[s])
    return IndexStatus(
        name, True, manifest.model, len(manifest.indexed), manifest.chunks, manifest.created,
        tuple(new), tuple(changed), tuple(removed),
        duplicates=tuple(Duplicate(r.source, r.duplicate_of or "") for r in manifest.duplicates),
        near_duplicates=manifest.near_duplicates,
        version=version,
        warning=warning,
        precision=manifest.precision,
        preferred_precision=rag_precision.choose(),
        excluded=tuple(excluded),
    )


def _file_sha256(path: Path) -> str:
    try:
        return sha256_file(path)
    except OSError:
        return ""


__all__ = ["IndexStatus", "index_status"]
