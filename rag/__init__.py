"""rag: extractive, cited question answering over Chinese and English documents, offline."""

from __future__ import annotations

from rag.errors import RagError
from rag.index.status import IndexStatus, index_status
from rag.index.writer import BuildReport, Duplicate, IndexWriter
from rag.ingest.neardup import NearDuplicate
from rag.pipeline import QA, build_index, clean_file, load
from rag.settings import IndexSettings, Settings
from rag.index.store import LoadWarning
from rag.types import Answer, Chunk, Citation, CleaningReport, Document, Hit, IndexInfo, Progress

__version__ = "0.1.0"

__all__ = [
    "BuildReport",
    "Duplicate",
    "IndexSettings",
    "IndexStatus",
    "IndexWriter",
    "LoadWarning",
    "NearDuplicate",
    "index_status",
    "QA",
    "Answer",
    "Chunk",
    "Citation",
    "CleaningReport",
    "Document",
    "Hit",
    "IndexInfo",
    "Progress",
    "RagError",
    "Settings",
    "build_index",
    "clean_file",
    "load",
]
