from pathlib import Path

import pytest

from rag.errors import DocumentError
from rag.loaders import collect_paths, decode_bytes, read_document

TEXT = "前三季度規模以上工業增加值同比增長5.8%。\n數據顯示，增長較快。"


@pytest.mark.parametrize(
    "encoding,text",
    [
        ("utf-8", TEXT),
        ("utf-8-sig", TEXT),
        ("utf-16", TEXT),
        ("gb18030", "前三季度规模以上工业增加值同比增长5.8%。四字节字符：𠀀，数据显示增长较快。" * 3),
        ("big5", "前三季度規模以上工業增加值同比增長。數據顯示，增長較快，工業投資連續八個月保持兩位數增長。" * 3),
    ],
)
def test_encodings_decode_exactly(tmp_path: Path, encoding: str, text: str):
    p = tmp_path / "doc.txt"
    p.write_bytes(text.encode(encoding))
    doc = read_document(p, max_bytes=10_000)
    assert doc.text == text


def test_utf16_without_bom(tmp_path: Path):
    p = tmp_path / "doc.txt"
    p.write_bytes("Hello world, this is English text.".encode("utf-16-le"))
    assert read_document(p, max_bytes=10_000).text == "Hello world, this is English text."


def test_binary_file_refused_with_name(tmp_path: Path):
    p = tmp_path / "blob.txt"
    p.write_bytes(bytes(range(256)) * 4)
    with pytest.raises(DocumentError) as exc:
        read_document(p, max_bytes=10_000)
    assert "blob.txt" in str(exc.value)


@pytest.mark.parametrize("content", [b"", b"   \n\t  \n"])
def test_empty_files_refused(tmp_path: Path, content: bytes):
    p = tmp_path / "empty.txt"
    p.write_bytes(content)
    with pytest.raises(DocumentError, match="empty"):
        read_document(p, max_bytes=10_000)


def test_oversized_file_refused_before_reading(tmp_path: Path):
    p = tmp_path / "big.txt"
    p.write_bytes(b"a" * 2000)
    with pytest.raises(DocumentError, match="over the 1000-byte limit"):
        read_document(p, max_bytes=1000)


@pytest.mark.parametrize("data", [b"\xff" * 100, b"ok text \xff\xfe\xfd\xfc" * 20, b"\x81\x00\xff\x01" * 30])
def test_undecodable_bytes_refused_never_dropped(data: bytes):
    with pytest.raises(DocumentError) as exc:
        decode_bytes(data, "bad.txt")
    assert "bad.txt" in str(exc.value)


def test_collect_paths_folders_and_problems(tmp_path: Path):
    (tmp_path / "a.txt").write_text("x", encoding="utf-8")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.md").write_text("y", encoding="utf-8")
    (tmp_path / "c.exe").write_bytes(b"MZ")
    (tmp_path / ".hidden").mkdir()
    (tmp_path / ".hidden" / "d.txt").write_text("z", encoding="utf-8")
    files, problems = collect_paths([tmp_path, tmp_path / "missing.txt", tmp_path / "c.exe"])
    assert [f.name for f in files] == ["a.txt", "b.md"]
    reasons = " ".join(str(p) for p in problems)
    assert "missing.txt" in reasons and "c.exe" in reasons


def test_symlink_out_of_corpus_refused(tmp_path: Path):
    outside = tmp_path / "outside.txt"
    outside.write_text("secret", encoding="utf-8")
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "link.txt").symlink_to(outside)
    files, problems = collect_paths([corpus])
    assert files == []
    assert "outside the corpus folder" in str(problems[0])


# ---------------------------------------------------------------- bad input, one test each


def test_big5_hkscs_and_utf16_chinese_decode_exactly(tmp_path: Path):
    text = "香港特別行政區的統計數據顯示，增長較快。" * 4
    for encoding in ("big5hkscs", "utf-16-le", "utf-16-be"):
        p = tmp_path / f"{encoding}.txt"
        data = text.encode(encoding)
        p.write_bytes(data if encoding == "big5hkscs" else ("\ufeff" + text).encode(encoding))
        assert read_document(p, max_bytes=10_000).text == text, encoding


def test_gb18030_four_byte_character_round_trips(tmp_path: Path):
    text = "数据显示：𠀀字与𪚥字都是四字节字符，增长较快。" * 3
    data = text.encode("gb18030")
    assert b"\x95\x32\x82\x36" in data  # 𠀀 in GB18030 is a four-byte sequence
    p = tmp_path / "gb.txt"
    p.write_bytes(data)
    doc = read_document(p, max_bytes=10_000)
    assert doc.text == text and doc.encoding == "gb18030"


def test_oversized_file_never_read(tmp_path: Path, monkeypatch):
    p = tmp_path / "huge.txt"
    with open(p, "wb") as f:
        f.truncate(8 * 1024**3)  # sparse: 8 GiB on paper, nothing on disk
    import builtins

    real_open = builtins.open

    def guarded_open(file, *args, **kwargs):
        assert Path(file) != p, "the oversized file was opened"
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", guarded_open)
    with pytest.raises(DocumentError, match=r"huge.txt: file is 8589934592 bytes, over the 1048576-byte limit"):
        read_document(p, max_bytes=1 << 20)


def test_fifo_is_not_read(tmp_path: Path):
    import os

    p = tmp_path / "pipe.txt"
    os.mkfifo(p)
    with pytest.raises(DocumentError, match="pipe.txt: not a regular file"):
        read_document(p, max_bytes=10_000)


def test_whitespace_only_in_utf16_refused(tmp_path: Path):
    p = tmp_path / "blank16.txt"
    p.write_bytes(" \n\u3000\t ".encode("utf-16"))
    with pytest.raises(DocumentError, match="blank16.txt: file is empty or holds only whitespace"):
        read_document(p, max_bytes=10_000)


