"""What the index writer (:class:`rag.index.writer.IndexWriter`), :func:`rag.load` and
:func:`rag.index.status.index_status` need from a store: the :class:`Store` protocol.

A store keeps versions of one index and publishes one of them at a time, atomically: a reader
sees the version before a write or the one after, never a mix. The folder store
(:class:`rag.index.folder_store.FolderStore`, over :mod:`rag.index.store`) is one; a database
store (PostgreSQL + pgvector, say) implements the same operations and is handed to
:class:`~rag.index.writer.IndexWriter` in place of a folder.

What flows through it is the store-neutral content of :mod:`rag.index.store`:
:class:`~rag.index.store.IndexContent` in (one complete version), and
:class:`~rag.index.store.StoredIndex` / :class:`~rag.index.store.Manifest` out. Errors are the
:class:`rag.errors.IndexError_` family: :class:`~rag.errors.IndexNotFoundError` when there is no
index, :class:`~rag.errors.IndexCorruptError` / :class:`~rag.errors.IndexIncompatibleError` when
the current version cannot be used, :class:`~rag.errors.IndexLockedError` when another writer
holds the lock too long, :class:`~rag.errors.IndexWriteError` when a write fails (nothing is
published then).
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from rag.index.collection import Collection
    from rag.index.store import IndexContent, Manifest, StoredIndex


@runtime_checkable
class Store(Protocol):
    """One index's versions: read the published one, write and publish a new one."""

    @property
    def location(self) -> str:
        """Where the index is, as messages name it (a folder's path, a database table)."""
        ...

    def exists(self) -> bool:
        """Whether there is anything at :attr:`location` at all (an index may still be unreadable)."""
        ...

    def read(self, *, verify: bool = True, fallback: bool = True, tokens: bool = False) -> StoredIndex:
        """The published version, checked against its checksums with ``verify``. With
        ``fallback``, an unusable published version gives the intact one before it (or, with
        no version marked as published, the newest intact one), and ``StoredIndex.warning``
        says so. ``tokens`` loads the BM25 terms per chunk too (writers reuse them)."""
        ...

    def collection(self, *, verify: bool = True) -> Collection:
        """The published version as the answer path reads it (:mod:`rag.index.collection`):
        loaded whole, or queried where it is stored. Falls back as :meth:`read` does."""
        ...

    def manifest(self) -> tuple[Manifest, str, str | None]:
        """The published version's manifest (its files are not read), the version's name, and
        a warning when no version is marked as published and this is the newest one."""
        ...

    def lock(self, timeout: float | None = None) -> AbstractContextManager[None]:
        """Hold the writer lock (one writer at a time, across processes), waiting up to
        ``timeout`` seconds (``None``: the store's default). Refuses a location that is not
        this store's to write into before anything is written there."""
        ...

    def tidy(self) -> list[str]:
        """Remove what a writer that died mid-write left (with the lock held); returns what went."""
        ...

    def publish(self, content: IndexContent, *, based_on: StoredIndex | None = None) -> str:
        """Write ``content`` as a new version and publish it atomically (with the lock held);
        ``based_on`` is the version it was made from, kept for fallback. Returns where the new
        version is (what :attr:`rag.types.IndexInfo.index_dir` reports)."""
        ...

    def retain(self, current: StoredIndex) -> None:
        """Nothing new to publish: apply retention around ``current`` (with the lock held),
        finishing what a writer killed after publishing left undone."""
        ...


__all__ = ["Store"]
