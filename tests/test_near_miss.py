"""Near-miss unanswerable questions (``training.near_miss``): on topic, but not answered."""

from __future__ import annotations

import pytest

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


ARTICLE = [
    ("film", "Spectre was directed by Sam Mendes. It was released on 26 October 2015."),
    ("film", "The screenplay was written by John Logan and Neal Purvis. Filming began in Rome in 2014."),
    ("other", "Skyfall was a hit in London."),
]
FILM_QUESTIONS = [("film", "Who directed Spectre?"), ("other", "Where was Skyfall a hit?")]


def test_an_in_article_twin_swaps_in_a_word_the_article_has_and_the_gold_passage_lacks() -> None:
    maker = nm.NearMisses(ARTICLE, FILM_QUESTIONS, seed=0)
    q = "When was the film Sam Mendes directed released?"
    swapped = maker.make_inside(q, "film", ARTICLE[0][1])
    assert swapped is not None and swapped != q
    new = set(swapped.split()) - set(q.split())
    assert len(new) == 1
    (word,) = new
    # from the article's other passage, not the gold one, and never from another article
    assert word.strip("?") in ARTICLE[1][1] and word.strip("?") not in ARTICLE[0][1]
    assert word.strip("?") not in ARTICLE[2][1]
    # a sentence-opening capital ("The", "Filming") is not taken for a proper noun
    assert word.strip("?") not in ("The", "Filming")


def test_an_in_article_number_is_swapped_for_one_of_the_same_length() -> None:
    maker = nm.NearMisses(ARTICLE, FILM_QUESTIONS, seed=0)
    swapped = maker.make_inside("What happened in 2015?", "film", ARTICLE[0][1])
    assert swapped is not None and "2014" in swapped and "2015" not in swapped


def test_an_in_article_twin_declines_when_the_article_has_nothing_else_of_the_kind() -> None:
    maker = nm.NearMisses(ARTICLE, FILM_QUESTIONS, seed=0)
    assert maker.make_inside("Where was Skyfall a hit?", "other", ARTICLE[2][1]) is None


def test_chinese_in_article_twins_use_another_passage_of_the_article() -> None:
    maker = nm.NearMisses(PASSAGES, QUESTIONS, seed=0)
    q = "工业投资连续几个月保持两位数增长？"
    swapped = maker.make_inside(q, "industry", PASSAGES[1][1])
    assert swapped is not None and swapped != q
    new = [w for w in nm.nouns(swapped) if w not in nm.nouns(q)]
    assert new and all(w in PASSAGES[0][1] and w not in PASSAGES[1][1] for w in new)


def test_training_makes_in_article_twins_as_no_answer_examples_tagged_apart() -> None:
    pytest.importorskip("torch")
    from training.reader_data import Example
    from training.train_reader import near_miss_examples

    train = [Example(f"q{i}", "squad", "en", a, i, ctx, q, ((ans, ctx.index(ans)),))
             for i, ((a, ctx), q, ans) in enumerate([
                 (ARTICLE[0], "Who directed Spectre?", "Sam Mendes"),
                 (ARTICLE[1], "Who wrote the screenplay with John Logan?", "Neal Purvis"),
                 (ARTICLE[2], "Where was Skyfall a hit?", "London")])]
    inside = near_miss_examples(train, 1.0, seed=0, inside=True)
    outside = near_miss_examples(train, 1.0, seed=0)
    assert inside and all(e.qid.endswith("~inside") and not e.answers for e in inside)
    assert all(e.qid.endswith("~near") for e in outside)
    for e in inside:  # the swapped-in word is the article's, and not in the example's passage
        new = set(e.question.rstrip("?").split()) - set(next(t for t in train if t.qid + "~inside" == e.qid).question.rstrip("?").split())
        assert new and all(w in " ".join(c for a, c in ARTICLE if a == e.article) and w not in e.context for w in new)
    assert near_miss_examples(train, 0.0, seed=0, inside=True) == []


def test_passages_may_come_as_a_generator() -> None:
    maker = nm.NearMisses((p for p in ARTICLE), (q for q in FILM_QUESTIONS), seed=0)
    assert maker.make_inside("When was the film Sam Mendes directed released?", "film", ARTICLE[0][1]) is not None