def test_binary_with_text_suffix_refused(tmp_path: Path):
    p = tmp_path / "photo.md"
    p.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 20)
    with pytest.raises(DocumentError, match="photo.md: looks like a binary file"):
        read_document(p, max_bytes=100_000)


def test_ten_megabyte_line_reads_and_chunks_in_linear_time(tmp_path: Path):
    import time

    from rag.chunking import chunk_document
    from rag.types import CleaningReport, Document

    p = tmp_path / "line.txt"
    p.write_bytes(("规模以上工业增加值同比增长" * 800_000)[:3_400_000].encode("utf-8"))  # ~10 MB, one line
    start = time.perf_counter()
    raw = read_document(p, max_bytes=20 * 1024 * 1024)
    doc = Document(raw.source, raw.text, CleaningReport(raw.source, len(raw.text), len(raw.text)))
    chunks = chunk_document(doc, chunk_chars=300, overlap=60)
    elapsed = time.perf_counter() - start
    assert len(p.read_bytes()) > 10_000_000
    assert len(chunks) == -(-len(raw.text) // 300)
    assert all(doc.text[c.start:c.end] == c.text and len(c.text) <= 300 for c in chunks)
    assert elapsed < 30, f"reading and chunking a 10 MB line took {elapsed:.1f}s"


@pytest.mark.slow
def test_ten_megabyte_line_builds_in_reasonable_time(tmp_path: Path):
    """The whole pipeline (cleaner included) on a 10 MB line without punctuation."""
    import time

    import rag

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "line.txt").write_text("a" * 10_000_000, encoding="utf-8")
    (docs / "ok.txt").write_text("The bridge was built in 1890.", encoding="utf-8")
    start = time.perf_counter()
    info = rag.build_index([docs], index_dir=tmp_path / "idx", model="test-hash")
    assert info.documents == 2 and info.chunks > 30_000
    assert time.perf_counter() - start < 900


def test_symlinked_folder_out_of_corpus_refused(tmp_path: Path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("secret", encoding="utf-8")
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "ok.txt").write_text("fine", encoding="utf-8")
    (corpus / "linked").symlink_to(outside, target_is_directory=True)
    (corpus / "inside.txt").symlink_to(corpus / "ok.txt")
    files, problems = collect_paths([corpus])
    assert sorted(f.name for f in files) == ["ok.txt"]  # the inner link names the same file, once
    assert len(problems) == 1 and "linked" in problems[0].path and "outside the corpus folder" in problems[0].reason


def test_every_bad_file_fails_alone_in_a_build(tmp_path: Path, seed_path: Path):
    import os

    import rag
    from rag.pipeline import build_index_report
    from rag.settings import Settings

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "good.txt").write_text("今年工业增长较快，前三季度增长5.8%。", encoding="utf-8")
    (docs / "binary.txt").write_bytes(bytes(range(256)) * 8)
    (docs / "empty.txt").write_bytes(b"")
    (docs / "blank.md").write_text(" \n\t\n", encoding="utf-8")
    (docs / "big.txt").write_bytes(b"x" * 5000)
    (docs / "garbage.txt").write_bytes(b"ok text \xff\xfe\xfd\xfc" * 20)
    (docs / "broken.pdf").write_bytes(b"%PDF-1.4\n" + bytes(range(256)) * 4)
    (docs / "broken.docx").write_bytes(b"PK\x03\x04 nope")
    (docs / "nothing.html").write_text("<html><body><script>x()</script></body></html>", encoding="utf-8")
    os.mkfifo(docs / "fifo.txt")
    outside = tmp_path / "outside.txt"
    outside.write_text("secret", encoding="utf-8")
    (docs / "escape.txt").symlink_to(outside)
    report = build_index_report([docs], tmp_path / "idx", "test-hash", settings=Settings(max_file_bytes=4096))
    assert report.info.documents == 1
    reasons = {Path(e.path).name: e.reason for e in report.errors}
    assert set(reasons) == {"binary.txt", "empty.txt", "blank.md", "big.txt", "garbage.txt", "broken.pdf",
                            "broken.docx", "nothing.html", "fifo.txt", "escape.txt"}
    assert "binary" in reasons["binary.txt"] and "empty" in reasons["empty.txt"] and "empty" in reasons["blank.md"]
    assert "4096-byte limit" in reasons["big.txt"] and "cannot decode" in reasons["garbage.txt"]
    assert "PDF" in reasons["broken.pdf"] and "docx" in reasons["broken.docx"]
    assert "no main text" in reasons["nothing.html"] and "regular file" in reasons["fifo.txt"]
    assert "outside the corpus" in reasons["escape.txt"]
    assert rag.load(tmp_path / "idx").ask("前三季度增长多少？").found


def test_unexpected_failure_of_one_file_is_contained(tmp_path: Path, monkeypatch):
    import rag.lifecycle
    from rag.pipeline import build_index_report

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.txt").write_text("The bridge was built in 1890.", encoding="utf-8")
    (docs / "boom.txt").write_text("This one makes the cleaner fail.", encoding="utf-8")
    real = rag.lifecycle.clean_raw

    def flaky(raw):
        if raw.source.endswith("boom.txt"):
            raise RecursionError("maximum recursion depth exceeded")
        return real(raw)

    monkeypatch.setattr(rag.lifecycle, "clean_raw", flaky)
    report = build_index_report([docs], tmp_path / "idx", "test-hash")
    assert report.info.documents == 1
    [err] = report.errors
    assert err.path.endswith("boom.txt") and "unexpected RecursionError" in err.reason
