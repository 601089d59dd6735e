"""Follow-up questions (rag/answer/conversation.py): how a question is understood from the turns
before it, and that a question that stands alone gets exactly the answer ``qa.ask`` gives."""

from __future__ import annotations

import pytest

from rag.answer.conversation import Conversation, Turn, resolve
from rag.types import Answer


def _turn(question: str, span: str | None = None, found: bool = True, text: str | None = None) -> Turn:
    answer = Answer(question, found, text or span or "", span, 1.0 if found else 0.0)
    return Turn(question, question, answer)


def _understood(question: str, *turns: Turn) -> str:
    return resolve(question, list(turns)).understood


def test_first_turn_is_asked_as_written() -> None:
    r = resolve("他认为下一步应该怎么做？", [])
    assert r.standalone and r.understood == "他认为下一步应该怎么做？"


def test_chinese_pronoun_takes_the_person_the_last_question_named() -> None:
    assert _understood("他认为下一步应该怎么做？", _turn("赵志国是谁？", "工信部總工程師")) == "赵志国认为下一步应该怎么做？"
    assert _understood("他在哪个部门工作？", _turn("陶青是谁？", "局長")) == "陶青在哪个部门工作？"
    # the most recent person wins
    assert _understood("他认为下一步应该怎么做？", _turn("赵志国是谁？"), _turn("关兵是谁？")) == "关兵认为下一步应该怎么做？"
    # a name the question uses, found in its answer
    named = _turn("赵志国表示了什么？", "聚焦", text="工信部總工程師趙志國表示,下一步將聚焦…")
    assert _understood("他是哪个部门的？", named) == "赵志国是哪个部门的？"


def test_person_from_a_who_answer() -> None:
    turn = _turn("谁是工信部总工程师？", "趙志國")
    assert _understood("他表示了什么？", turn) == "趙志國表示了什么？"
    en = _turn("Who is the chief engineer?", "工信部總工程師趙志國")
    assert _understood("What did he say?", en) == "What did 趙志國 say?"


def test_english_pronouns_and_possessives() -> None:
    turn = _turn("Who is Mary Smith?", "the founder", text="It was founded in 1921 by Mary Smith.")
    assert _understood("What did she found?", turn) == "What did Mary Smith found?"
    assert _understood("When was her library founded?", turn) == "When was Mary Smith's library founded?"
    thing = _turn("When does the city library open?", "9 am", text="The city library opens at 9 am.")
    assert _understood("When does it close?", thing) == "When does the city library close?"
    # only the words the answer repeats belong to the phrase ("welcome" is the question's verb)
    museum = _turn("How many visitors did the museum welcome last year?", "212,000",
                   text="It holds 38,000 objects, and the museum welcomed 212,000 visitors last year.")
    assert _understood("Who pays for its running costs?", museum) == "Who pays for the museum's running costs?"
    # the person a "who" question asks for is its answer, not a name in the question
    who = _turn("Who restored the Saltmarsh Lady?", "Agnes Whitlow", text="restored by the conservator Agnes Whitlow.")
    assert _understood("Where did she train?", who) == "Where did Agnes Whitlow train?"
    friends = _turn("Who founded the Friends of the Harbour Museum?", "Thomas Reed")
    assert _understood("How many members does it have?", friends) == (
        "How many members does the Friends of the Harbour Museum have?")


def test_pinyin_name_is_given_as_the_answer_quotes_it() -> None:
    turn = _turn("Who is Guan Bing?", "關兵", text="關兵表示,下一步應優化存量和做大存量雙管齊下。")
    assert _understood("What does he think should be done next?", turn) == "What does 關兵 think should be done next?"


def test_names_joined_by_a_middle_dot_and_traditional_who() -> None:
    turn = _turn("威廉·瓊斯是誰？", "語文學家")
    assert _understood("他發現了什麼？", turn) == "威廉·瓊斯發現了什麼？"
    assert _understood("他司职什么位置？", _turn("莱昂德罗·内托是哪国人？", "巴西", text="莱昂德罗·内托，巴西足球运动员")) == "莱昂德罗·内托司职什么位置？"
    asked = _turn("誰發表了關於梵語的著名言論？", "威廉·瓊斯")
    assert _understood("他在哪一年發表的？", asked) == "威廉·瓊斯在哪一年發表的？"


def test_an_unresolved_pronoun_leaves_the_question_as_it_is() -> None:
    r = resolve("他在哪一年發表的？", [_turn("梵語有多古老？", found=False)])
    assert r.standalone


def test_demonstratives_and_qi() -> None:
    turn = _turn("陶青是谁？", "局長")
    assert _understood("其职务是什么？", turn) == "陶青的职务是什么？"
    plat = _turn("国家产融合作平台助企融资多少？", "萬億元")
    assert _understood("这个平台今年新增多少？", plat) == "国家产融合作平台今年新增多少？"


