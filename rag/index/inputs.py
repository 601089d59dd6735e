"""What an index is built from: paths as the writer takes them (:func:`as_paths`), files and
in-memory texts cleaned into the :class:`rag.types.Document` that citations point into, and the
fingerprint of the code that does it (:func:`pipeline_fingerprint`: when it changes, the writer
re-cleans documents instead of reusing their stored text)."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path
from typing import TypeAlias

from rag.ingest.clean import clean_text, is_markdown
from rag.ingest.loaders import RawDocument
from rag.types import Document

PathArg: TypeAlias = "str | os.PathLike[str]"
Paths: TypeAlias = "str | os.PathLike[str] | Iterable[str | os.PathLike[str]]"
"""What ``paths`` and ``sources`` take: one path (``str`` or ``os.PathLike``), or any iterable of them."""

#: the modules that turn files into chunks and terms (files under ``rag/``)
_FINGERPRINT_MODULES = ("ingest/clean", "normalize", "ingest/chunking", "ingest/loaders", "ingest/extractors",
                        "ingest/neardup", "index/lexical")


@lru_cache(maxsize=1)
def pipeline_fingerprint() -> str:
    """A digest of the code that turns files into chunks: when it changes, files are re-read."""
    h = hashlib.sha256()
    here = Path(__file__).resolve().parents[1]
    for mod in _FINGERPRINT_MODULES:
        try:
            h.update((here / f"{mod}.py").read_bytes())
        except OSError:
            h.update(mod.encode())
    return h.hexdigest()[:16]


def as_paths(paths: object, what: str = "paths") -> list[PathArg]:
    """``paths`` as a list of paths: one path (``str`` or ``os.PathLike``) is a one-element list,
    never iterated character by character; anything else must be an iterable of such paths.
    Other types (``bytes``, ``None``, numbers, an iterable holding them) raise ``TypeError``."""
    items: list[object]
    if isinstance(paths, (str, os.PathLike)):
        items = [paths]
    elif paths is None or isinstance(paths, (bytes, bytearray, memoryview)) or not isinstance(paths, Iterable):
        raise TypeError(f"{what} must be a path (str or os.PathLike) or a sequence of paths, not {type(paths).__name__}")
    else:
        items = list(paths)
    out: list[PathArg] = []
    for item in items:
        if not isinstance(item, (str, os.PathLike)) or not isinstance(os.fspath(item), str):
            raise TypeError(f"{what} must be paths (str or os.PathLike); got {type(item).__name__} {item!r:.80}")
        out.append(item)
    return out


def clean_raw(raw: RawDocument) -> Document:
    """Clean a read file into the :class:`Document` that citations point into (a Markdown file
    without its Markdown syntax)."""
    doc = clean_text(raw.text, raw.source, markdown=is_markdown(raw.source))
    return Document(doc.source, doc.text, doc.report, raw.sha256, raw.encoding)


def text_document(source: str, text: str) -> Document:
    """A cleaned document from in-memory text (its sha256 is that of the UTF-8 text)."""
    doc = clean_text(text, source, markdown=is_markdown(source))
    return Document(doc.source, doc.text, doc.report, hashlib.sha256(text.encode("utf-8")).hexdigest(), "utf-8")


__all__ = ["PathArg", "Paths", "as_paths", "clean_raw", "pipeline_fingerprint", "text_document"]
