"""Text out of HTML, PDF and Word files: the main text only, as one string per document.

Each extractor either returns the document's text or raises :class:`DocumentError` naming the
file and the reason (encrypted, corrupt, image-only, not the format its name says, a
dependency missing). None of them prints: the libraries' own loggers are given a null handler.

* HTML: the main text through ``trafilatura`` (menus, scripts, styles, headers and footers go).
* PDF: the text layer through ``pypdf``; pages are separated by a blank line.
* DOCX: paragraphs and tables of the body, in document order, through ``python-docx``.
"""

from __future__ import annotations

import io
import logging
import zipfile
from collections.abc import Iterator

from .errors import DocumentError

# A .docx is a zip file: refuse one that would expand to more than this many times its size
# (or more than the absolute cap below) before parsing it.
_MAX_EXPANSION = 100
_MAX_EXPANDED_BYTES = 512 * 1024 * 1024

for _name in ("pypdf", "trafilatura", "htmldate", "courlan", "justext", "charset_normalizer"):
    logging.getLogger(_name).addHandler(logging.NullHandler())


def html_main_text(html: str, name: str) -> str:
    """The main text of an HTML page (no navigation, scripts, styles or footers)."""
    try:
        import trafilatura
    except ImportError as exc:
        raise DocumentError(
            name, f"reading HTML needs the trafilatura package, which cannot be imported ({exc}); pip install trafilatura"
        ) from exc
    try:
        text = trafilatura.extract(
            html,
            output_format="txt",
            include_comments=False,
            include_tables=True,
            include_images=False,
            include_links=False,
            with_metadata=False,
            deduplicate=False,
        )
    except Exception as exc:  # noqa: BLE001 - any parser failure is this file's problem alone
        raise DocumentError(name, f"cannot parse the HTML ({exc.__class__.__name__}: {exc})") from exc
    if not text or not text.strip():
        raise DocumentError(name, "no main text found in the HTML page")
    return text


def pdf_text(data: bytes, name: str) -> str:
    """The text layer of a PDF, page by page."""
    try:
        from pypdf import PdfReader
        from pypdf.errors import DependencyError, FileNotDecryptedError, PdfReadError
    except ImportError as exc:
        raise DocumentError(name, f"reading PDF needs the pypdf package, which cannot be imported ({exc}); pip install pypdf") from exc
    if not data.lstrip()[:5].startswith(b"%PDF"):
        raise DocumentError(name, "not a PDF file (no %PDF header)")
    try:
        reader = PdfReader(io.BytesIO(data), strict=False)
        if reader.is_encrypted:
            try:
                opened = reader.decrypt("")
            except DependencyError as exc:
                raise DocumentError(name, f"encrypted PDF that needs the cryptography package to open ({exc})") from exc
            if not opened:
                raise DocumentError(name, "encrypted PDF: a password is needed to read its text")
        pages = [page.extract_text() or "" for page in reader.pages]
    except DocumentError:
        raise
    except FileNotDecryptedError as exc:
        raise DocumentError(name, "encrypted PDF: a password is needed to read its text") from exc
    except PdfReadError as exc:
        raise DocumentError(name, f"corrupt or unreadable PDF ({exc})") from exc
    except Exception as exc:  # noqa: BLE001 - pypdf raises many kinds on damaged files
        raise DocumentError(name, f"corrupt or unreadable PDF ({exc.__class__.__name__}: {exc})") from exc
    if not pages:
        raise DocumentError(name, "PDF has no pages")
    text = "\n\n".join(p.strip() for p in pages if p.strip())
    if not text.strip():
        raise DocumentError(
            name, f"PDF has no text layer on any of its {len(pages)} page(s) (scanned or image-only?); OCR is not supported"
        )
    return text


def docx_text(data: bytes, name: str) -> str:
    """Paragraphs and tables of a Word (.docx) body, in order; table cells separated by tabs."""
    try:
        import docx
    except ImportError as exc:
        raise DocumentError(name, f"reading .docx needs the python-docx package, which cannot be imported ({exc}); pip install python-docx") from exc
    _check_zip(data, name)
    try:
        document = docx.Document(io.BytesIO(data))
        text = "\n".join(_docx_blocks(document))
    except Exception as exc:  # noqa: BLE001 - damaged packages raise many kinds
        raise DocumentError(name, f"corrupt or not a Word .docx file ({exc.__class__.__name__}: {exc})") from exc
    if not text.strip():
        raise DocumentError(name, "the Word document has no text")
    return text


def _check_zip(data: bytes, name: str) -> None:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            infos = z.infolist()
    except (zipfile.BadZipFile, ValueError, OSError) as exc:
        raise DocumentError(name, f"corrupt or not a Word .docx file (not a zip package: {exc})") from exc
    names = {i.filename for i in infos}
    if "word/document.xml" not in names:
        raise DocumentError(name, "not a Word .docx file (no word/document.xml inside)")
    expanded = sum(i.file_size for i in infos)
    if expanded > min(_MAX_EXPANDED_BYTES, max(len(data), 1 << 20) * _MAX_EXPANSION):
        raise DocumentError(name, f"the .docx would expand to {expanded} bytes from {len(data)}; refused as a zip bomb")


def _docx_blocks(document: "object") -> Iterator[str]:
    from docx.table import Table

    for block in document.iter_inner_content():  # type: ignore[attr-defined]
        if isinstance(block, Table):
            yield from _table_rows(block)
        else:
            yield block.text


def _table_rows(table: "object") -> Iterator[str]:
    for row in table.rows:  # type: ignore[attr-defined]
        cells: list[str] = []
        last = None
        for cell in row.cells:
            if cell._tc is last:  # a merged cell repeats in python-docx; keep it once
                continue
            last = cell._tc
            cells.append(" ".join(cell.text.split()))
        line = "\t".join(c for c in cells if c)
        if line:
            yield line
