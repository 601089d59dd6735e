"""Checking and saving uploaded documents.

An upload is accepted only when it is a file of a format the engine reads (``.txt``, ``.md``,
``.html``/``.htm``, ``.pdf``, ``.docx``: :data:`rag.ingest.loaders.SUPPORTED_SUFFIXES`) of at most
:data:`MAX_UPLOAD_BYTES` whose text can be read (decoded exactly, or extracted). It is saved under a generated name
(a cleaned-up stem of the user's file name plus a content hash) inside the managed uploads
folder, so that no name the user gives, ``../../x.txt`` included, can choose where it lands.
Every refusal carries its reason in words.
"""

from __future__ import annotations

import hashlib
import os
import re
import unicodedata
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from rag.errors import DocumentError
from rag.ingest.loaders import SUPPORTED_SUFFIXES, document_from_bytes

MAX_UPLOAD_BYTES = 5 * 1024 * 1024
MAX_FILES_PER_BATCH = 20
ALLOWED_SUFFIXES: tuple[str, ...] = SUPPORTED_SUFFIXES
MAX_TRANSFER_BYTES = 4 * MAX_UPLOAD_BYTES
"""What one file may weigh on its way in (Gradio's ``max_file_size``): above the cap, so that a
file over :data:`MAX_UPLOAD_BYTES` reaches :func:`save_uploads` and is refused there with its
reason, in the batch's one message, instead of failing the whole upload in the browser."""
_MAX_STEM_CHARS = 48
_MAX_DISPLAY_CHARS = 120


@dataclass(frozen=True)
class Upload:
    """A file as received: the name the user gave it and where the server holds it now."""

    name: str
    path: Path


@dataclass(frozen=True)
class SavedUpload:
    """An accepted upload and the file it was saved as."""

    name: str
    path: Path
    sha256: str
    encoding: str
    chars: int


@dataclass(frozen=True)
class RefusedUpload:
    """A refused upload and why."""

    name: str
    reason: str


@dataclass(frozen=True)
class UploadBatch:
    saved: tuple[SavedUpload, ...]
    refused: tuple[RefusedUpload, ...]


def display_name(name: str) -> str:
    """The last path component of ``name`` (either separator), without control characters."""
    base = re.split(r"[\\/]", name or "")[-1]
    base = "".join(ch for ch in base if unicodedata.category(ch)[0] != "C").strip()
    if len(base) > _MAX_DISPLAY_CHARS:
        base = base[: _MAX_DISPLAY_CHARS - 1] + "…"
    return base or "(unnamed file)"


def suffix_of(name: str) -> str:
    base = display_name(name)
    i = base.rfind(".")
    return base[i:].lower() if i > 0 else ""


def safe_stem(name: str) -> str:
    """Letters (any script), digits, ``-`` and ``_`` of the file name's stem; never empty,
    never starting with a dot, at most 48 characters."""
    base = unicodedata.normalize("NFKC", display_name(name))
    stem = base[: base.rfind(".")] if base.rfind(".") > 0 else base
    stem = re.sub(r"[^\w\-]+", "_", stem, flags=re.UNICODE)
    stem = re.sub(r"_+", "_", stem).strip("_-.")
    return stem[:_MAX_STEM_CHARS] or "document"


def safe_filename(name: str, sha256: str) -> str:
    """The name an upload is saved as: ``<stem>-<first 10 hex digits of its sha256><suffix>``."""
    suffix = suffix_of(name)
    if suffix not in ALLOWED_SUFFIXES:
        suffix = ".txt"
    return f"{safe_stem(name)}-{sha256[:10]}{suffix}"


def _size_words(n: int) -> str:
    if n >= 1024 * 1024:
        return f"{n / (1024 * 1024):.1f} MB"
    if n >= 1024:
        return f"{n / 1024:.1f} KB"
    return f"{n} bytes"


