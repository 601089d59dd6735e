"""From paths to text: which files, which encoding or format, how big.

Plain text (``.txt``, ``.md``) is decoded with its encoding detected, never assumed, and never
lossily: a file that cannot be decoded exactly is refused with its name and the reason. HTML,
PDF and Word files go through :mod:`rag.extractors`. Every refusal is a :class:`DocumentError`
naming the file, so one bad file never stops the others.
"""

from __future__ import annotations

import codecs
import hashlib
import os
import re
import stat
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from charset_normalizer import from_bytes

from . import extractors
from .errors import DocumentError

TEXT_SUFFIXES: tuple[str, ...] = (".txt", ".md")
HTML_SUFFIXES: tuple[str, ...] = (".html", ".htm")
SUPPORTED_SUFFIXES: tuple[str, ...] = TEXT_SUFFIXES + HTML_SUFFIXES + (".pdf", ".docx")

# Encodings we accept as a detector's answer, mapped to the codec we decode with. GB2312 and
# GBK are subsets of GB18030, and Big5 is decoded with Python's big5hkscs superset.
_ACCEPTED = {
    "utf_8": "utf-8",
    "ascii": "utf-8",
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "gb18030": "gb18030",
    "big5": "big5hkscs",
    "big5hkscs": "big5hkscs",
    "cp950": "cp950",
    "utf_16": "utf-16",
    "utf_16_le": "utf-16-le",
    "utf_16_be": "utf-16-be",
}


_CANDIDATES = ("utf_8", "gb18030", "big5", "big5hkscs", "cp950", "utf_16_le", "utf_16_be")


@dataclass(frozen=True)
class RawDocument:
    """A decoded file, before cleaning."""

    source: str
    text: str
    encoding: str
    sha256: str


def source_name(path: Path) -> str:
    """The name a document is known by: its path relative to the working folder if inside it."""
    resolved = path.resolve()
    try:
        return resolved.relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return resolved.as_posix()


def collect_paths(paths: Sequence[str | os.PathLike[str]]) -> tuple[list[Path], list[DocumentError]]:
    """Expand files and folders into the supported files they hold, sorted, without duplicates.

    Returns the files and the problems found (a missing path, a link that leaves its folder,
    an unsupported file named explicitly), so one bad path never stops the others.
    """
    files: list[Path] = []
    problems: list[DocumentError] = []
    seen: set[Path] = set()

    def add(p: Path) -> None:
        rp = p.resolve()
        if rp not in seen:
            seen.add(rp)
            files.append(p)

    for raw in paths:
        p = Path(raw)
        if not p.exists():
            problems.append(DocumentError(str(p), "no such file or folder"))
        elif p.is_dir():
            root = p.resolve()
            links: list[Path] = []
            for child in sorted(p.rglob("*")):
                if any(part.startswith(".") for part in child.relative_to(p).parts):
                    continue
                if child.is_symlink() and not _inside(child.resolve(), root):
                    if child.is_dir() or child.suffix.lower() in SUPPORTED_SUFFIXES:
                        problems.append(DocumentError(str(child), "symbolic link points outside the corpus folder"))
                    continue
                if child.is_dir() or child.suffix.lower() not in SUPPORTED_SUFFIXES:
                    continue
                if child.is_symlink():
                    links.append(child)  # after the real files, so a file is known by its own name
                else:
                    add(child)
            for child in links:
                add(child)
        elif p.suffix.lower() not in SUPPORTED_SUFFIXES:
            problems.append(
                DocumentError(str(p), f"unsupported file type {p.suffix or '(none)'}; supported: {', '.join(SUPPORTED_SUFFIXES)}")
            )
        else:
            add(p)
    return files, problems


def _inside(path: Path, root: Path) -> bool:
    try:
        path.relative_to(root)
        return True
    except ValueError:
        return False


def read_bytes(path: str | os.PathLike[str], *, max_bytes: int, source: str | None = None) -> bytes:
    """The bytes of one regular file, its size checked against ``max_bytes`` before reading."""
    p = Path(path)
    name = source or source_name(p)
    try:
        st = p.stat()
    except OSError as exc:
        raise DocumentError(name, f"cannot read: {exc.strerror or exc}") from exc
    if not stat.S_ISREG(st.st_mode):
        raise DocumentError(name, "not a regular file")
    if st.st_size > max_bytes:
        raise DocumentError(name, f"file is {st.st_size} bytes, over the {max_bytes}-byte limit")
    try:
        with open(p, "rb") as f:
            data = f.read(max_bytes + 1)
    except OSError as exc:
        raise DocumentError(name, f"cannot read: {exc.strerror or exc}") from exc
    if len(data) > max_bytes:
        raise DocumentError(name, f"file grew past the {max_bytes}-byte limit while being read")
    return data


