from hypothesis import given
from hypothesis import strategies as st

from rag.normalize import cjk_share, fold, to_simplified


def test_traditional_and_simplified_fold_to_the_same_form():
    assert fold("國家技術轉移區域中心有幾個") == fold("国家技术转移区域中心有几个")


def test_full_width_and_case_fold():
    assert fold("ＡＢＣ１２３％") == "abc123%"
    assert fold("GDP") == "gdp"


def test_simplified_text_is_unchanged():
    assert to_simplified("前三季度规模以上工业增加值") == "前三季度规模以上工业增加值"


@given(st.text(max_size=200))
def test_fold_keeps_length(text):
    assert len(fold(text)) == len(text)


def test_cjk_share():
    assert cjk_share("中文") == 1.0
    assert cjk_share("abc") == 0.0
    assert cjk_share("123") == 0.0
