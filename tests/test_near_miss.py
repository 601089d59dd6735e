"""Near-miss unanswerable questions (``training.near_miss``): on topic, but not answered."""

from __future__ import annotations

from training import near_miss as nm


PASSAGES = [
    ("industry", "前三季度规模以上工业增加值同比增长5.8%，高技术制造业增长较快。"),
    ("industry", "工业投资连续8个月保持两位数增长。"),
    ("city", "北京市的人口超过两千万，面积一万六千平方公里。"),
    ("river", "长江全长约6300公里，流经青海、四川、湖北等省份。"),
]
QUESTIONS = [
    ("industry", "前三季度规模以上工业增加值同比增长多少？"),
    ("city", "北京市的人口有多少？"),
    ("river", "长江全长多少公里？"),
    ("river", "长江流经哪些省份？"),
]


def test_swaps_a_noun_the_passage_mentions_for_one_the_article_never_does() -> None:
    maker = nm.NearMisses(PASSAGES, QUESTIONS, seed=0)
    q = "长江全长多少公里？"
    swapped = maker.make(q, "river", PASSAGES[3][1])
    assert swapped is not None and swapped != q
    assert "公里" in swapped  # one noun changed, the rest of the question kept
    new = [w for w in nm.nouns(swapped) if w not in nm.nouns(q)]
    assert new and all(w not in PASSAGES[3][1] for w in new)
    # the replacement comes from another article's question
    assert any(w in qq for w in new for a, qq in QUESTIONS if a != "river")


def test_is_deterministic_and_declines_when_nothing_can_be_swapped() -> None:
    a = nm.NearMisses(PASSAGES, QUESTIONS, seed=3).make("北京市的人口有多少？", "city", PASSAGES[2][1])
    b = nm.NearMisses(PASSAGES, QUESTIONS, seed=3).make("北京市的人口有多少？", "city", PASSAGES[2][1])
    assert a == b
    # no noun of the question is in the passage: no near miss to make
    assert nm.NearMisses(PASSAGES, QUESTIONS).make("火星有几颗卫星？", "city", PASSAGES[2][1]) is None