def read_document(path: str | os.PathLike[str], *, max_bytes: int, source: str | None = None) -> RawDocument:
    """Read one file and turn it into text, refusing it with a :class:`DocumentError` when unusable."""
    p = Path(path)
    name = source or source_name(p)
    data = read_bytes(p, max_bytes=max_bytes, source=name)
    return document_from_bytes(data, p.suffix, name)


def document_from_bytes(data: bytes, suffix: str, name: str) -> RawDocument:
    """Text of a file's bytes by its type (``suffix``): decoded text, or extracted HTML, PDF, DOCX."""
    if not data.strip():
        raise DocumentError(name, "file is empty or holds only whitespace")
    kind = suffix.lower()
    if kind in TEXT_SUFFIXES or not kind:
        text, encoding = decode_bytes(data, name)
    elif kind in HTML_SUFFIXES:
        html, charset = decode_html(data, name)
        text, encoding = extractors.html_main_text(html, name), f"html/{charset}"
    elif kind == ".pdf":
        text, encoding = extractors.pdf_text(data, name), "pdf"
    elif kind == ".docx":
        text, encoding = extractors.docx_text(data, name), "docx"
    else:
        raise DocumentError(name, f"unsupported file type {suffix}; supported: {', '.join(SUPPORTED_SUFFIXES)}")
    if not text.strip():
        raise DocumentError(name, "file is empty or holds only whitespace")
    return RawDocument(source=name, text=text, encoding=encoding, sha256=hashlib.sha256(data).hexdigest())


_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_-]+)""", re.IGNORECASE)


def decode_html(data: bytes, name: str) -> tuple[str, str]:
    """Decode an HTML file: by detection like plain text, else by its declared ``<meta charset>``."""
    try:
        return decode_bytes(data, name)
    except DocumentError as detected:
        m = _META_CHARSET.search(data[:4096])
        if not m:
            raise
        declared = m.group(1).decode("ascii").lower().replace("-", "_")
        codec = _ACCEPTED.get(declared, declared)
        try:
            return data.decode(codec), codec
        except LookupError:
            raise DocumentError(name, f"{detected.reason}; its declared charset {declared!r} is unknown") from None
        except UnicodeDecodeError as exc:
            raise DocumentError(name, f"invalid {codec} bytes at offset {exc.start} (the declared charset): {exc.reason}") from exc


def decode_bytes(data: bytes, name: str) -> tuple[str, str]:
    """Decode ``data`` exactly, detecting its encoding. Returns (text, encoding name)."""
    if not data:
        return "", "utf-8"
    for bom, codec in ((codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16")):
        if data.startswith(bom):
            return _strict(data, codec, name), codec
    guessed = _utf16_without_bom(data)
    if guessed:
        text = _strict(data, guessed, name)
        if not _plausible(text):
            raise DocumentError(name, "looks like a binary file, not text")
        return text, guessed
    if b"\x00" in data:
        raise DocumentError(name, "looks like a binary file (it contains NUL bytes), not text")
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    # Only the encodings we support are candidates, so garbage finds no match at all.
    matches = from_bytes(data, cp_isolation=list(_CANDIDATES))
    for match in matches:
        accepted = _ACCEPTED.get(match.encoding.lower().replace("-", "_"))
        if accepted is None:
            continue
        try:
            text = data.decode(accepted)
        except UnicodeDecodeError:
            continue
        if _plausible(text):
            return text, accepted
    raise DocumentError(name, "cannot decode as text: not valid UTF-8, GB18030, Big5 or UTF-16")


def _strict(data: bytes, codec: str, name: str) -> str:
    try:
        return data.decode(codec)
    except UnicodeDecodeError as exc:
        raise DocumentError(name, f"invalid {codec} bytes at offset {exc.start}: {exc.reason}") from exc


def _utf16_without_bom(data: bytes) -> str | None:
    """UTF-16 without a BOM shows NUL bytes in every other position for ASCII-heavy text."""
    if len(data) < 4 or len(data) % 2:
        return None
    even = data[0::2].count(0) / (len(data) / 2)
    odd = data[1::2].count(0) / (len(data) / 2)
    if odd > 0.3 and even < 0.05:
        return "utf-16-le"
    if even > 0.3 and odd < 0.05:
        return "utf-16-be"
    return None


def _plausible(text: str) -> bool:
    """Reject decodes that produce control characters or private-use debris."""
    if not text:
        return False
    bad = sum(
        1 for ch in text
        if (unicodedata.category(ch) == "Cc" and ch not in "\t\n\r\f") or 0xE000 <= ord(ch) <= 0xF8FF or ch in "\ufffe\uffff\ufffd"
    )
    return bad / len(text) < 0.001


def iter_readable(files: Iterable[Path], *, max_bytes: int) -> Iterable[RawDocument | DocumentError]:
    """Read each file, yielding either the document or the error that refused it."""
    for f in files:
        try:
            yield read_document(f, max_bytes=max_bytes)
        except DocumentError as exc:
            yield exc
