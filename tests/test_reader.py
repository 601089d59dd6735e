import pytest

from rag.answer.question import parse_question, salient_words
from rag.answer.reader import extract_span


@pytest.mark.parametrize(
    "question,kind",
    [
        ("前三季度规模以上工业增加值同比增长多少？", "number"),
        ("将建成第几批专板？", "ordinal"),
        ("关兵是哪个研究所的所长？", "entity"),
        ("该公司成立于哪一年？", "date"),
        ("How many centres are there?", "number"),
        ("Tell me about it", "other"),
    ],
)
def test_question_kind(question, kind):
    assert parse_question(question).kind == kind


def test_salient_words():
    assert "gdp" in salient_words("今年全国GDP同比增长多少？")
    assert "灵璧县" in salient_words("灵璧县属于哪个省？")
    assert "担任" not in salient_words("赵志国在工信部担任什么职务？")


@pytest.mark.parametrize(
    "question,sentence,span",
    [
        ("前三季度规模以上工业增加值同比增长多少？", "前三季度規模以上工業增加值同比增長5.8%,裝備制造業增長較快。", "5.8%"),
        ("工业投资连续几个月保持两位数增长？", "工業投資連續8個月保持兩位數增長。", "8個月"),
        ("國家技術轉移區域中心有幾個？", "培育國家技術轉移示范機構420家、國家技術轉移區域中心12個;", "12個"),
        ("将建成第几批区域性股权市场专板？", "盡快建成第三批區域性股權市場專板,優化實施。", "第三批"),
        ("为多少个项目搭建了路演对接平台？", "為260個項目搭建了路演對接平臺,股權融資金額超過100億元。", "260個"),
        # entities are the span reader's (anchor-placed entity spans were measured and removed)
        ("工信部總工程師是誰？", "工信部總工程師趙志國表示,下一步將聚焦加快推進新型工業化。", None),
    ],
)
def test_extract_span(question, sentence, span):
    text = "前文。" + sentence
    m = extract_span(parse_question(question), text, 3, len(text))
    if span is None:
        assert m is None
        return
    assert m is not None and m.quote == span
    assert text[m.start:m.end] == m.quote


def test_no_span_when_unsure():
    q = parse_question("赵志国在工信部担任什么职务？")
    text = "工信部總工程師趙志國表示,下一步將聚焦加快推進新型工業化。"
    m = extract_span(q, text, 0, len(text))
    assert m is None or text[m.start:m.end] == m.quote


def test_alternatives_quote_the_next_best_sentences_with_exact_citations():
    from rag.answer.reader import Reader
    from rag.types import CleaningReport, Document, Hit

    text = ("前三季度，全国规模以上工业增加值同比增长5.8%。九月份，工业增加值同比增长4.5%。"
            "上半年，全国规模以上工业增加值同比增长5.6%。天气晴朗。")
    doc = Document("a.txt", text, CleaningReport("a.txt", len(text), len(text)))
    hits = [Hit(0, "a.txt", text, 0, len(text), 1.0, 3.0, 0.8, 1)]
    reader = Reader({"a.txt": doc}, lambda t: 1, 10, None, 1.0, lambda q: False)
    answers = reader.answers("前三季度工业增加值同比增长多少？", hits, 3)
    assert answers[0] == reader.read("前三季度工业增加值同比增长多少？", hits)
    assert len(answers) == 3 and all(a.found for a in answers)
    assert answers[0].text.startswith("前三季度")
    assert len({a.citations[0].start for a in answers}) == 3  # three different sentences
    assert [a.score for a in answers] == sorted((a.score for a in answers), reverse=True)
    for a in answers:
        assert all(text[c.start : c.end] == c.quote for c in a.citations)
        if a.span_citation is not None:
            assert text[a.span_citation.start : a.span_citation.end] == a.span
    refused = reader.answers("北京的首都是哪里？", hits, 3)
    assert len(refused) == 1 and not refused[0].found


def test_coverage_measures_how_much_of_the_question_a_text_states():
    from rag.answer.reader import Reader, TermCoverage
    from rag.types import CleaningReport, Document

    text = "前三季度，全国规模以上工业增加值同比增长5.8%。"
    doc = Document("a.txt", text, CleaningReport("a.txt", len(text), len(text)))
    reader = Reader({"a.txt": doc}, lambda t: 1, 10, None, 1.0, lambda q: False)
    full = reader.coverage("前三季度工业增加值同比增长多少？", text)
    assert full.share > 0.9 and full.missing == 0.0
    # a near miss: on topic, but the thing asked about (equipment manufacturing) is not named
    near = reader.coverage("前三季度装备制造业增加值同比增长多少？", text)
    assert near.share < full.share and near.missing > 0.1
    # Traditional text, Simplified question: compared in matching form
    assert reader.coverage("前三季度工业增加值同比增长多少？", "前三季度，規模以上工業增加值同比增長5.8%。") == full
    # across languages words cannot be compared: no evidence either way
    assert reader.coverage("How much did industrial output grow?", text) == TermCoverage(1.0, 0.0)


