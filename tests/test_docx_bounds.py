"""A .docx is read within fixed bounds: ``word/document.xml`` is decompressed through a byte
limit (:data:`rag.ingest.extractors.MAX_DOCX_XML_BYTES`) before any XML parser sees it, its declared
size is checked first, and no other part of the package is decompressed at all."""

from __future__ import annotations

import io
import struct
import time
import zipfile
from pathlib import Path

import pytest

from rag.errors import DocumentError
from rag.ingest.extractors import MAX_DOCX_XML_BYTES, docx_text

W = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
BODY = (f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<w:document xmlns:w="{W}"><w:body>'
        "<w:p><w:r><w:t>The library opens at 9 am.</w:t></w:r></w:p></w:body></w:document>")
CONTENT_TYPES = (
    '<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
    '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
    '<Default Extension="xml" ContentType="application/xml"/>'
    '<Override PartName="/word/document.xml" '
    'ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/></Types>'
)
RELS = (
    '<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" '
    'Target="word/document.xml"/></Relationships>'
)


def package(document: bytes, extra: dict[str, bytes] | None = None) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as z:
        z.writestr("[Content_Types].xml", CONTENT_TYPES)
        z.writestr("_rels/.rels", RELS)
        z.writestr("word/document.xml", document)
        for name, data in (extra or {}).items():
            z.writestr(name, data)
    return buf.getvalue()


def padded(total: int) -> bytes:
    """A valid document.xml of exactly ``total`` bytes: one paragraph, then comments of 1 MB
    (cheap to parse, so that a failure to refuse it shows quickly)."""
    head, tail = BODY.encode("utf-8").split(b"</w:body>")
    pad = total - len(head) - len(b"</w:body>" + tail)
    comment = b"<!--" + b"x" * (1024 * 1024 - 7) + b"-->"
    n, rest = divmod(pad, len(comment))
    filler = comment * n + (b"<!--" + b"x" * (rest - 7) + b"-->" if rest >= 7 else b" " * rest)
    out = head + filler + b"</w:body>" + tail
    assert len(out) == total
    return out


def declare_size(data: bytes, member: str, size: int) -> bytes:
    """``data`` with the central directory's uncompressed size of ``member`` set to ``size``."""
    out = bytearray(data)
    name = member.encode("utf-8")
    at = 0
    while True:
        at = out.index(b"PK\x01\x02", at)
        name_len = struct.unpack_from("<H", out, at + 28)[0]
        if out[at + 46:at + 46 + name_len] == name:
            struct.pack_into("<I", out, at + 24, size)
            return bytes(out)
        at += 4


def test_bound_is_fifty_megabytes():
    assert MAX_DOCX_XML_BYTES == 50 * 1024 * 1024


def test_small_docx_still_read():
    assert docx_text(package(BODY.encode("utf-8")), "ok.docx") == "The library opens at 9 am."


def test_document_xml_over_the_bound_refused_before_parsing():
    data = package(padded(MAX_DOCX_XML_BYTES + 1024 * 1024))
    assert len(data) < 200_000  # a small file that would expand 300-fold
    t0 = time.perf_counter()
    with pytest.raises(DocumentError, match=r"bomb\.docx: word/document\.xml .*50 MB") as info:
        docx_text(data, "bomb.docx")
    assert info.value.path == "bomb.docx"
    assert time.perf_counter() - t0 < 10


def test_document_xml_declaring_too_much_refused_early():
    data = declare_size(package(BODY.encode("utf-8")), "word/document.xml", MAX_DOCX_XML_BYTES + 1)
    with pytest.raises(DocumentError, match=r"liar\.docx: word/document\.xml declares .*50 MB"):
        docx_text(data, "liar.docx")


def test_document_xml_declaring_little_but_expanding_more_is_refused():
    big = padded(MAX_DOCX_XML_BYTES + 1024 * 1024)
    data = declare_size(package(big), "word/document.xml", 1000)
    with pytest.raises(DocumentError, match=r"liar\.docx: "):
        docx_text(data, "liar.docx")


def test_document_xml_at_the_bound_is_read():
    data = package(padded(MAX_DOCX_XML_BYTES))
    assert docx_text(data, "edge.docx") == "The library opens at 9 am."


def test_other_parts_are_never_decompressed():
    """A large styles part (or any other) costs nothing: only word/document.xml (and the small
    [Content_Types].xml, for its content type) is decompressed."""
    data = package(BODY.encode("utf-8"), {"word/styles.xml": b"<w:styles/>" + b" " * (30 * 1024 * 1024)})
    opened: list[str] = []
    real_open = zipfile.ZipFile.open

    def spy(self: zipfile.ZipFile, name: str | zipfile.ZipInfo, *args: object, **kwargs: object):
        opened.append(name if isinstance(name, str) else name.filename)
        return real_open(self, name, *args, **kwargs)  # type: ignore[arg-type]

    zipfile.ZipFile.open = spy  # type: ignore[method-assign]
    try:
        assert docx_text(data, "styled.docx") == "The library opens at 9 am."
    finally:
        zipfile.ZipFile.open = real_open  # type: ignore[method-assign]
    assert sorted(opened) == ["[Content_Types].xml", "word/document.xml"]


def test_macro_document_content_type_still_refused():
    data = package(BODY.encode("utf-8"))
    types = CONTENT_TYPES.replace("wordprocessingml.document.main+xml", "wordprocessingml.template.main+xml")
    buf = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(buf, "w") as dst:
        for info in src.infolist():
            dst.writestr(info.filename, types if info.filename == "[Content_Types].xml" else src.read(info))
    with pytest.raises(DocumentError, match=r"tmpl\.docx: .*not a Word"):
        docx_text(buf.getvalue(), "tmpl.docx")


def test_root_that_is_not_a_word_document_refused():
    data = package(b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"/>')
    with pytest.raises(DocumentError, match=r"odd\.docx: .*not a Word"):
        docx_text(data, "odd.docx")


def test_python_docx_document_still_reads(tmp_path: Path):
    import docx

    d = docx.Document()
    d.add_paragraph("First paragraph.")
    t = d.add_table(rows=1, cols=3)
    a, b, c = t.rows[0].cells
    a.merge(b)
    a.text, c.text = "merged", "right"
    d.add_paragraph("Last\tone.")
    d.save(str(tmp_path / "x.docx"))
    assert docx_text((tmp_path / "x.docx").read_bytes(), "x.docx").splitlines() == [
        "First paragraph.", "merged\tright", "Last\tone."]
