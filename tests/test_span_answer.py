"""Composing answers from span-reader guesses: spans, sentences, refusals, exact citations."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import dataclasses

import pytest

from rag.answer.reader import NOT_FOUND
from rag.answer.span_answer import FEATURES, Calibration, SpanAnswerer
from rag.answer.span_features import SpanGuess
from rag.types import Answer, Citation, CleaningReport, Document, Hit

TEXT = (
    "國家統計局19日發布數據。前三季度，全國規模以上工業增加值同比增長5.8%，比上半年加快0.1個百分點。"
    "九月份，社會消費品零售總額同比增長4.4%。"
)


def _doc(text: str = TEXT, source: str = "news.txt") -> Document:
    return Document(source=source, text=text, report=CleaningReport(source, len(text), len(text)))


DOC = _doc()


def _hit(start: int, end: int, rank: int = 1, source: str = "news.txt", text: str = TEXT) -> Hit:
    return Hit(chunk_id=rank - 1, source=source, text=text[start:end], start=start, end=end, score=1.0,
               bm25_score=3.0, dense_score=0.85, rank=rank)


@dataclass(frozen=True)
class FakeResult:
    guesses: tuple[SpanGuess, ...]

    @property
    def best(self) -> SpanGuess | None:
        return max(self.guesses, key=lambda g: g.score) if self.guesses else None

    def best_within(self, passage: int, start: int, end: int) -> SpanGuess | None:
        inside = [g for g in self.guesses if g.passage == passage and start <= g.start and g.end <= end]
        return max(inside, key=lambda g: g.score) if inside else None


@dataclass
class FakeReader:
    """Proposes every occurrence of ``find`` in the passages it is given (first one best)."""

    find: str | None
    score: float = 8.0
    null: float = 1.0
    calls: int = 0

    def read(self, question: str, passages: Sequence[str]) -> FakeResult:
        self.calls += 1
        out = []
        for i, p in enumerate(passages):
            a = p.find(self.find) if self.find else -1
            while a >= 0:
                out.append(SpanGuess(i, a, a + len(self.find), self.score - 0.01 * len(out), self.null))
                a = p.find(self.find, a + 1)
        return FakeResult(tuple(out))


def _sentence_answer(found: bool, question: str = "q") -> Answer:
    if not found:
        return Answer(question, False, NOT_FOUND, None, 0.0)
    s = TEXT.index("前三季度")
    e = TEXT.index("。", s) + 1
    return Answer(question, True, TEXT[s:e], None, 0.6, (Citation(1, "news.txt", 0, s, e, TEXT[s:e]),))


def _calibration(answer_at: float, span_at: float) -> Calibration:
    # confidence grows with the margin (first feature) only
    n = len(FEATURES)
    return Calibration((1.0,) + (0.0,) * (n - 1), 0.0, (5.0,) + (0.0,) * (n - 1), (1.0,) * n, answer_at, span_at)


def _answerer(reader: FakeReader, answer_at: float = 0.5, span_at: float = 0.6) -> SpanAnswerer:
    return SpanAnswerer(reader, {"news.txt": DOC}, _calibration(answer_at, span_at))


def test_confident_span_comes_with_its_sentence_and_exact_offsets() -> None:
    ans = _answerer(FakeReader("5.8%，")).answer("增长多少？", [_hit(0, len(TEXT))], _sentence_answer(True))
    assert ans.found and ans.span == "5.8%"  # trimmed of the trailing comma
    assert "5.8%" in ans.text and ans.text.startswith("前三季度")
    sc = ans.span_citation
    assert sc is not None and DOC.text[sc.start : sc.end] == sc.quote == "5.8%"
    for c in ans.citations:
        assert DOC.text[c.start : c.end] == c.quote
    assert ans.citations[0].start <= sc.start and sc.end <= ans.citations[0].end


def test_offsets_hold_for_a_hit_in_the_middle_of_the_document() -> None:
    start = TEXT.index("九月份")
    ans = _answerer(FakeReader("4.4%")).answer("九月增长多少？", [_hit(start, len(TEXT))], _sentence_answer(False))
    assert ans.span == "4.4%" and ans.text.startswith("九月份")
    assert DOC.text[ans.span_citation.start : ans.span_citation.end] == "4.4%"


def test_unsure_span_keeps_the_sentence_answer_without_a_span() -> None:
    reader = FakeReader("5.8%", score=5.6, null=0.0)  # margin 5.6 -> confidence ~0.65
    ans = _answerer(reader, answer_at=0.5, span_at=0.9).answer("q", [_hit(0, len(TEXT))], _sentence_answer(True))
    assert ans.found and ans.span is None and ans.span_citation is None
    assert ans.text == _sentence_answer(True).text


def test_unsure_span_without_a_sentence_answer_quotes_the_span_sentence() -> None:
    reader = FakeReader("5.8%", score=5.6, null=0.0)
    ans = _answerer(reader, answer_at=0.5, span_at=0.9).answer("q", [_hit(0, len(TEXT))], _sentence_answer(False))
    assert ans.found and ans.span is None and "5.8%" in ans.text
    assert all(DOC.text[c.start : c.end] == c.quote for c in ans.citations)


def test_low_confidence_refuses_and_keeps_the_closest_passages() -> None:
    hits = [_hit(0, len(TEXT))]
    ans = _answerer(FakeReader("5.8%", score=1.0, null=4.0)).answer("首都是哪里？", hits, _sentence_answer(True))
    assert not ans.found and ans.text == NOT_FOUND and ans.span is None and ans.citations == ()
    assert ans.passages == tuple(hits)


def test_no_guess_and_no_sentence_is_a_refusal() -> None:
    ans = _answerer(FakeReader(None), answer_at=0.0, span_at=0.5).answer("q", [_hit(0, len(TEXT))], _sentence_answer(False))
    assert not ans.found


def test_the_sentence_readers_typed_span_wins() -> None:
    sent = _sentence_answer(True)
    c = sent.citations[0]
    a = TEXT.index("5.8%")
    typed = Answer("q", True, sent.text, "5.8%", 0.6, sent.citations, Citation(1, c.source, c.chunk_id, a, a + 4, "5.8%"))
    ans = _answerer(FakeReader("同比增長5.8%")).answer("q", [_hit(0, len(TEXT))], typed)
    assert ans.span == "5.8%" and ans.span_citation == typed.span_citation  # they agree: exact typed bounds
    ans = _answerer(FakeReader("0.1個百分點")).answer("q", [_hit(0, len(TEXT))], typed)
    assert ans.span == "0.1個百分點"  # they disagree: the reader decides


def test_a_span_outside_the_sentence_readers_sentence_is_not_shown() -> None:
    # the sentence reader quotes the 5.8% sentence; the span reader's only guess is elsewhere
    ans = _answerer(FakeReader("4.4%")).answer("q", [_hit(0, len(TEXT))], _sentence_answer(True))
    assert ans.found and ans.span is None and ans.text == _sentence_answer(True).text


def test_the_sentence_readers_passage_is_read_even_below_the_top() -> None:
    reader = FakeReader("5.8%")
    a = SpanAnswerer(reader, {"news.txt": DOC}, _calibration(0.5, 0.6))
    a.settings = type(a.settings)(passages=1)
    nine = TEXT.index("九月份")
    hits = [_hit(nine, len(TEXT), 1), _hit(0, nine, 2)]
    ans = a.answer("q", hits, _sentence_answer(True))
    assert ans.span == "5.8%" and ans.span_citation is not None and ans.span_citation.n == 1


@dataclass
class TwoGuesses(FakeReader):
    """Guesses "5.8%" (score 2) and "4.4%" (score ``score``) in the first passage."""

    def read(self, question: str, passages: Sequence[str]) -> FakeResult:
        p = passages[0]
        a, b = p.index("5.8%"), p.index("4.4%")
        return FakeResult((SpanGuess(0, a, a + 4, 2.0, -10.0), SpanGuess(0, b, b + 4, self.score, -10.0)))


def test_a_far_surer_span_elsewhere_quotes_its_own_sentence() -> None:
    ans = _answerer(TwoGuesses(None, score=20.0)).answer("q", [_hit(0, len(TEXT))], _sentence_answer(True))
    assert ans.span == "4.4%" and ans.text.startswith("九月份")
    assert DOC.text[ans.span_citation.start : ans.span_citation.end] == "4.4%"


def test_across_languages_the_reader_does_not_move_the_quote() -> None:
    sentence = _sentence_answer(True)
    ans = _answerer(TwoGuesses(None, score=20.0)).answer("q", [_hit(0, len(TEXT))], sentence, same_language=False)
    assert ans.text == sentence.text and ans.span == "5.8%"


def test_only_the_top_passages_are_read() -> None:
    reader = FakeReader("4.4%")
    a = SpanAnswerer(reader, {"news.txt": DOC}, _calibration(0.5, 0.6))
    a.settings = type(a.settings)(passages=1)
    hits = [_hit(0, 20, 1), _hit(TEXT.index("九月份"), len(TEXT), 2)]
    ans = a.answer("q", hits, _sentence_answer(False))
    assert reader.calls == 1 and not ans.found  # 4.4% is only in the second passage


def test_other_sentences_stating_the_span_are_cited_too() -> None:
    text = "甲公司成立於1998年。" + "其他內容。" * 5 + "該公司在1998年成立。"
    doc = _doc(text, "b.txt")
    a = SpanAnswerer(FakeReader("1998年"), {"b.txt": doc}, _calibration(0.5, 0.6))
    hits = [_hit(0, 12, 1, "b.txt", text), _hit(12, len(text), 2, "b.txt", text)]
    ans = a.answer("哪一年成立？", hits, Answer("q", False, NOT_FOUND, None, 0.0))
    assert ans.span == "1998年" and len(ans.citations) == 2
    assert [c.n for c in ans.citations] == [1, 2]
    assert all(doc.text[c.start : c.end] == c.quote and "1998年" in c.quote for c in ans.citations)


def test_calibration_round_trips_and_rejects_other_features() -> None:
    cal = _calibration(0.4, 0.7)
    assert Calibration.from_dict(cal.to_dict()) == cal
    bad = cal.to_dict() | {"features": ["margin"]}
    with pytest.raises(ValueError):
        Calibration.from_dict(bad)
    assert 0.0 < cal.confidence((1e9,) * len(FEATURES)) <= 1.0


def _answer_for(sentence_start: str, score: float) -> Answer:
    s = TEXT.index(sentence_start)
    e = TEXT.index("。", s) + 1
    return Answer("q", True, TEXT[s:e], None, score, (Citation(1, "news.txt", 0, s, e, TEXT[s:e]),))


def test_the_alternative_sentence_the_reader_finds_a_surer_span_in_is_quoted() -> None:
    first, second = _answer_for("前三季度", 0.6), _answer_for("九月份", 0.5)
    hits = [_hit(0, len(TEXT))]
    ans = _answerer(TwoGuesses(None, score=7.0)).answer("q", hits, first, [second])
    assert ans.text == second.text and ans.span == "4.4%"  # 0.5 + 0.3 * 7 beats 0.6 + 0.3 * 2
    assert DOC.text[ans.span_citation.start : ans.span_citation.end] == "4.4%"
    assert all(DOC.text[c.start : c.end] == c.quote for c in ans.citations)
    # without alternatives, or with the span ignored, the sentence reader's first choice stays
    assert _answerer(TwoGuesses(None, score=7.0)).answer("q", hits, first).text == first.text
    a = _answerer(TwoGuesses(None, score=7.0))
    a.settings = type(a.settings)(span_weight=0.0)
    assert a.answer("q", hits, first, [second]).text == first.text
    # across languages the reader does not pick among the alternatives either
    assert _answerer(TwoGuesses(None, score=7.0)).answer("q", hits, first, [second], same_language=False).text == first.text


def test_an_alternative_without_any_span_does_not_win() -> None:
    first, second = _answer_for("前三季度", 0.6), _answer_for("九月份", 0.9)
    ans = _answerer(FakeReader("5.8%")).answer("q", [_hit(0, len(TEXT))], first, [second])
    assert ans.text == first.text and ans.span == "5.8%"


def test_coverage_features_describe_the_span_sentence_and_its_surroundings() -> None:
    from rag.answer.reader import TermCoverage

    seen: list[str] = []

    def coverage(question: str, text: str) -> TermCoverage:
        seen.append(text)
        return TermCoverage(0.25 if text.startswith("九月份") else 0.75, 0.5)

    a = SpanAnswerer(FakeReader("5.8%"), {"news.txt": DOC}, _calibration(0.5, 0.6), coverage=coverage)
    f = dict(zip(FEATURES, a.evidence("增长多少？", [_hit(0, len(TEXT))], _sentence_answer(True)).features))
    assert (f["cover_sentence"], f["cover_near"], f["missing_word"]) == (0.75, 0.75, 0.5)
    assert seen[0] == _sentence_answer(True).text  # the sentence holding the span
    assert "5.8%" in seen[1] and len(seen[1]) <= len("5.8%") + 80  # the text right around it
    # the span outside any sentence-reader sentence: its own sentence is measured
    seen.clear()
    start = TEXT.index("九月份")
    b = SpanAnswerer(FakeReader("4.4%"), {"news.txt": DOC}, _calibration(0.5, 0.6), coverage=coverage)
    f2 = dict(zip(FEATURES, b.evidence("九月增长多少？", [_hit(start, len(TEXT))], _sentence_answer(False)).features))
    assert f2["cover_sentence"] == 0.25 and seen[0].startswith("九月份")
    # without a coverage provider the features read as full coverage
    plain = _answerer(FakeReader("5.8%")).evidence("增长多少？", [_hit(0, len(TEXT))], _sentence_answer(True))
    assert dict(zip(FEATURES, plain.features))["cover_sentence"] == 1.0


def test_calibration_thresholds_are_per_language_and_round_trip() -> None:
    from rag.answer.span_answer import FEATURES, Calibration

    n = len(FEATURES)
    cal = Calibration((0.0,) * n, 0.0, (0.0,) * n, (1.0,) * n, 0.4, 0.5, 0.1, 0.6)
    assert cal.thresholds("陶青是谁？") == (0.4, 0.5)
    assert cal.thresholds("Who is Tao Qing?") == (0.1, 0.6)
    assert Calibration.from_dict(cal.to_dict()) == cal
    shared = Calibration((0.0,) * n, 0.0, (0.0,) * n, (1.0,) * n, 0.4, 0.5)  # one threshold for both
    assert shared.thresholds("Who is Tao Qing?") == (0.4, 0.5) and Calibration.from_dict(shared.to_dict()) == shared
    assert FEATURES[-1] == "latin"


def test_who_is_roles_can_be_turned_off() -> None:
    """A who-is question's span is the person's role; with ``who_is_roles`` off (for
    ``benchmarks/bench_rules.py``) it is what the readers found."""
    from rag.answer.decision import consider, decide
    from rag.answer.reader import Reader

    text = "數據顯示增長。工信部運行監測協調局局長陶青介紹,將聚焦新型工業化。陶青說,將充分發揮作用。"
    doc = _doc(text)
    hits = [_hit(0, len(text), text=text)]
    reader = Reader({"news.txt": doc}, lambda t: 1, 10, None, 1.0, lambda q: False)
    answerer = SpanAnswerer(FakeReader("陶青"), {"news.txt": doc}, _calibration(0.5, 0.6))
    on = decide(consider("陶青是谁？", hits, reader, answerer), answerer)
    assert on.found and on.span == "工信部運行監測協調局局長"
    answerer.settings = dataclasses.replace(answerer.settings, who_is_roles=False)
    off = decide(consider("陶青是谁？", hits, reader, answerer), answerer)
    assert off.span != on.span