def test_names_unknown_only_for_what_the_corpus_never_mentions():
    from rag.answer.reader import Reader
    from rag.types import CleaningReport, Document, Hit

    text = "前三季度，全国规模以上工业增加值同比增长5.8%。陶青介绍了有关情况。"
    doc = Document("a.txt", text, CleaningReport("a.txt", len(text), len(text)))
    hits = [Hit(0, "a.txt", text, 0, len(text), 1.0, 3.0, 0.8, 1)]
    words = {"前三", "季度", "全国", "规模", "工业", "增加值", "增长", "陶青", "介绍", "5.8", "%"}
    reader = Reader({"a.txt": doc}, lambda t: 8 if t in words or t in text else 0, 10, None, 1.0, lambda q: False)
    assert reader.names_unknown("今年全国GDP同比增长多少？", hits)  # GDP: never mentioned
    assert not reader.names_unknown("前三季度工业增加值同比增长多少？", hits)
    # across languages names are translated, figures and acronyms are not; a Chinese name in
    # pinyin is looked for in Han characters: Tao Qing is 陶青, no one in the text reads Guan Bing
    assert not reader.names_unknown("What did Tao Qing say?", hits)
    assert reader.names_unknown("What did Guan Bing say?", hits)
    assert reader.names_unknown("How much did GDP grow?", hits)


def test_across_languages_the_sentence_naming_the_person_comes_first():
    from rag.answer.reader import Reader, ReaderSettings
    from rag.types import CleaningReport, Document, Hit

    text = "趙志國表示,將推進新型工業化。陶青說,將發揮綠色通道機制。"
    doc = Document("a.txt", text, CleaningReport("a.txt", len(text), len(text)))
    hits = [Hit(0, "a.txt", text, 0, len(text), 1.0, 3.0, 0.8, 1)]
    # no embedder: every sentence is as similar to the question; only the name can tell them apart
    reader = Reader({"a.txt": doc}, lambda t: 1, 10, None, 1.0, lambda q: False, ReaderSettings(min_dense=0.0))
    for question, said in (("What did Tao Qing say?", "陶青說"), ("What did Zhiguo Zhao say?", "趙志國表示")):
        answer = reader.read(question, hits)
        assert answer.found and answer.text.startswith(said)
        assert all(text[c.start:c.end] == c.quote for c in answer.citations)
    assert not reader.read("What did Guan Bing say?", hits).found  # no one in the text is named so


@pytest.mark.parametrize(
    ("question", "unit"),
    [("工信部联合了多少家金融机构？", "家"), ("有幾個項目？", "个"), ("增长多少？", ""), ("多少企业参与？", "企"),
     ("哪一年成立？", ""), ("How many banks joined?", "")],
)
def test_unit_is_the_measure_word_after_how_many(question: str, unit: str) -> None:
    assert parse_question(question).unit == unit


def test_each_rule_of_the_sentence_reader_can_be_turned_off():
    """The switches ``benchmarks/bench_rules.py`` measures the rules by: typed spans by kind of
    question, the kind bonus, the pinyin-name gate."""
    import dataclasses

    from rag.answer.reader import Reader, ReaderSettings
    from rag.types import CleaningReport, Document, Hit

    text = "前三季度，全国规模以上工业增加值同比增长5.8%。陶青介绍了有关情况。"
    doc = Document("a.txt", text, CleaningReport("a.txt", len(text), len(text)))
    hits = [Hit(0, "a.txt", text, 0, len(text), 1.0, 3.0, 0.8, 1)]

    def reader(**changes) -> Reader:
        return Reader({"a.txt": doc}, lambda t: 1, 10, None, 1.0, lambda q: False,
                      dataclasses.replace(ReaderSettings(min_dense=0.0), **changes))

    question = "前三季度规模以上工业增加值同比增长多少？"
    shipped = reader().read(question, hits)
    assert shipped.found and shipped.span == "5.8%"
    assert reader(typed_kinds=("date",)).read(question, hits).span is None  # a figure: not placed
    untyped = reader(typed_kinds=()).read(question, hits)
    assert untyped.found and untyped.span is None and len(untyped.citations) == 1
    # the kind bonus moves a sentence holding a figure up; without it the scores differ by it
    scores = {a.citations[0].quote: a.score for a in reader().answers(question, hits, 3)}
    flat = {a.citations[0].quote: a.score for a in reader(w_kind=0.0, kind_penalty=0.0).answers(question, hits, 3)}
    assert scores != flat
    # across languages, a name in pinyin no one in the text reads as refuses; the gate can go
    assert reader().names_unknown("What did Guan Bing say?", hits)
    assert not reader(pinyin_gate=False).names_unknown("What did Guan Bing say?", hits)
