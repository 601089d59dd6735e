from pathlib import Path

import pytest

from rag.errors import DocumentError
from rag.ingest.loaders import collect_paths, decode_bytes, read_document

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

    from rag.ingest.chunking import chunk_document
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
    from rag.index.writer import IndexWriter
    from rag.settings import IndexSettings

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
    report = IndexWriter(tmp_path / "idx", model="test-hash", settings=IndexSettings(max_file_bytes=4096)).sync([docs])
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
    import rag.index.writer
    from rag.index.writer import IndexWriter

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.txt").write_text("The bridge was built in 1890.", encoding="utf-8")
    (docs / "boom.txt").write_text("This one makes the cleaner fail.", encoding="utf-8")
    real = rag.index.writer.clean_raw

    def flaky(raw):
        if raw.source.endswith("boom.txt"):
            raise RecursionError("maximum recursion depth exceeded")
        return real(raw)

    monkeypatch.setattr(rag.index.writer, "clean_raw", flaky)
    report = IndexWriter(tmp_path / "idx", model="test-hash").sync([docs])
    assert report.info.documents == 1
    [err] = report.errors
    assert err.path.endswith("boom.txt") and "unexpected RecursionError" in err.reason


# ---------------------------------------------------------------- encodings: detected, named, refused

ZH_HANS = (
    "前三季度，规模以上工业增加值同比增长5.8%，对宏观经济增长发挥“压舱石”作用，贡献率接近四成。"
    "电子、有色、化工、汽车四个行业对工业生产增长的贡献率接近一半，九个工业大省增速超过全国平均水平；"
    "发展动能持续累积，具有较高技术含量和较高附加值的人工智能芯片、服务器等产品产量高速增长。\n"
    "工信部相关负责人表示，将在稳增长、扩需求、增动能、优环境方面持续发力，包括研究制定提升产业科技创新能力的政策措施，"
    "出台工业互联网高质量发展指导意见，进一步稳定工业增长，持续释放产业升级动力。\n"
)
ZH_HANT = (
    "前三季度，規模以上工業增加值同比增長5.8%，對宏觀經濟增長發揮「壓艙石」作用，貢獻率接近四成。"
    "電子、有色、化工、汽車四個行業對工業生產增長的貢獻率接近一半，九個工業大省增速超過全國平均水準；"
    "發展動能持續累積，具有較高技術含量和較高附加值的人工智慧晶片、伺服器等產品產量高速增長。\n"
    "工信部相關負責人表示，將在穩增長、擴需求、增動能、優環境方面持續發力，包括研究制定提升產業科技創新能力的政策措施，"
    "出臺工業互聯網高品質發展指導意見，進一步穩定工業增長，持續釋放產業升級動力。\n"
)
JA = (
    "東京都は二十日、新型の電気自動車向け充電設備を都内の公共施設に順次設置すると発表した。"
    "今年度中に約三百か所で運用を始め、二〇三〇年までに二千か所へ増やす計画だ。"
    "都の担当者は「利用者の声を聞きながら、使いやすい場所を選んでいきたい」と話している。\n"
    "一方、民間企業でも同様の取り組みが広がっており、大手コンビニエンスストアは駐車場への急速充電器の導入を進めている。"
    "専門家は、充電インフラの整備が普及の鍵を握ると指摘する。\n"
)
KO = (
    "서울시는 이십일 시내 공공시설에 전기차 충전 설비를 차례로 설치한다고 발표했다. "
    "올해 안에 약 삼백 곳에서 운영을 시작하고, 이천삼십 년까지 이천 곳으로 늘릴 계획이다. "
    "시 관계자는 \"이용자의 의견을 들으면서 편리한 장소를 고르겠다\"고 말했다.\n"
    "한편 민간 기업에서도 비슷한 움직임이 확산되고 있으며, 대형 편의점 업체는 주차장에 급속 충전기 도입을 추진하고 있다. "
    "전문가들은 충전 인프라 확충이 보급의 열쇠라고 지적한다.\n"
)
MIXED = (
    "The report says industrial output grew 5.8% in the first three quarters. "
    "报告显示，前三季度规模以上工业增加值同比增长5.8%。"
    "Investment in manufacturing rose for eight consecutive months, according to the MIIT. "
    "工业投资连续8个月保持两位数增长，人工智能芯片、服务器等产品产量高速增长。\n"
    "Analysts expect the trend to continue into next year as new policies take effect.\n"
)
MIXED_HANT = (
    "The report says industrial output grew 5.8% in the first three quarters. "
    "報告顯示，前三季度規模以上工業增加值同比增長5.8%。"
    "Investment in manufacturing rose for eight consecutive months. 工業投資連續8個月保持兩位數增長。\n"
)
FR = (
    "Le pont a été construit en 1890 et reconstruit après la crue de 1927. Il porte deux voies de circulation "
    "et un trottoir de chaque côté ; il a été classé monument historique en 1985, à la demande des élus.\n"
)
RU = (
    "Мост был построен в 1890 году и восстановлен после наводнения 1927 года. По нему проходят две полосы "
    "движения и тротуар с каждой стороны; в 1985 году он был признан памятником истории.\n"
)

