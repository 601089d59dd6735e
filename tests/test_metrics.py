"""Hand-computed cases for rag.evaluation.metrics."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rag.evaluation.metrics import (
    char_f1,
    contains_answer,
    exact_match,
    first_gold_rank,
    normalize_answer,
    percentile,
    recall_at_k,
    reciprocal_rank,
    segment,
)


class TestNormalize:
    def test_full_width_percent_and_digits(self) -> None:
        assert normalize_answer("5.8%") == normalize_answer("5.8％") == "5.8"
        assert normalize_answer("５．８％") == "5.8"

    def test_traditional_to_simplified(self) -> None:
        assert normalize_answer("8個月") == normalize_answer("8个月") == "8个月"
        assert normalize_answer("臺灣") == "台湾"

    def test_whitespace_punctuation_case(self) -> None:
        assert normalize_answer(" 《 战国无双3 》。") == "战国无双3"
        assert normalize_answer("Near  Hangzhou!") == "nearhangzhou"
        assert normalize_answer("电子、有色、化工、汽车") == "电子有色化工汽车"

    def test_decimal_point_only_between_digits(self) -> None:
        assert normalize_answer("5.8") != normalize_answer("58")
        assert normalize_answer("end.") == "end"
        assert normalize_answer("1,000") == "1000"

    def test_segment_mixed(self) -> None:
        assert segment("The New York Times 在2019年報道") == [
            "the", "new", "york", "times", "在", "2019", "年", "报", "道",
        ]
        assert segment("光荣和ω-force") == ["光", "荣", "和", "ω", "force"]
        assert segment("，。！") == []


class TestExactMatch:
    def test_equal_after_normalisation(self) -> None:
        assert exact_match("5.8%", ["5.8％"]) == 1.0
        assert exact_match("8個月", ["8个月"]) == 1.0

    def test_max_over_golds(self) -> None:
        assert exact_match("4成", ["接近4成", "4成"]) == 1.0
        assert exact_match("4", ["接近4成", "4成"]) == 0.0

    def test_single_string_gold(self) -> None:
        assert exact_match("文湖線", "文湖线") == 1.0

    def test_empty_golds_reward_abstention(self) -> None:
        assert exact_match("", []) == 1.0
        assert exact_match("。", []) == 1.0
        assert exact_match("5.8%", []) == 0.0
        # a gold that normalises to nothing does not count as a gold
        assert exact_match("", ["。"]) == 1.0


class TestCharF1:
    def test_identical(self) -> None:
        assert char_f1("5.8%", ["5.8％"]) == 1.0
        assert char_f1("八個月", ["八个月"]) == 1.0

    def test_partial_overlap_chinese(self) -> None:
        # pred 中国人民 (4 units), gold 人民银行 (4 units), common run 人民 (2):
        # P = 2/4, R = 2/4, F1 = 0.5
        assert char_f1("中国人民", ["人民银行"]) == pytest.approx(0.5)
        # pred units: 4.49 万 亿 (3); gold: 4.49 万 亿 元 (4); common run 3
        # P = 1, R = 3/4, F1 = 2*0.75/1.75 = 6/7
        assert char_f1("4.49万亿", ["4.49万亿元"]) == pytest.approx(6 / 7)

    def test_longest_common_run_not_bag(self) -> None:
        # CMRC scores the longest contiguous common run: 民人 vs 人民 shares a run of 1
        assert char_f1("民人", ["人民"]) == pytest.approx(0.5)

    def test_max_over_golds(self) -> None:
        # gold 1: 接近4成 (4 units) common with 4成 = 2 -> P=1, R=.5, F1=2/3; gold 2 exact -> 1
        assert char_f1("4成", ["接近4成", "4成"]) == 1.0
        assert char_f1("4成", ["接近4成"]) == pytest.approx(2 / 3)

    def test_english_words_are_units(self) -> None:
        # pred: near hangzhou in zhejiang (4 words), gold: near hangzhou (2)
        # common 2 -> P = 1/2, R = 1, F1 = 2/3
        assert char_f1("near Hangzhou in Zhejiang", ["near Hangzhou"]) == pytest.approx(2 / 3)
        # a shared letter inside different words does not count
        assert char_f1("Hangzhou", ["Zhejiang"]) == 0.0

    def test_mixed_english_chinese(self) -> None:
        # pred 光荣 (2), gold 光荣和ω-force (光 荣 和 ω force = 5): common 2
        # P = 1, R = 2/5, F1 = 2*0.4/1.4 = 4/7
        assert char_f1("光荣", ["光荣和ω-force"]) == pytest.approx(4 / 7)

    def test_exact_match_implies_full_f1(self) -> None:
        # "ab c" and "abc" normalise alike (whitespace removed) though they segment apart
        assert exact_match("new york", ["newyork"]) == 1.0
        assert char_f1("new york", ["newyork"]) == 1.0

    def test_no_overlap_and_empty_prediction(self) -> None:
        # common run 线 (1 of 3 units each side): P = R = 1/3, F1 = 1/3
        assert char_f1("文湖线", ["淡水线"]) == pytest.approx(1 / 3)
        assert char_f1("成都", ["四川"]) == 0.0
        assert char_f1("", ["四川"]) == 0.0

    def test_empty_golds(self) -> None:
        assert char_f1("", []) == 1.0
        assert char_f1("四川", []) == 0.0


class TestContainsAnswer:
    def test_substring_after_normalisation(self) -> None:
        sentence = "前三季度，全國規模以上工業增加值同比增長５．８％。"
        assert contains_answer(sentence, ["5.8%"])
        assert contains_answer("每日運量約兩百萬人次。", ["约两百万人次"])
        assert not contains_answer(sentence, ["6.1%"])

    def test_any_gold(self) -> None:
        assert contains_answer("贡献率接近4成", ["接近四成", "4成"])

    def test_empty_golds_is_false(self) -> None:
        assert not contains_answer("anything", [])
        assert not contains_answer("anything", ["。"])


class TestRanking:
    def test_recall_at_k(self) -> None:
        ranked = ["a", "b", "c", "d"]
        assert recall_at_k(ranked, {"c"}, 1) == 0.0
        assert recall_at_k(ranked, {"c"}, 3) == 1.0
        assert recall_at_k(ranked, {"x", "b"}, 2) == 1.0
        assert recall_at_k(ranked, {"x"}, 10) == 0.0

    def test_reciprocal_rank(self) -> None:
        ranked = ["a", "b", "c"]
        assert reciprocal_rank(ranked, {"a"}) == 1.0
        assert reciprocal_rank(ranked, {"c", "b"}) == 0.5
        assert reciprocal_rank(ranked, {"c"}, k=2) == 0.0
        assert reciprocal_rank(ranked, {"x"}) == 0.0

    def test_first_gold_rank(self) -> None:
        assert first_gold_rank(["a", "b", "c"], {"c"}) == 3
        assert first_gold_rank(["a", "b", "c"], {"c"}, k=2) is None
        assert first_gold_rank([], {"c"}) is None

    def test_undefined_inputs(self) -> None:
        with pytest.raises(ValueError):
            recall_at_k(["a"], set(), 1)
        with pytest.raises(ValueError):
            reciprocal_rank(["a"], [])
        with pytest.raises(ValueError):
            recall_at_k(["a"], {"a"}, 0)


class TestPercentile:
    def test_linear_interpolation(self) -> None:
        assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.5
        assert percentile([3.0, 1.0, 2.0], 50) == 2.0
        assert percentile([1.0, 2.0, 3.0, 4.0, 5.0], 95) == pytest.approx(4.8)
        assert percentile([7.0], 95) == 7.0
        assert percentile([1.0, 9.0], 0) == 1.0
        assert percentile([1.0, 9.0], 100) == 9.0

    def test_errors(self) -> None:
        with pytest.raises(ValueError):
            percentile([], 50)
        with pytest.raises(ValueError):
            percentile([1.0], 101)


_text = st.text(alphabet=st.sampled_from(list("人民银行中国abc 12.%，。個个ＡＢ")), max_size=12)


@given(_text, _text)
def test_f1_bounds_and_em_implies_f1(pred: str, gold: str) -> None:
    f1 = char_f1(pred, [gold])
    assert 0.0 <= f1 <= 1.0
    if exact_match(pred, [gold]) == 1.0 and normalize_answer(gold):
        assert f1 == 1.0
        assert contains_answer(pred, [gold])


@given(_text)
def test_self_match(s: str) -> None:
    if normalize_answer(s):
        assert exact_match(s, [s]) == 1.0
        assert char_f1(s, [s]) == 1.0
        assert contains_answer(s, [s])


@given(st.lists(st.floats(min_value=0, max_value=1e6, allow_nan=False), min_size=1))
def test_percentile_within_range(xs: list[float]) -> None:
    p = percentile(xs, 95)
    assert min(xs) <= p <= max(xs) or math.isclose(p, max(xs))


def test_token_f1_is_squads() -> None:
    from rag.evaluation.metrics import answer_f1, token_f1

    assert token_f1("the Denver Broncos", "Denver Broncos") == 1.0  # articles and case are not words
    assert token_f1("3.2 million tonn", "3.2 million tonnes") == pytest.approx(2 / 3)
    assert token_f1("Broncos Denver", "Denver Broncos") == 1.0  # a bag of tokens, not a run
    assert token_f1("", []) == 1.0 and token_f1("x", []) == 0.0
    # English answers are scored by tokens, Chinese ones by characters (CMRC)
    assert answer_f1("million tonnes", "3.2 million tonnes") == token_f1("million tonnes", "3.2 million tonnes")
    assert answer_f1("增长5.8%", "5.8%") == char_f1("增长5.8%", "5.8%")
    assert answer_f1("５．８％", "5.8%") == 1.0