def test_ellipsis_takes_the_subject_of_the_last_question() -> None:
    turn = _turn("全国技术合同成交总额达到多少？", "4.49萬億元")
    assert _understood("同比增长了多少？", turn) == "全国技术合同成交总额同比增长了多少？"
    r = resolve("同比增长了多少？", [_turn("前三季度规模以上工业增加值是多少？")])
    assert r.how == "ellipsis" and r.understood == "前三季度规模以上工业增加值同比增长了多少？"


def test_what_about_asks_the_last_question_again_about_the_new_subject() -> None:
    assert _understood("陶青呢？", _turn("赵志国是谁？")) == "陶青是谁？"
    assert _understood("What about Tao Qing?", _turn("Who is Zhao Zhiguo?")) == "Who is Tao Qing?"
    # a subject with an attribute of its own keeps only what the last question asked for
    assert _understood("那马祖的面积呢？", _turn("马祖列岛居民人口约多少人？")) == "马祖的面积多少？"


@pytest.mark.parametrize("question", [
    "陶青是谁？", "前三季度规模以上工业增加值同比增长多少？", "国家技术转移区域中心有几个？",
    "When does the library open?", "Who founded the city library?",
])
def test_a_change_of_subject_needs_no_context(question: str) -> None:
    r = resolve(question, [_turn("赵志国是谁？", "工信部總工程師"), _turn("What did he say?", "more")])
    assert r.standalone and r.understood == question


def test_turns_record_what_was_understood() -> None:
    asked: list[str] = []

    def ask(q: str, k: int, mode: str | None) -> Answer:
        asked.append(q)
        return Answer(q, True, q, None, 1.0)

    conv = Conversation(ask)
    first = conv.ask("赵志国是谁？")
    second = conv.ask("他认为下一步应该怎么做？")
    assert asked == ["赵志国是谁？", "赵志国认为下一步应该怎么做？"]
    assert first.understood is None and first.question == "赵志国是谁？"
    assert second.understood == "赵志国认为下一步应该怎么做？" and second.question == "他认为下一步应该怎么做？"
    assert [t.understood for t in conv.turns] == asked
    conv.reset()
    assert conv.turns == () and conv.ask("他认为下一步应该怎么做？").understood is None


def test_standalone_questions_get_exactly_qa_ask(hash_qa) -> None:
    conv = hash_qa.conversation()
    for q in ["When does the city library open?", "前三季度规模以上工业增加值同比增长多少？",
              "国家技术转移区域中心有几个？", "Who founded the library?"]:
        assert conv.ask(q, k=3) == hash_qa.ask(q, k=3)


def test_follow_up_through_the_index(hash_qa) -> None:
    conv = hash_qa.conversation()
    conv.ask("Who founded the city library?", k=3)
    ans = conv.ask("When does it close?", k=3)
    assert ans.understood == "When does the city library close?"
    assert ans.found and "6 pm" in ans.text
    for c in ans.citations:
        assert hash_qa.document(c.source).text[c.start:c.end] == c.quote


@pytest.mark.slow
def test_seed_article_follow_ups_with_the_real_model(tmp_path_factory) -> None:
    import rag
    from tests.conftest import SEED

    docs = tmp_path_factory.mktemp("conv_docs")
    (docs / SEED.name).write_bytes(SEED.read_bytes())
    index = tmp_path_factory.mktemp("conv_index")
    rag.build_index([docs], index_dir=index)
    qa = rag.load(index)
    conv = qa.conversation()
    conv.ask("赵志国是谁？")
    plan = conv.ask("他认为下一步应该怎么做？")
    assert plan.found and plan.understood == "赵志国认为下一步应该怎么做？"
    assert "趙志國" in plan.text and "關兵" not in plan.text
    conv = qa.conversation()
    conv.ask("陶青是谁？")
    dept = conv.ask("他在哪个部门工作？")
    assert dept.found and "陶青" in dept.text
    conv = qa.conversation()
    conv.ask("Who is the chief engineer?")
    said = conv.ask("What did he say?")
    assert said.found and "趙志國" in (said.understood or "") and "趙志國" in said.text
    # a change of subject after unrelated turns: exactly qa.ask
    q = "前三季度规模以上工业增加值同比增长多少？"
    assert conv.ask(q) == qa.ask(q)