#: (text, encoding written, names the loader may report: the codec used or its superset)
LEGACY = [
    (ZH_HANS, "gbk", {"gb18030"}), (ZH_HANS, "gb2312", {"gb18030"}), (ZH_HANS, "gb18030", {"gb18030"}),
    (ZH_HANT, "big5", {"big5", "big5hkscs", "cp950"}), (ZH_HANT, "cp950", {"big5", "big5hkscs", "cp950"}),
    (JA, "shift_jis", {"cp932", "shift_jis"}), (JA, "cp932", {"cp932", "shift_jis"}),
    (JA, "euc_jp", {"euc_jp", "euc_jis_2004"}),
    (KO, "euc_kr", {"cp949", "euc_kr"}), (KO, "cp949", {"cp949", "euc_kr"}),
    (MIXED, "gbk", {"gb18030"}), (MIXED_HANT, "big5", {"big5", "big5hkscs", "cp950"}),
    (FR, "cp1252", {"cp1252"}), (RU, "cp1251", {"cp1251"}), (RU, "koi8_r", {"koi8-r"}),
]


@pytest.mark.parametrize("text,encoding,names", LEGACY, ids=[f"{t[:2]}-{e}" for t, e, _ in LEGACY])
def test_paragraphs_in_legacy_encodings_decode_exactly_and_are_named(text: str, encoding: str, names: set[str]):
    for body in (text, text * 4):
        got, used = decode_bytes(body.encode(encoding), "doc.txt")
        assert got == body, (encoding, got[:40])
        assert used in names, used


SHORT = [
    ("今年工业增长较快，前三季度增长5.8%。", "gbk"),
    ("今年工業增長較快，前三季度增長5.8%。", "big5"),
    ("今年は工業の伸びが速く、前年比五・八％増えた。", "shift_jis"),
    ("今年は工業の伸びが速く、前年比五・八％増えた。", "euc_jp"),
    ("올해 공업 성장이 빨랐고 전년 대비 증가했다.", "euc_kr"),
    ("你好，世界", "gbk"),
    ("數據顯示增長較快", "big5"),
    ("こんにちは世界", "shift_jis"),
    ("こんにちは世界", "euc_jp"),
    ("안녕하세요 세계", "euc_kr"),
]


@pytest.mark.parametrize("text,encoding", SHORT, ids=[f"{len(t)}chars-{e}" for t, e in SHORT])
def test_short_cjk_files_decode_exactly(text: str, encoding: str):
    got, _ = decode_bytes(text.encode(encoding), "short.txt")
    assert got == text


UTF16 = [(t, e) for t in (ZH_HANS, JA, KO, MIXED, "Hello world, this is English text.", SHORT[0][0], SHORT[4][0])
         for e in ("utf-16-le", "utf-16-be")]


@pytest.mark.parametrize("text,encoding", UTF16, ids=[f"{t[:3]}-{e}" for t, e in UTF16])
def test_utf16_with_and_without_bom_decodes_exactly(text: str, encoding: str):
    got, used = decode_bytes(text.encode(encoding), "u16.txt")
    assert got == text and used == encoding
    got, _ = decode_bytes(("\ufeff" + text).encode(encoding), "u16.txt")
    assert got == text


def test_utf8_stays_first():
    text = "Ünïcödé ok, 中文也行。"
    assert decode_bytes(text.encode("utf-8"), "u8.txt") == (text, "utf-8")
    assert decode_bytes(b"plain ascii", "a.txt") == ("plain ascii", "utf-8")


