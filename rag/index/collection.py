"""What the answer path reads from a published version: the :class:`Collection` protocol.

:func:`rag.load` opens one and hands it to :class:`rag.pipeline.QA`; nothing above it knows
which store it came from. Two implement it:

* :class:`MemoryCollection`: a version read whole into memory (:class:`~rag.index.loading.StoredIndex`,
  the folder store's way: FAISS and bm25s in the process);
* :class:`rag.index.pg_collection.PgCollection`: a version in PostgreSQL, queried per question
  (candidates from the database's postings and HNSW index, documents fetched by source), so
  that a collection of tens of millions of chunks is never loaded.

What it serves is what the readers need besides the hits: documents by source
(:attr:`Collection.documents`, a mapping that may fetch on access), term statistics
(:meth:`Collection.document_frequency`, the chunk count), whether the corpus mentions a name
given in pinyin (:meth:`Collection.mentions`), and the corpus's share of Han letters.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from rag.normalize import cjk_share
from rag.types import Document, Hit

if TYPE_CHECKING:
    from rag.index.embedding import Embedder
    from rag.index.loading import LoadWarning, StoredIndex
    from rag.index.manifest import Manifest
    from rag.settings import IndexSettings


@runtime_checkable
class Searcher(Protocol):
    """Hybrid, lexical or dense search over one collection."""

    def search(self, query: str, k: int = 5, mode: str | None = None,
               settings: "IndexSettings | None" = None) -> list[Hit]:
        ...


@runtime_checkable
class Collection(Protocol):
    """A published version, as the answer path reads it."""

    @property
    def path(self) -> Path:
        """The version's name (a folder store's version folder)."""
        ...

    @property
    def manifest(self) -> "Manifest":
        ...

    @property
    def warning(self) -> "LoadWarning | None":
        """Set when the published version was unusable and an older one is served."""
        ...

    @property
    def documents(self) -> Mapping[str, Document]:
        """Every document by source (iteration: in the version's order)."""
        ...

    @property
    def chunk_count(self) -> int:
        ...

    def document_frequency(self, term: str) -> int:
        """In how many chunks ``term`` (matching form, :func:`rag.index.lexical.tokenize`'s) occurs."""
        ...

    def mentions(self, han: str, written: str) -> bool:
        """Whether some document holds a name: in Han characters matching the regular
        expression ``han`` (character classes and ``|`` only; they hold Simplified and
        Traditional forms), or as ``written`` (any case). For names given in pinyin."""
        ...

    def cjk_share(self) -> float:
        """Share of Han letters in (a sample of) the corpus."""
        ...

    def searcher(self, embedder: "Embedder", settings: "IndexSettings") -> Searcher:
        """Search over this collection, queries embedded with ``embedder``."""
        ...


class MemoryCollection:
    """A version loaded whole (:class:`~rag.index.loading.StoredIndex`): search with FAISS and bm25s in memory."""

    def __init__(self, stored: "StoredIndex") -> None:
        self.stored = stored

    @property
    def path(self) -> Path:
        return self.stored.path

    @property
    def manifest(self) -> "Manifest":
        return self.stored.manifest

    @property
    def warning(self) -> "LoadWarning | None":
        return self.stored.warning

    @property
    def documents(self) -> Mapping[str, Document]:
        return self.stored.documents

    @property
    def chunk_count(self) -> int:
        return len(self.stored.chunks)

    def document_frequency(self, term: str) -> int:
        return self.stored.bm25.document_frequency(term)

    def mentions(self, han: str, written: str) -> bool:
        import re

        return bool(re.search(han, self._folded)) or written.lower() in self._folded

    @cached_property
    def _folded(self) -> str:
        """The whole corpus folded (built on the first question naming someone in pinyin)."""
        from rag.normalize import fold

        return "\n".join(fold(d.text) for d in self.stored.documents.values())

    def cjk_share(self) -> float:
        return corpus_cjk_share(self.stored.documents)

    def searcher(self, embedder: "Embedder", settings: "IndexSettings") -> Searcher:
        from rag.index.retriever import Retriever

        s = self.stored
        return Retriever(s.chunks, s.vectors, s.faiss_index, s.bm25, embedder, settings, s.manifest.visibility)


SAMPLE_CHARS = 200_000


def corpus_cjk_share(documents: Mapping[str, Document], sample_chars: int = SAMPLE_CHARS) -> float:
    """Share of Han letters in the corpus (sampled), to tell cross-language questions."""
    budget = sample_chars
    parts: list[str] = []
    for d in documents.values():
        parts.append(d.text[: max(0, budget)])
        budget -= len(parts[-1])
        if budget <= 0:
            break
    return cjk_share("".join(parts))


__all__ = ["SAMPLE_CHARS", "Collection", "MemoryCollection", "Searcher", "corpus_cjk_share"]
