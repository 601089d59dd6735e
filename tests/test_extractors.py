"""HTML, PDF and DOCX extraction: main text only, citations into the cleaned extracted text,
and one clear message for each way a file can be unusable."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import pytest

import rag
from rag.errors import DocumentError
from rag.ingest.extractors import docx_text, html_main_text, pdf_text
from rag.ingest.loaders import read_document

HTML = """<!DOCTYPE html><html><head><meta charset="utf-8"><title>新聞</title>
<script>var tracker = "前三季度 script text must not appear";</script><style>p { color: red }</style></head>
<body><nav><ul><li><a href="/">首頁</a></li><li><a href="/news">新聞中心</a></li><li><a href="/sport">體育頻道</a></li></ul></nav>
<header><div class="menu">網站導航 登錄 註冊</div></header>
<article><h1>前三季度工業增長</h1>
<p>前三季度，全國規模以上工業增加值同比增長5.8%，比上半年加快0.2個百分點。這是國家統計局今天發布的數據。</p>
<p>工業投資連續八個月保持兩位數增長，高技術製造業增加值增長較快，成為拉動增長的主要力量。</p>
<p>The city library opens at 9 am and closes at 6 pm on weekdays, the report added.</p></article>
<footer><p>版權所有 © 2024 某某新聞網 聯繫我們 隱私政策 網站地圖</p></footer></body></html>"""


def make_pdf(pages: list[list[str]]) -> bytes:
    """A minimal PDF whose text layer holds ``pages`` (lists of lines; an empty list is a page
    with only a drawn rectangle). CJK works: a Type0 font with Identity-H codes and a ToUnicode
    map, no glyphs embedded."""
    chars = sorted({ch for page in pages for line in page for ch in line})
    code = {ch: i + 1 for i, ch in enumerate(chars)}
    entries = [f"<{code[ch]:04X}> <{ch.encode('utf-16-be').hex().upper()}>" for ch in chars]
    blocks = [f"{len(entries[i:i + 100])} beginbfchar\n" + "\n".join(entries[i:i + 100]) + "\nendbfchar"
              for i in range(0, len(entries), 100)]
    cmap = (
        "/CIDInit /ProcSet findresource begin\n12 dict begin\nbegincmap\n"
        "/CIDSystemInfo << /Registry (Adobe) /Ordering (UCS) /Supplement 0 >> def\n"
        "/CMapName /Adobe-Identity-UCS def\n/CMapType 2 def\n1 begincodespacerange\n<0000> <FFFF>\nendcodespacerange\n"
        + "\n".join(blocks) + "\nendcmap\nCMapName currentdict /CMap defineresource pop\nend\nend\n"
    ).encode("ascii")
    page_ids = [7 + 2 * i for i in range(len(pages))]
    objs = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        f"<< /Type /Pages /Kids [{' '.join(f'{p} 0 R' for p in page_ids)}] /Count {len(pages)} >>".encode(),
        b"<< /Type /Font /Subtype /Type0 /BaseFont /SimSun /Encoding /Identity-H /DescendantFonts [4 0 R] /ToUnicode 6 0 R >>",
        b"<< /Type /Font /Subtype /CIDFontType2 /BaseFont /SimSun /CIDSystemInfo << /Registry (Adobe) /Ordering (Identity)"
        b" /Supplement 0 >> /FontDescriptor 5 0 R /DW 1000 >>",
        b"<< /Type /FontDescriptor /FontName /SimSun /Flags 4 /FontBBox [0 -200 1000 900] /ItalicAngle 0 /Ascent 900"
        b" /Descent -200 /CapHeight 700 /StemV 80 >>",
        b"<< /Length %d >>\nstream\n" % len(cmap) + cmap + b"\nendstream",
    ]
    for i, lines in enumerate(pages):
        ops = ["BT", "/F1 12 Tf", "14 TL", "50 780 Td"]
        ops += ["<" + "".join(f"{code[ch]:04X}" for ch in line) + "> Tj T*" for line in lines]
        ops.append("ET")
        stream = "\n".join(ops if lines else ["0 0 1 rg", "50 50 200 200 re f"]).encode("ascii")
        objs.append(f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Resources << /Font << /F1 3 0 R >> >>"
                    f" /Contents {page_ids[i] + 1} 0 R >>".encode())
        objs.append(b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream")
    out = bytearray(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for num, body in enumerate(objs, start=1):
        offsets.append(len(out))
        out += f"{num} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objs) + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{off:010d} 00000 n \n".encode() for off in offsets)
    out += f"trailer\n<< /Size {len(objs) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return bytes(out)


PDF_PAGES = [["前三季度規模以上工業增加值同比增長5.8%。", "數據顯示，增長較快。"], ["The library opens at 9 am on weekdays."]]


def make_docx(path: Path) -> None:
    import docx

    d = docx.Document()
    d.add_heading("年度報告", level=1)
    d.add_paragraph("前三季度規模以上工業增加值同比增長5.8%。")
    table = d.add_table(rows=2, cols=2)
    table.cell(0, 0).text, table.cell(0, 1).text = "指標", "增長"
    table.cell(1, 0).text, table.cell(1, 1).text = "工業投資", "兩位數"
    d.add_paragraph("The library opens at 9 am.")
    d.save(str(path))


# ---------------------------------------------------------------- HTML


def test_html_main_text_only():
    text = html_main_text(HTML, "page.html")
    assert "同比增長5.8%" in text and "The city library opens at 9 am" in text
    for junk in ("script text", "color: red", "體育頻道", "網站導航", "版權所有", "隱私政策"):
        assert junk not in text


def test_html_file_through_loader_and_index(tmp_path: Path):
    (tmp_path / "page.html").write_text(HTML, encoding="utf-8")
    raw = read_document(tmp_path / "page.html", max_bytes=1 << 20)
    assert raw.encoding == "html/utf-8" and "高技術製造業" in raw.text
    info = rag.build_index([tmp_path], index_dir=tmp_path / "idx", model="test-hash")
    assert info.documents == 1
    qa = rag.load(tmp_path / "idx")
    ans = qa.ask("前三季度规模以上工业增加值同比增长多少？")
    assert ans.found and ans.span == "5.8%"
    for c in ans.citations:
        assert qa.document(c.source).text[c.start:c.end] == c.quote
    assert "script" not in qa.document(c.source).text


def test_html_declared_charset_when_detection_fails(tmp_path: Path):
    page = ('<html><head><meta charset="windows-1252"></head><body><article><p>Caf\xe9 opens at 9 am every day, '
            'and the menu changes every season according to the chef.</p></article></body></html>')
    (tmp_path / "cafe.htm").write_bytes(page.encode("cp1252"))
    raw = read_document(tmp_path / "cafe.htm", max_bytes=1 << 20)
    assert "Café opens at 9 am" in raw.text


def test_html_without_main_text_refused():
    with pytest.raises(DocumentError, match="empty.html: no main text"):
        html_main_text("<html><head><script>x=1</script></head><body></body></html>", "empty.html")


def test_html_extractor_missing_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "trafilatura", None)
    with pytest.raises(DocumentError, match="page.html: reading HTML needs the trafilatura package"):
        html_main_text(HTML, "page.html")


# ---------------------------------------------------------------- PDF


def test_pdf_text_layer_cjk_and_pages():
    text = pdf_text(make_pdf(PDF_PAGES), "report.pdf")
    assert "前三季度規模以上工業增加值同比增長5.8%。" in text
    assert "The library opens at 9 am" in text
    assert text.index("增長較快") < text.index("library")


def test_pdf_through_index_with_citations(tmp_path: Path):
    (tmp_path / "report.pdf").write_bytes(make_pdf(PDF_PAGES))
    rag.build_index([tmp_path], index_dir=tmp_path / "idx", model="test-hash")
    qa = rag.load(tmp_path / "idx")
    ans = qa.ask("前三季度规模以上工业增加值同比增长多少？")
    assert ans.found and ans.span == "5.8%"
    c = ans.citations[0]
    assert qa.document(c.source).text[c.start:c.end] == c.quote
    assert qa.document(c.source).encoding == "pdf"


def test_encrypted_pdf_refused(tmp_path: Path):
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter()
    for page in PdfReader(io.BytesIO(make_pdf(PDF_PAGES))).pages:
        writer.add_page(page)
    writer.encrypt(user_password="secret", owner_password="owner", algorithm="AES-128")
    buf = io.BytesIO()
    writer.write(buf)
    with pytest.raises(DocumentError, match="locked.pdf: encrypted PDF: a password is needed"):
        pdf_text(buf.getvalue(), "locked.pdf")


def test_pdf_with_empty_user_password_is_read():
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter()
    for page in PdfReader(io.BytesIO(make_pdf(PDF_PAGES))).pages:
        writer.add_page(page)
    writer.encrypt(user_password="", owner_password="owner", algorithm="AES-128")
    buf = io.BytesIO()
    writer.write(buf)
    assert "同比增長5.8%" in pdf_text(buf.getvalue(), "permissions.pdf")


@pytest.mark.parametrize("data", [b"%PDF-1.4\n" + bytes(range(256)) * 8, b"%PDF-1.7\n1 0 obj << /Type /Catalog", b"%PDF-"])
def test_corrupt_pdf_refused(data: bytes):
    with pytest.raises(DocumentError, match="broken.pdf: (corrupt or unreadable PDF|PDF has no pages)"):
        pdf_text(data, "broken.pdf")


def test_image_only_pdf_refused():
    with pytest.raises(DocumentError, match="scan.pdf: PDF has no text layer on any of its 2 page"):
        pdf_text(make_pdf([[], []]), "scan.pdf")


def test_not_a_pdf_refused():
    with pytest.raises(DocumentError, match="notes.pdf: not a PDF file"):
        pdf_text("just some text".encode(), "notes.pdf")


# ---------------------------------------------------------------- DOCX


def test_docx_paragraphs_and_tables_in_order(tmp_path: Path):
    make_docx(tmp_path / "report.docx")
    text = docx_text((tmp_path / "report.docx").read_bytes(), "report.docx")
    assert text.splitlines() == ["年度報告", "前三季度規模以上工業增加值同比增長5.8%。", "指標\t增長", "工業投資\t兩位數",
                                 "The library opens at 9 am."]
    raw = read_document(tmp_path / "report.docx", max_bytes=1 << 20)
    assert raw.encoding == "docx"


def test_docx_through_index(tmp_path: Path):
    make_docx(tmp_path / "report.docx")
    rag.build_index([tmp_path], index_dir=tmp_path / "idx", model="test-hash")
    qa = rag.load(tmp_path / "idx")
    ans = qa.ask("When does the library open?")
    assert ans.found and "9 am" in ans.text
    c = ans.citations[0]
    assert qa.document(c.source).text[c.start:c.end] == c.quote


def test_corrupt_docx_refused():
    with pytest.raises(DocumentError, match="bad.docx: corrupt or not a Word .docx file"):
        docx_text(b"PK\x03\x04 this is not really a zip file", "bad.docx")


def test_zip_that_is_not_docx_refused():
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("hello.txt", "hi")
    with pytest.raises(DocumentError, match="other.docx: not a Word .docx file"):
        docx_text(buf.getvalue(), "other.docx")


def test_docx_zip_bomb_refused(monkeypatch):
    import zipfile

    import rag.ingest.extractors

    monkeypatch.setattr(rag.ingest.extractors, "_MAX_EXPANSION", 2)  # 2 MiB for a small file, to keep the test fast
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr("word/document.xml", "<w:document/>")
        z.writestr("word/padding.bin", b"\0" * (3 * 1024 * 1024))
    with pytest.raises(DocumentError, match="bomb.docx: .*zip bomb"):
        docx_text(buf.getvalue(), "bomb.docx")


def test_empty_docx_refused(tmp_path: Path):
    import docx

    docx.Document().save(str(tmp_path / "empty.docx"))
    with pytest.raises(DocumentError, match="empty.docx: the Word document has no text"):
        docx_text((tmp_path / "empty.docx").read_bytes(), "empty.docx")
