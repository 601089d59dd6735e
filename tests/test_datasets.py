"""rag.evaluation.datasets: SQuAD (CMRC/DRCD flavours) and JSON-lines evaluation sets."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from rag.evaluation.datasets import (
    EvalPassage,
    EvalQuestion,
    EvalSet,
    load_eval_set,
    load_jsonl,
    load_squad,
)
from rag.errors import DocumentError, RagError

FIXTURE = Path(__file__).parent / "fixtures" / "tiny_squad.json"


def _write(tmp_path: Path, name: str, content: object) -> Path:
    p = tmp_path / name
    p.write_text(
        content if isinstance(content, str) else json.dumps(content, ensure_ascii=False),
        encoding="utf-8",
    )
    return p


class TestSquadFixture:
    def test_passages_and_sources(self) -> None:
        es = load_squad(FIXTURE)
        assert es.name == "tiny_squad"
        assert [p.source for p in es.passages] == [
            "tiny_squad/TINY_0",  # CMRC-style paragraph id
            "tiny_squad/2001-1",  # DRCD-style paragraph id
            "tiny_squad/2001-2",
            "tiny_squad/2-0",  # no id: <article index>-<paragraph index>
        ]
        assert es.has_corpus
        assert all(isinstance(p, EvalPassage) for p in es.passages)

    def test_questions(self) -> None:
        es = load_squad(FIXTURE)
        by_id = {q.id: q for q in es.questions}
        assert len(by_id) == len(es.questions) == 7
        q = by_id["TINY_0_QUERY_0"]
        # CMRC repeats the same answer per annotator: de-duplicated
        assert q.answers == ("四川、陕西和甘肃",)
        assert q.gold_sources == ("tiny_squad/TINY_0",)
        assert q.gold_paragraphs == ()
        assert by_id["2001-1-1"].answers == ("文湖線",)
        assert by_id["2001-1-1"].gold_sources == ("tiny_squad/2001-1",)
        assert by_id["en-2"].answers == ()
        assert not by_id["en-2"].answerable

    def test_results_are_frozen(self) -> None:
        es = load_squad(FIXTURE)
        with pytest.raises(dataclasses.FrozenInstanceError):
            es.name = "x"  # type: ignore[misc]
        with pytest.raises(dataclasses.FrozenInstanceError):
            es.questions[0].answers = ()  # type: ignore[misc]

    def test_head_keeps_all_passages(self) -> None:
        es = load_squad(FIXTURE)
        h = es.head(2)
        assert len(h.questions) == 2 and h.passages == es.passages
        assert es.head(None) is es


class TestSquadVariants:
    def test_duplicate_contexts_collapse(self, tmp_path: Path) -> None:
        data = {
            "data": [
                {"paragraphs": [{"id": "A-1", "context": "同一段文字。", "qas": [
                    {"id": "q1", "question": "甲？", "answers": [{"text": "同一"}]}]}]},
                {"paragraphs": [{"id": "B-1", "context": "同一段文字。", "qas": [
                    {"id": "q2", "question": "乙？", "answers": [{"text": "文字"}]}]}]},
            ]
        }
        es = load_squad(_write(tmp_path, "dup.json", data))
        assert [p.source for p in es.passages] == ["dup/A-1"]
        assert [q.gold_sources for q in es.questions] == [("dup/A-1",), ("dup/A-1",)]

    def test_duplicate_paragraph_ids_with_different_text_stay_apart(
        self, tmp_path: Path
    ) -> None:
        data = {"data": [{"paragraphs": [
            {"id": "P", "context": "第一段。", "qas": []},
            {"id": "P", "context": "第二段。", "qas": []},
        ]}]}
        es = load_squad(_write(tmp_path, "ids.json", data))
        assert [p.source for p in es.passages] == ["ids/P", "ids/P~2"]

    def test_missing_question_ids_and_squad2(self, tmp_path: Path) -> None:
        data = {"data": [{"paragraphs": [{"context": "文本。", "qas": [
            {"question": "问？", "answers": [{"text": "文本"}]},
            {"question": "不可答？", "answers": [], "is_impossible": True,
             "plausible_answers": [{"text": "文本"}]},
        ]}]}]}
        es = load_squad(_write(tmp_path, "s2.json", data))
        assert [q.id for q in es.questions] == ["s2/0-0#0", "s2/0-0#1"]
        assert es.questions[1].answers == ()

    @pytest.mark.parametrize(
        ("content", "reason"),
        [
            ("{not json", "invalid JSON"),
            ({"version": "1"}, "'data' list"),
            ({"data": [{"paragraphs": [{"qas": []}]}]}, "'context'"),
            ({"data": [{"paragraphs": [{"context": "x", "qas": [{"id": "1"}]}]}]}, "'question'"),
            ({"data": [{"paragraphs": [{"context": "x", "qas": ["q"]}]}]}, "'question'"),
            ({"data": [{"paragraphs": [{"context": "x", "qas": [
                {"id": "1", "question": "a"}, {"id": "1", "question": "b"}]}]}]},
             "duplicate question id"),
            ({"data": []}, "no passages"),
        ],
    )
    def test_errors(self, tmp_path: Path, content: object, reason: str) -> None:
        p = _write(tmp_path, "bad.json", content)
        with pytest.raises(DocumentError) as ei:
            load_squad(p)
        assert reason in str(ei.value)
        assert ei.value.path == str(p)

    def test_empty_question_is_skipped(self, tmp_path: Path) -> None:
        data = {"data": [{"paragraphs": [{"id": "P", "context": "文本。", "qas": [
            {"id": "a", "question": " ", "answers": [{"text": "文本"}]},
            {"id": "b", "question": "问？", "answers": [{"text": "文本"}]},
        ]}]}]}
        es = load_squad(_write(tmp_path, "e.json", data))
        assert [q.id for q in es.questions] == ["b"]
        assert es.skipped == ("a: empty question",)
        assert es.head(1).skipped == es.skipped

    def test_missing_file(self, tmp_path: Path) -> None:
        with pytest.raises(DocumentError, match="not found"):
            load_squad(tmp_path / "nope.json")


class TestJsonl:
    def test_seed_format(self, tmp_path: Path) -> None:
        lines = [
            {"id": "s-1", "question": "增长多少？", "answers": ["5.8%"], "paragraphs": [0, 1]},
            {"id": "s-2", "question": "GDP？", "answers": [], "paragraphs": []},
            {"id": "s-3", "question": "Which?", "answers": ["x"], "paragraphs": [2],
             "source": "doc.txt"},
        ]
        p = _write(tmp_path, "qa.jsonl", "\n".join(json.dumps(x) for x in lines) + "\n\n")
        es = load_jsonl(p)
        assert es.name == "qa" and es.passages == () and not es.has_corpus
        assert es.questions[0] == EvalQuestion(
            id="s-1", question="增长多少？", answers=("5.8%",), gold_sources=(),
            gold_paragraphs=(0, 1),
        )
        assert not es.questions[1].answerable
        assert es.questions[2].gold_sources == ("doc.txt",)

    @pytest.mark.parametrize(
        ("line", "reason"),
        [
            ("[1, 2]", "JSON object"),
            ('{"id": "a", "question": ""}', "'question'"),
            ('{"id": "a", "question": "q", "answers": "x"}', "'answers'"),
            ('{"id": "a", "question": "q", "paragraphs": [-1]}', "'paragraphs'"),
            ('{"id": "a", "question": "q", "paragraphs": ["0"]}', "'paragraphs'"),
            ('{"id": "a", "question": ', "invalid JSON"),
        ],
    )
    def test_errors_name_the_line(self, tmp_path: Path, line: str, reason: str) -> None:
        p = _write(tmp_path, "bad.jsonl", '{"id": "ok", "question": "q"}\n' + line + "\n")
        with pytest.raises(DocumentError) as ei:
            load_jsonl(p)
        assert "line 2" in str(ei.value) and reason in str(ei.value)

    def test_duplicate_ids_and_empty_file(self, tmp_path: Path) -> None:
        p = _write(tmp_path, "dup.jsonl", '{"id": 1, "question": "a"}\n{"id": "1", "question": "b"}\n')
        with pytest.raises(DocumentError, match="duplicate"):
            load_jsonl(p)
        with pytest.raises(DocumentError, match="no questions"):
            load_jsonl(_write(tmp_path, "empty.jsonl", "\n"))


class TestDispatch:
    def test_by_extension(self, tmp_path: Path) -> None:
        assert load_eval_set(FIXTURE).has_corpus
        p = _write(tmp_path, "q.jsonl", '{"id": "1", "question": "q?", "answers": ["a"]}\n')
        assert isinstance(load_eval_set(p), EvalSet)
        assert not load_eval_set(p).has_corpus

    def test_by_content(self, tmp_path: Path) -> None:
        squad = _write(tmp_path, "set.data", FIXTURE.read_text(encoding="utf-8"))
        assert load_eval_set(squad).has_corpus
        lines = _write(tmp_path, "set.txt", '{"id": "1", "question": "q?"}\n{"id": "2", "question": "r?"}\n')
        assert len(load_eval_set(lines).questions) == 2

    def test_errors_are_rag_errors(self, tmp_path: Path) -> None:
        with pytest.raises(RagError):
            load_eval_set(tmp_path / "missing.jsonl")
        with pytest.raises(RagError):
            load_eval_set(tmp_path)


def test_gzipped_squad_reads_like_the_plain_file(tmp_path):
    import gzip
    from pathlib import Path

    import pytest

    from rag.errors import DocumentError
    from rag.evaluation.datasets import load_eval_set

    plain = Path(__file__).parent / "fixtures" / "tiny_squad.json"
    packed = tmp_path / "tiny_squad.json.gz"
    packed.write_bytes(gzip.compress(plain.read_bytes()))
    a, b = load_eval_set(plain), load_eval_set(packed)
    assert (a.name, a.passages, a.questions) == (b.name, b.passages, b.questions)
    broken = tmp_path / "broken.json.gz"
    broken.write_bytes(b"not gzip at all")
    with pytest.raises(DocumentError, match="broken.json.gz"):
        load_eval_set(broken)
