"""Text out of HTML, PDF and Word files: the main text only, as one string per document.

Each extractor either returns the document's text or raises :class:`DocumentError` naming the
file and the reason (encrypted, corrupt, image-only, not the format its name says, a
dependency missing). None of them prints: the libraries' own loggers are given a null handler.

* HTML: the main text through ``trafilatura`` (menus, scripts, styles, headers and footers go).
* PDF: the text layer through ``pypdf``; pages are separated by a blank line.
* DOCX: paragraphs and tables of the body, in document order, through ``python-docx``'s XML
  classes. Only ``word/document.xml`` (and the small ``[Content_Types].xml``) is decompressed,
  each through a byte limit (:data:`MAX_DOCX_XML_BYTES`) before any XML parser sees it; the
  package's other parts (styles, images, headers) are never read.
"""

from __future__ import annotations

import io
import logging
import zipfile
import zlib
from collections.abc import Iterator

from rag.errors import DocumentError

# A .docx is a zip file: refuse one that would expand to more than this many times its size
# (or more than the absolute cap below) before parsing it.
_MAX_EXPANSION = 100
_MAX_EXPANDED_BYTES = 512 * 1024 * 1024

MAX_DOCX_XML_BYTES = 50 * 1024 * 1024
"""The most bytes ``word/document.xml`` may expand to (50 MB): it is decompressed in chunks and
refused as soon as it passes this (or when its declared size already does), before it is
parsed. Parsing is what costs: about ten times the XML's size in memory."""

_DOCX_BODY = "word/document.xml"
_DOCX_TYPES = "[Content_Types].xml"
_MAX_DOCX_TYPES_BYTES = 1024 * 1024
_READ_CHUNK = 1024 * 1024
_WML_MAIN = "application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"
_CT_NS = "{http://schemas.openxmlformats.org/package/2006/content-types}"

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
    """Paragraphs and tables of a Word (.docx) body, in order; table cells separated by tabs.

    Only ``word/document.xml`` is parsed, from at most :data:`MAX_DOCX_XML_BYTES` decompressed
    bytes; a larger one is refused (:class:`DocumentError`) before any parser sees it.
    """
    try:
        from docx.document import Document as WordDocument
        from docx.oxml.ns import qn
        from docx.oxml.parser import parse_xml
        from lxml import etree
    except ImportError as exc:
        raise DocumentError(name, f"reading .docx needs the python-docx package, which cannot be imported ({exc}); pip install python-docx") from exc
    xml, content_type = _docx_body(data, name)
    if content_type != _WML_MAIN:
        raise DocumentError(name, f"not a Word .docx file ({_DOCX_BODY} has content type {content_type!r})")
    try:
        root = parse_xml(xml)
    except etree.XMLSyntaxError as exc:
        raise DocumentError(name, f"corrupt or not a Word .docx file ({_DOCX_BODY}: {exc})") from exc
    del xml
    if root.tag != qn("w:document"):
        raise DocumentError(name, f"not a Word .docx file ({_DOCX_BODY} holds no w:document)")
    try:
        # The body needs no other part: no styles, relationships or media are loaded.
        document = WordDocument(root, None)  # type: ignore[arg-type]
        text = "\n".join(_docx_blocks(document))
    except Exception as exc:  # noqa: BLE001 - damaged packages raise many kinds
        raise DocumentError(name, f"corrupt or not a Word .docx file ({exc.__class__.__name__}: {exc})") from exc
    if not text.strip():
        raise DocumentError(name, "the Word document has no text")
    return text


def _docx_body(data: bytes, name: str) -> tuple[bytes, str | None]:
    """The bytes of ``word/document.xml`` (bounded) and its content type in the package."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            infos = z.infolist()
            by_name = {i.filename: i for i in infos}
            body = by_name.get(_DOCX_BODY)
            if body is None:
                raise DocumentError(name, f"not a Word .docx file (no {_DOCX_BODY} inside)")
            expanded = sum(i.file_size for i in infos)
            if expanded > min(_MAX_EXPANDED_BYTES, max(len(data), 1 << 20) * _MAX_EXPANSION):
                raise DocumentError(name, f"the .docx would expand to {expanded} bytes from {len(data)}; refused as a zip bomb")
            types = by_name.get(_DOCX_TYPES)
            if types is None:
                raise DocumentError(name, f"corrupt or not a Word .docx file (no {_DOCX_TYPES} inside)")
            content_type = _content_type(_read_member(z, types, _MAX_DOCX_TYPES_BYTES, name), "/" + _DOCX_BODY, name)
            return _read_member(z, body, MAX_DOCX_XML_BYTES, name), content_type
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, OSError) as exc:
        raise DocumentError(name, f"corrupt or not a Word .docx file (not a zip package: {exc})") from exc


def _read_member(z: zipfile.ZipFile, info: zipfile.ZipInfo, limit: int, name: str) -> bytes:
    """``info``'s decompressed bytes, read in chunks and refused once past ``limit`` (and
    before reading when its declared size already is)."""
    if info.file_size > limit:
        raise DocumentError(name, f"{info.filename} declares {info.file_size} bytes uncompressed, over the "
                                  f"{_size(limit)} limit; refused as a zip bomb")
    chunks: list[bytes] = []
    total = 0
    try:
        with z.open(info) as f:
            while chunk := f.read(_READ_CHUNK):
                total += len(chunk)
                if total > limit:
                    raise DocumentError(name, f"{info.filename} expands past the {_size(limit)} limit; "
                                              "refused as a zip bomb")
                chunks.append(chunk)
    except DocumentError:
        raise
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, RuntimeError, NotImplementedError, ValueError) as exc:
        # RuntimeError: an encrypted member; NotImplementedError: an unknown compression method
        raise DocumentError(name, f"corrupt or not a Word .docx file ({info.filename}: {exc})") from exc
    return b"".join(chunks)


def _content_type(types_xml: bytes, part: str, name: str) -> str | None:
    """The content type ``[Content_Types].xml`` gives ``part`` (an override, else the default
    for its extension; names compare case-insensitively, as in OPC)."""
    from lxml import etree

    try:
        root = etree.fromstring(types_xml, etree.XMLParser(resolve_entities=False, no_network=True))
    except etree.XMLSyntaxError as exc:
        raise DocumentError(name, f"corrupt or not a Word .docx file ({_DOCX_TYPES}: {exc})") from exc
    default = None
    ext = part.rsplit(".", 1)[-1].lower()
    for el in root:
        if el.tag == f"{_CT_NS}Override" and str(el.get("PartName", "")).lower() == part.lower():
            return str(el.get("ContentType"))
        if el.tag == f"{_CT_NS}Default" and str(el.get("Extension", "")).lower() == ext:
            default = str(el.get("ContentType"))
    return default


def _size(n: int) -> str:
    return f"{n // (1024 * 1024)} MB" if n % (1024 * 1024) == 0 else f"{n} bytes"


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
