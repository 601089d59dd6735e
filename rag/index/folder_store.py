"""The index folder as a :class:`rag.index.store_api.Store`: :class:`FolderStore` over the
functions of :mod:`rag.index.store` (layout, crash safety, ownership and retention are theirs)."""

from __future__ import annotations

import os
from contextlib import AbstractContextManager
from pathlib import Path

from rag.index.collection import Collection, MemoryCollection
from rag.index.store import (
    IndexContent,
    Manifest,
    StoredIndex,
    load_index,
    locate_version,
    prune,
    read_manifest,
    tidy,
    write_index,
    writer_lock,
)
from rag.index.store_api import Store


class FolderStore:
    """An index folder (``index/CURRENT``, ``index/v-*``; see :mod:`rag.index.store`)."""

    def __init__(self, folder: str | os.PathLike[str]) -> None:
        self.folder = Path(folder)

    def __repr__(self) -> str:
        return f"FolderStore({str(self.folder)!r})"

    @property
    def location(self) -> str:
        return str(self.folder)

    def exists(self) -> bool:
        return self.folder.is_dir()

    def read(self, *, verify: bool = True, fallback: bool = True, tokens: bool = False) -> StoredIndex:
        return load_index(self.folder, verify=verify, fallback=fallback, tokens=tokens)

    def collection(self, *, verify: bool = True) -> Collection:
        """The published version, loaded whole (:class:`~rag.index.collection.MemoryCollection`)."""
        return MemoryCollection(self.read(verify=verify))

    def manifest(self) -> tuple[Manifest, str, str | None]:
        version, warning = locate_version(self.folder)
        return read_manifest(version), version.name, warning

    def lock(self, timeout: float | None = None) -> AbstractContextManager[None]:
        return writer_lock(self.folder, timeout)

    def tidy(self) -> list[str]:
        return tidy(self.folder)

    def publish(self, content: IndexContent, *, based_on: StoredIndex | None = None) -> str:
        # a legacy single-version index is the folder itself: not a version to keep by name
        name = based_on.path.name if based_on is not None and based_on.path != self.folder else None
        return str(write_index(self.folder, content, based_on=name))

    def retain(self, current: StoredIndex) -> None:
        if current.path != self.folder:  # retention a writer killed while pruning missed
            prune(self.folder, current.path.name)


def open_store(index: str | os.PathLike[str] | Store, *, read_url: str | None = None) -> Store:
    """``index`` itself when it is a :class:`Store`; the :class:`rag.index.pg_store.PgStore` of
    a ``postgresql://`` (or ``postgres://``) URL, reading from ``read_url`` (a read replica)
    when given; else the :class:`FolderStore` of that folder."""
    from rag.errors import QueryError
    from rag.index.pg_schema import is_database_url, masked

    if isinstance(index, Store):
        if read_url is not None:
            raise QueryError("read_url is given together with a store: give it to the store instead")
        return index
    if is_database_url(index):
        if read_url is not None and not is_database_url(read_url):
            raise QueryError(f"read_url must be a postgresql:// URL, not {masked(str(read_url))!r}")
        from rag.index.pg_store import PgStore

        return PgStore(str(index), read_url=read_url)
    if read_url is not None:
        raise QueryError("read_url (a read replica) is for a database index (postgresql://...), not a folder")
    return FolderStore(index)


def index_location(index: str | os.PathLike[str]) -> Path | str:
    """Where an index is, kept in its own form: a ``postgresql://`` / ``postgres://`` URL as
    given (a :class:`~pathlib.Path` would fold its ``//``), anything else as a folder."""
    from rag.index.pg_schema import is_database_url

    if isinstance(index, str) and is_database_url(index):
        return index
    return Path(index)


def shown_location(index: str | os.PathLike[str]) -> str:
    """An index location as messages, results and logs show it: a database URL with any
    password masked (``***``), a folder as its path."""
    from rag.index.pg_schema import is_database_url, masked

    return masked(index) if isinstance(index, str) and is_database_url(index) else str(index)


__all__ = ["FolderStore", "index_location", "open_store", "shown_location"]
