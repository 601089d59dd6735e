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


class TextDecodingError(DocumentError):
    """A text file's bytes decode to no coherent text in any encoding the detector knows."""


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


class IndexWriteError(IndexError_):
    """The index folder could not be written (read-only, disk full, no permission, FAISS
    refusing to write). Nothing was published: the index is as it was before."""

    def __init__(self, path: str | os.PathLike[str], reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{path}: cannot write the index: {reason}; the index was not changed")


class ModelError(RagError):
    """The embedding model could not be loaded."""


class ReaderError(ModelError):
    """The span reader's shipped weights are missing, corrupt or do not fit the encoder."""

    def __init__(self, path: str | os.PathLike[str], reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{path}: {reason}")


class ModelWeightsError(ModelError):
    """A model's weight file is not the one expected (checksum) or holds NaN/inf values."""

    def __init__(self, path: str | os.PathLike[str], reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{path}: {reason}")


class ModelMaterializationError(ModelError):
    """The e5 model folder could not be built, read or verified; names the file and the reason."""

    def __init__(self, path: str | os.PathLike[str], reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class ModelConfigError(ModelError, ValueError):
    """A model's configuration describes an architecture rag's plain-torch encoder does not run
    (a ``ValueError`` too, as it was before it was typed)."""


class QueryError(RagError):
    """A question or search argument is not usable (empty, too long, not text, bad k or mode,
    an index folder that is not a path)."""


class SourceNotFoundError(RagError):
    """A source asked for is not in the index."""


class NotAnIndexError(IndexError_):
    """A folder given as an index holds things rag did not write: it is refused, never written into."""


class UnsafeIndexPathError(IndexError_):
    """A name rag writes or locks inside an index (``.lock``, ``CURRENT``, a marker) is a symbolic
    link, a hard link or not a plain file: refused, so that nothing is written through it."""