def test_a_resolved_pronoun_asks_about_its_referent() -> None:
    calls: list[tuple[str, ...]] = []

    def ask(q: str, k: int, mode: str | None) -> Answer:
        calls.append(("ask", q))
        return Answer(q, True, q, None, 1.0)

    def ask_about(q: str, subject: str, k: int, mode: str | None) -> Answer:
        calls.append(("about", q, subject))
        return Answer(q, True, q, None, 1.0)

    conv = Conversation(ask, ask_about=ask_about)
    conv.ask("赵志国是谁？")
    conv.ask("他认为下一步应该怎么做？")
    conv.ask("同比增长了多少？")  # an ellipsis is asked plainly
    assert calls[0] == ("ask", "赵志国是谁？")
    assert calls[1] == ("about", "赵志国认为下一步应该怎么做？", "赵志国")
    assert calls[2][0] == "ask"


def test_ask_about_keeps_the_quote_on_the_subject(hash_qa) -> None:
    q = "前三季度规模以上工业增加值同比增长多少？"
    assert hash_qa.ask_about(q, "工业增加值", k=3) == hash_qa.ask(q, k=3)  # it mentions the subject
    about = hash_qa.ask_about("下一步怎么做？", "关兵", k=5)
    assert about.found and "關兵" in about.text
    for c in about.citations:
        assert hash_qa.document(c.source).text[c.start:c.end] == c.quote


def test_someone_else_is_a_name_that_is_not_the_subject() -> None:
    from rag.answer.conversation import mentions, names_someone_else

    assert names_someone_else("關兵表示,下一步應優化存量和做大存量雙管齊下。", "赵志国")
    assert not names_someone_else("工信部總工程師趙志國表示,下一步將聚焦…", "赵志国")
    assert not names_someone_else("She expects the gallery to cost 14 million pounds.", "Helen Marsh")
    assert mentions("Okafor argued that the museum should first finish", "Daniel Okafor")
    assert names_someone_else("Marsh said that the next step is to move the boats.", "Daniel Okafor")


def test_a_question_after_and_is_resolved_as_a_question_of_its_own() -> None:
    cost = _turn("What did Helen Marsh say the new gallery would cost?", "14 million pounds",
                 text="She expects the gallery to cost 14 million pounds and to open in 2029.")
    assert _understood("And when will it open?", cost) == "When will the new gallery open?"
    curator = _turn("Who is the chief curator of the museum?", "Daniel Okafor",
                    text="The chief curator, Daniel Okafor, looks after the collections.")
    assert _understood("And who is its director?", curator) == "Who is the museum's director?"
    # a question after "and" that needs nothing from before is asked exactly as written
    r = resolve("And who founded the Friends of the Harbour Museum?", [curator])
    assert r.standalone and r.understood == "And who founded the Friends of the Harbour Museum?"


def test_a_phrase_after_and_or_what_about_changes_the_last_question() -> None:
    open_ = _turn("When is the harbour museum open?", "10 am to 5 pm")
    assert _understood("And on Mondays in winter?", open_) == "When is the harbour museum open on Mondays in winter?"
    ticket = _turn("How much do tickets for adults cost?", "8 pounds")
    # the phrase with the same preposition is replaced (where it ends is a guess: up to the next
    # preposition or the end)
    understood = _understood("And for children under 16?", ticket)
    assert understood.startswith("How much do tickets for children under 16") and "adults" not in understood
    friends = _turn("How many members does the Friends of the Harbour Museum have?", "2,300",
                    text="a charity with 2,300 members")
    assert _understood("What about its founding year?", friends) == \
        "What is the founding year of the Friends of the Harbour Museum?"
    marsh = _turn("Who is Helen Marsh?", "director", text="The museum's director is Helen Marsh")
    assert _understood("What about Daniel Okafor?", marsh) == "Who is Daniel Okafor?"


def test_chinese_what_about_replaces_the_part_it_stands_for() -> None:
    area = _turn("馬祖列島的面積是多少？", "29.6平方公里")
    assert _understood("那人口呢？", area) == "馬祖列島的人口是多少？"  # another attribute of the same subject
    length = _turn("广三铁路全长多少公里？", "49公里")
    assert _understood("三茂铁路呢？", length) == "三茂铁路全长多少公里？"  # another of the same kind (铁路)
    total = _turn("广茂铁路全长多少公里？", "364.6公里")
    assert _understood("算上两条支线呢？", total) == "算上两条支线，广茂铁路全长多少公里？"  # a condition
    joined = Turn("他是哪一年加入河南建业青年队的？", "赵鹏是哪一年加入河南建业青年队的？",
                  Answer("q", True, "1997年", "1997年", 1.0))
    assert _understood("那进入一线队呢？", joined) == "赵鹏是哪一年进入一线队的？"  # another verb and object
    founded = _turn("馬祖國家風景區是哪一年成立的？", "1999年")
    assert _understood("由哪個機關管理？", founded) == "馬祖國家風景區由哪個機關管理？"  # no subject of its own
