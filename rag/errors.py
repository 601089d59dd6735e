"""Typed errors. Every message names the file or value at fault and the reason."""

from __future__ import annotations

import os


class RagError(Exception):
    """Base class of every error :mod:`rag` raises on purpose."""


class DocumentError(RagError):
    """A document could not be read or used."""

    def __init__(self, path: str, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"{path}: {reason}")


class NoDocumentsError(RagError):
    """A build found nothing it could index."""


class IndexError_(RagError):
    """An index is missing, corrupt, or incompatible."""


class IndexNotFoundError(IndexError_):
    pass


class IndexCorruptError(IndexError_):
    pass


class IndexIncompatibleError(IndexError_):
    """The index was built with another model, dimension or format: rebuild needed."""


class IndexLockedError(IndexError_):
    """Another writer holds the index's lock for longer than we were willing to wait."""


class ModelError(RagError):
    """The embedding model could not be loaded."""


class ReaderError(ModelError):
    """The span reader's shipped weights are missing, corrupt or do not fit the encoder."""

    def __init__(self, path: str | os.PathLike[str], reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{path}: {reason}")


class QueryError(RagError):
    """A question or search argument is not usable (empty, too long, bad k)."""


class SourceNotFoundError(RagError):
    """A source asked for is not in the index."""
