"""rag: extractive, cited question answering over Chinese and English documents, offline."""

from __future__ import annotations

from rag.errors import RagError
from rag.index.lifecycle import (
    BuildReport,
    Duplicate,
    IndexStatus,
    add_documents,
    add_texts,
    index_status,
    remove_documents,
    update_index,
)
from rag.ingest.neardup import NearDuplicate
from rag.pipeline import QA, build_index, build_index_from_texts, clean_file, load
from rag.settings import Settings
from rag.index.store import LoadWarning
from rag.types import Answer, Chunk, Citation, CleaningReport, Document, Hit, IndexInfo

__version__ = "0.1.0"

__all__ = [
    "BuildReport",
    "Duplicate",
    "IndexStatus",
    "LoadWarning",
    "NearDuplicate",
    "add_documents",
    "add_texts",
    "index_status",
    "remove_documents",
    "update_index",
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