@pytest.mark.parametrize("size", [64, 300, 4096])
@pytest.mark.parametrize("seed", range(8))
def test_random_bytes_are_refused_with_a_typed_error(size: int, seed: int):
    import random

    from rag.errors import TextDecodingError

    data = random.Random(seed * 1000 + size).randbytes(size)
    with pytest.raises(TextDecodingError) as exc:
        decode_bytes(data, "noise.txt")
    assert exc.value.path == "noise.txt" and ("cannot decode" in exc.value.reason or "binary" in exc.value.reason)


@pytest.mark.parametrize("data", [b"\xff" * 100, b"ok text \xff\xfe\xfd\xfc" * 20], ids=["ff-run", "junk-after-text"])
def test_incoherent_decodes_are_refused_naming_the_reason(data: bytes):
    from rag.errors import TextDecodingError

    with pytest.raises(TextDecodingError, match=r"bad\.txt: cannot decode as text: .*(coherent|garbled)"):
        decode_bytes(data, "bad.txt")


def test_random_characters_of_a_valid_encoding_are_refused():
    """Every byte pair a valid GBK character, but no text: the detector's chaos measure refuses it."""
    import random

    from rag.errors import TextDecodingError

    rng = random.Random(5)
    chars = []
    while len(chars) < 300:
        c = chr(rng.randrange(0x4E00, 0x9FA5))
        try:
            c.encode("gbk")
        except UnicodeEncodeError:
            continue
        chars.append(c)
    with pytest.raises(TextDecodingError, match="garbled"):
        decode_bytes("".join(chars).encode("gbk"), "hanzi.txt")


def test_the_encoding_is_named_in_the_cleaning_report(tmp_path: Path):
    from rag.pipeline import clean_file

    p = tmp_path / "ja.txt"
    p.write_bytes(JA.encode("shift_jis"))
    assert read_document(p, max_bytes=10_000).text == JA
    doc = clean_file(p)
    assert doc.encoding == "cp932" and doc.text.startswith(JA[:40])
    assert doc.report.encoding == "cp932"
    assert "cp932" in doc.report.summary()


def test_report_encoding_survives_the_index_and_old_records_load():
    from rag.index.manifest import document_from_json as _document_from_json, document_to_json as _document_json
    from rag.types import CleaningReport, Document

    doc = Document("a.txt", "text", CleaningReport("a.txt", 4, 4), "ab" * 32, "euc_jis_2004")
    again = _document_from_json(_document_json(doc))
    assert again == doc and again.report.encoding == "euc_jis_2004"
    old = {"source": "b.txt", "text": "x", "original_chars": 1, "edits": []}  # written before the field existed
    assert _document_from_json(old).report.encoding == "utf-8"


def test_folder_with_japanese_and_korean_files_builds(tmp_path: Path):
    from rag.index.writer import IndexWriter

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "ja.txt").write_bytes(JA.encode("euc_jp"))
    (docs / "ko.txt").write_bytes(KO.encode("euc_kr"))
    (docs / "zh.txt").write_bytes(ZH_HANS.encode("gbk"))
    (docs / "noise.txt").write_bytes(bytes(range(128, 256)) * 3)
    report = IndexWriter(tmp_path / "idx", model="test-hash").sync([docs])
    assert report.info.documents == 3
    [err] = report.errors
    assert err.path.endswith("noise.txt") and "cannot decode" in err.reason


def test_file_names_that_are_not_utf8_are_skipped_with_a_reason(tmp_path: Path) -> None:
    import os

    from rag.ingest.loaders import collect_paths

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "good.txt").write_text("The bridge opened in 1931.", encoding="utf-8")
    bad = os.fsdecode(bytes(docs) + b"/bad\xff.txt")  # a name with a byte that is not UTF-8
    Path(bad).write_text("工业增加值增长5.8%。", encoding="utf-8")
    files, problems = collect_paths([docs])
    assert [f.name for f in files] == ["good.txt"]
    assert len(problems) == 1 and "not valid UTF-8" in str(problems[0]) and "\\udcff" in str(problems[0])
    str(problems[0]).encode("utf-8")  # the message itself prints anywhere
