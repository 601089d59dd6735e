"""rag: extractive, cited question answering over Chinese and English documents, offline."""

from __future__ import annotations

from .errors import RagError
from .pipeline import QA, build_index, build_index_from_texts, clean_file, load
from .settings import Settings
from .types import Answer, Chunk, Citation, CleaningReport, Document, Hit, IndexInfo

__version__ = "0.1.0"

__all__ = [
    "QA",
    "Answer",
    "Chunk",
    "Citation",
    "CleaningReport",
    "Document",
    "Hit",
    "IndexInfo",
    "RagError",
    "Settings",
    "build_index",
    "build_index_from_texts",
    "clean_file",
    "load",
]
