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
    (tmp_path / "c.pdf").write_bytes(b"%PDF")
    (tmp_path / ".hidden").mkdir()
    (tmp_path / ".hidden" / "d.txt").write_text("z", encoding="utf-8")
    files, problems = collect_paths([tmp_path, tmp_path / "missing.txt", tmp_path / "c.pdf"])
    assert [f.name for f in files] == ["a.txt", "b.md"]
    reasons = " ".join(str(p) for p in problems)
    assert "missing.txt" in reasons and "c.pdf" in reasons


def test_symlink_out_of_corpus_refused(tmp_path: Path):
    outside = tmp_path / "outside.txt"
    outside.write_text("secret", encoding="utf-8")
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "link.txt").symlink_to(outside)
    files, problems = collect_paths([corpus])
    assert files == []
    assert "outside the corpus folder" in str(problems[0])