def check_name_and_size(name: str, size: int, max_bytes: int = MAX_UPLOAD_BYTES) -> str | None:
    """Why a file of this name and size is refused, or ``None`` when both are acceptable."""
    suffix = suffix_of(name)
    if suffix not in ALLOWED_SUFFIXES:
        kind = suffix or "a file without an extension"
        return f"{kind} is not accepted: only {', '.join(ALLOWED_SUFFIXES)} files can be added"
    if size > max_bytes:
        return f"the file is {_size_words(size)}, over the {_size_words(max_bytes)} limit"
    if size == 0:
        return "the file is empty"
    return None


def _inside(path: Path, folder: Path) -> bool:
    try:
        path.resolve().relative_to(folder.resolve())
        return True
    except ValueError:
        return False


def _write_atomically(dest: Path, filename: str, data: bytes) -> Path:
    target = dest / filename
    if target.parent.resolve() != dest.resolve() or not _inside(target, dest):
        raise DocumentError(filename, "refused: the file name would leave the uploads folder")
    tmp = dest / f".upload-{uuid.uuid4().hex}.tmp"
    try:
        with open(tmp, "xb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target


def save_uploads(
    uploads: Sequence[Upload],
    dest: Path,
    *,
    known: Mapping[str, str] | None = None,
    max_bytes: int = MAX_UPLOAD_BYTES,
    max_files: int = MAX_FILES_PER_BATCH,
) -> UploadBatch:
    """Check each upload and save the acceptable ones into ``dest`` under generated names.

    ``known`` maps the sha256 of documents already indexed to their source name, so that the
    same content is not added twice. One bad file never stops the others.
    """
    known = dict(known or {})
    saved: list[SavedUpload] = []
    refused: list[RefusedUpload] = []
    for i, up in enumerate(uploads):
        name = display_name(up.name)
        if i >= max_files:
            refused.append(RefusedUpload(name, f"only {max_files} files can be added at once"))
            continue
        try:
            size = up.path.stat().st_size
        except OSError as exc:
            refused.append(RefusedUpload(name, f"the upload could not be read ({exc.strerror or exc})"))
            continue
        reason = check_name_and_size(name, size, max_bytes)
        if reason:
            refused.append(RefusedUpload(name, reason))
            continue
        try:
            data = up.path.read_bytes()
        except OSError as exc:
            refused.append(RefusedUpload(name, f"the upload could not be read ({exc.strerror or exc})"))
            continue
        if len(data) > max_bytes:
            refused.append(RefusedUpload(name, f"the file is {_size_words(len(data))}, over the {_size_words(max_bytes)} limit"))
            continue
        try:
            raw = document_from_bytes(data, suffix_of(name), name)
        except DocumentError as exc:
            refused.append(RefusedUpload(name, exc.reason))
            continue
        except Exception as exc:  # noqa: BLE001 - an extractor's surprise fails this file alone
            refused.append(RefusedUpload(name, f"the file could not be read ({exc.__class__.__name__}: {exc})"))
            continue
        text, encoding = raw.text, raw.encoding
        if not text.strip():
            refused.append(RefusedUpload(name, "the file is empty or holds only whitespace"))
            continue
        sha = hashlib.sha256(data).hexdigest()
        if sha in known:
            refused.append(RefusedUpload(name, f"the same text is already in the index as {known[sha]}"))
            continue
        dest.mkdir(parents=True, exist_ok=True)
        try:
            path = _write_atomically(dest, safe_filename(name, sha), data)
        except (OSError, DocumentError) as exc:
            refused.append(RefusedUpload(name, f"the file could not be saved ({exc})"))
            continue
        known[sha] = path.name
        saved.append(SavedUpload(name, path, sha, encoding, len(text)))
    return UploadBatch(tuple(saved), tuple(refused))


def remove_saved(batch: UploadBatch) -> None:
    """Undo :func:`save_uploads` (after a failed rebuild)."""
    for s in batch.saved:
        s.path.unlink(missing_ok=True)
