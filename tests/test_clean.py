from hypothesis import given, settings
from hypothesis import strategies as st

from rag.ingest.clean import (
    BOILERPLATE,
    NAVIGATION,
    PINYIN,
    STUFFING,
    clean_text,
    original_offset,
    restore_original,
)


def reasons(doc):
    return set(doc.report.counts())


def test_pinyin_readings_removed_ascii_and_full_width_brackets():
    doc = clean_text("規(guī)模以上工業(yè)增加值，綠（lǜ）色發展，女(nǚ)性")
    assert doc.text == "規模以上工業增加值，綠色發展，女性"
    assert reasons(doc) == {PINYIN}


def test_multi_syllable_and_number_tone_readings():
    assert clean_text("規模(guī mó)擴大，增长(zeng1)").text == "規模擴大，增长"


def test_real_brackets_stay():
    text = "会议于（2024年）召开，人工智能(AI)发展迅速，北京(Beijing)是首都，参见(附件一)。"
    assert clean_text(text).text == text


def test_untoned_syllable_only_removed_when_document_uses_readings():
    plain = "我们去(ai)看看"
    assert clean_text(plain).text == plain
    dirty = "規(guī)模擴(kuò)大發(fā)展，我们去(ai)看看"
    assert clean_text(dirty).text == "規模擴大發展，我们去看看"


def test_share_widget_removed():
    doc = clean_text("正文第一段。\n\n掃一掃 微信聯系\n分享到：微博 微信 QQ空間\n")
    assert doc.text == "正文第一段。"
    assert reasons(doc) >= {BOILERPLATE}


def test_keyword_stuffing_removed_but_sentence_lists_kept():
    stuffing = "宁都县| 武宁县| 灵璧县| 竹山县| 南郑县| 来宾市| 城口县| 姜堰市| 亚东县| 若羌县|"
    text = "电子、有色、化工、汽车4个行业贡献率接近一半。\n" + stuffing
    doc = clean_text(text)
    assert doc.text == "电子、有色、化工、汽车4个行业贡献率接近一半。"
    assert STUFFING in reasons(doc)


def test_space_separated_han_names_are_stuffing_but_english_sentence_is_not():
    names = "北京 上海 广州 深圳 杭州 南京 武汉 成都 重庆 西安"
    english = "The quick brown fox jumps over the lazy dog again today"
    doc = clean_text(f"{english}\n{names}")
    assert doc.text == english


def test_navigation_removed():
    doc = clean_text("首页 > 新闻中心 > 正文\n这是正文，内容很长。")
    assert doc.text == "这是正文，内容很长。"
    assert NAVIGATION in reasons(doc) or BOILERPLATE in reasons(doc)


def test_whitespace_normalised_paragraphs_kept():
    doc = clean_text("  第一段。  \r\n\r\n\r\n   第二段\t第二句。\n")
    assert doc.text == "第一段。\n\n第二段 第二句。"


def test_seed_article(seed_text):
    doc = clean_text(seed_text, "seed")
    assert "(" not in doc.text and "掃一掃" not in doc.text and "灵璧县" not in doc.text
    assert doc.text.startswith("前三季度規模以上工業增加值同比增長5.8%")
    assert len([p for p in doc.text.split("\n\n") if p.strip()]) == 12
    assert restore_original(doc.text, doc.report.edits) == seed_text
    by = doc.report.chars_by_reason()
    assert by[PINYIN] > 1000 and by[STUFFING] > 100


def test_original_offset_maps_back(seed_text):
    doc = clean_text(seed_text)
    i = doc.text.index("工業投資")
    j = original_offset(doc.report.edits, i)
    assert seed_text[j] == "工"


_pieces = st.sampled_from(
    ["規(guī)模", "工業(yè)", "（2024年）", "(AI)", " ", "\n", "\n\n", "\t", "。", "，", "掃一掃 微信聯系\n",
     "宁都县| 武宁县| 灵璧县| 竹山县| 南郑县| 来宾市| 城口县| 姜堰市| 亚东县|\n", "abc", "数据", "\u3000", "\r\n"]
)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(_pieces, st.text(max_size=8)), max_size=30))
def test_nothing_lost_that_is_not_reported(parts):
    text = "".join(parts)
    doc = clean_text(text)
    assert restore_original(doc.text, doc.report.edits) == text
    assert doc.report.cleaned_chars == len(doc.text)
    assert doc.report.original_chars - doc.report.removed_chars == len(doc.text)
    for e in doc.report.edits:
        assert text[e.start:e.end] == e.removed
        assert doc.text[e.clean_start:e.clean_start + len(e.replacement)] == e.replacement
    assert doc.text == doc.text.strip()


def test_megabyte_lines_clean_quickly():
    # A guard against per-character Python loops and quadratic blow-ups, not a benchmark.
    import time

    mixed = ("規(guī)模以上工業\t增加值 abc  Ｑ２數據\u200b " * 40_000)[:1_000_000]
    for text in ("字" * 1_000_000, mixed):
        started = time.perf_counter()
        doc = clean_text(text)
        assert time.perf_counter() - started < 5
        assert restore_original(doc.text, doc.report.edits) == text
        assert doc.text == doc.text.strip()
    assert PINYIN in reasons(doc) and "(" not in doc.text and "\t" not in doc.text


def test_long_lines_judged_like_short_ones():
    from rag.ingest.clean import _fold_long
    from rag.normalize import fold

    line = "後來，ＡＢＣ乾隆年間 發展｜" * 3_000
    assert _fold_long(line) == fold(line)
    stuffing = "宁都县| 武宁县| 灵璧县| 竹山县| 南郑县| " * 2_000
    doc = clean_text("正文第一段。\n" + stuffing)
    assert doc.text == "正文第一段。"
    assert STUFFING in reasons(doc)
