"""Who-is questions answered with the person's role (rag/answer/roles.py)."""

from __future__ import annotations

import pytest

from rag.answer.roles import role_answer, role_in, who_is
from rag.types import Answer, Citation, CleaningReport, Document, Hit


@pytest.mark.parametrize(("question", "person"), [
    ("陶青是谁？", "陶青"), ("陶青是何許人？", "陶青"), ("赵志国是什么人？", "赵志国"), ("關兵是誰？", "關兵"),
    ("Who is Tao Qing?", "Tao Qing"), ("Who's Margaret Ellis?", "Margaret Ellis"),
    ("Tell me who Margaret Ellis was.", "Margaret Ellis"), ("Who was Margaret Ellis?", "Margaret Ellis"),
    ("谁是工信部总工程师？", None), ("Who restored it?", None), ("What is the Saltmarsh Lady?", None),
])
def test_who_is_finds_the_person_asked_about(question: str, person: str | None) -> None:
    assert who_is(question) == person


@pytest.mark.parametrize(("text", "person", "role"), [
    ("工信部運行監測協調局局長陶青介紹,將聚焦新型工業", "陶青", "工信部運行監測協調局局長"),
    ("中國電子信息產業發展研究院工業經濟研究所所長關兵認為,今年", "Guan Bing", "中國電子信息產業發展研究院工業經濟研究所所長"),
    ("據介紹陶青表示", "陶青", None),  # a connective, not a title
    ("陶青說,將充分發揮", "陶青", None),
    ("Designed by the engineer Margaret Ellis, it opened in 1931.", "Margaret Ellis", "the engineer"),
    ("The chief curator, Daniel Okafor, looks after the collections.", "Daniel Okafor", "The chief curator"),
    ("The director is Helen Marsh, a marine archaeologist who joined in 1991.", "Helen Marsh", "a marine archaeologist"),
    ("founded in 1980 by the fisherman and writer Thomas Reed.", "Thomas Reed", "the fisherman and writer"),
    ("Marsh said that the next step is a gallery.", "Marsh", None),
])
def test_the_role_as_the_documents_state_it(text: str, person: str, role: str | None) -> None:
    found = role_in(text, person)
    assert (text[found[0]:found[1]] if found else None) == role


def test_role_answer_cites_the_role_inside_its_sentence() -> None:
    text = "數據顯示增長。工信部運行監測協調局局長陶青介紹,將聚焦新型工業化。陶青說,將充分發揮作用。"
    doc = Document("a.txt", text, CleaningReport("a.txt", len(text), len(text), ()), "", "utf-8")
    hit = Hit(0, "a.txt", text, 0, len(text), 1.0, 1.0, 0.9, 1)
    refused = Answer("陶青是谁？", False, "not found", None, 0.1, (), None, (hit,))
    ans = role_answer(refused, [hit], {"a.txt": doc}, 0.42)
    assert ans is not None and ans.found and ans.span == "工信部運行監測協調局局長" and ans.score == 0.42
    sc, quote = ans.span_citation, ans.citations[0]
    assert text[sc.start:sc.end] == sc.quote == ans.span and text[quote.start:quote.end] == quote.quote
    assert quote.start <= sc.start and sc.end <= quote.end and quote.quote.startswith("工信部")
    assert role_answer(Answer("火星上有多少人？", False, "", None, 0.0, (), None, ()), [hit], {"a.txt": doc}, 0.4) is None
    nobody = Answer("王五是谁？", False, "", None, 0.0, (), None, (hit,))
    assert role_answer(nobody, [hit], {"a.txt": doc}, 0.4) is None
    cited = Answer("陶青是谁？", True, text[7:33], None, 0.8, (Citation(1, "a.txt", 0, 7, 33, text[7:33]),), None, (hit,))
    again = role_answer(cited, [hit], {"a.txt": doc}, 0.4)
    assert again is not None and again.score == 0.8 and again.citations == cited.citations
