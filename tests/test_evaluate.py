"""rag.evaluation.evaluate: aggregation checked by hand on a scripted QA stub, then end to end on the
tiny SQuAD fixture and a JSON-lines set with the deterministic ``test-hash`` embedder."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from rag.evaluation.cli import add_eval_parser
from rag.evaluation.datasets import EvalQuestion, EvalSet, load_squad
from rag.errors import RagError
from rag.evaluation.report import render_table
from rag.evaluation.evaluate import COMPARE_MODES, run_eval
from rag.evaluation.gold import paragraph_spans
from rag.evaluation.miss_report import write_report
from rag.evaluation.results import EvalResult
from rag.types import Answer, CleaningReport, Document, Hit

FIXTURE = Path(__file__).parent / "fixtures" / "tiny_squad.json"
HASH = "test-hash"


def _hit(source: str, rank: int, start: int = 0, end: int = 10, chunk_id: int | None = None) -> Hit:
    return Hit(
        chunk_id=rank if chunk_id is None else chunk_id,
        source=source,
        text=f"text of {source}",
        start=start,
        end=end,
        score=1.0 / rank,
        rank=rank,
    )


class StubQA:
    """Scripted search results and answers per question."""

    def __init__(
        self,
        hits: dict[str, list[Hit]],
        answers: dict[str, Answer],
        docs: dict[str, str] | None = None,
    ) -> None:
        self._hits = hits
        self._answers = answers
        self._docs = docs or {}
        self.calls: list[tuple[str, str, int, str | None]] = []

    def search(self, question: str, k: int = 5, mode: str | None = None) -> list[Hit]:
        self.calls.append(("search", question, k, mode))
        return self._hits.get(question, [])[:k]

    def ask(self, question: str, k: int = 5, mode: str | None = None) -> Answer:
        self.calls.append(("ask", question, k, mode))
        return self._answers.get(question, _answer(question, "no", None, found=False))

    def document(self, source: str) -> Document:
        text = self._docs[source]
        return Document(source, text, CleaningReport(source, len(text), len(text)))

    def sources(self) -> list[str]:
        return list(self._docs)


def _answer(q: str, text: str, span: str | None, found: bool = True) -> Answer:
    return Answer(question=q, found=found, text=text, span=span, score=0.5)


class TestAggregation:
    """Four answerable questions and one unanswerable, every number computed by hand."""

    @pytest.fixture
    def result(self) -> EvalResult:
        qs = (
            EvalQuestion("q1", "Q1", ("5.8%",), ("A",)),
            EvalQuestion("q2", "Q2", ("八个月",), ("B",)),
            EvalQuestion("q3", "Q3", ("人民银行",), ("C",)),
            EvalQuestion("q4", "Q4", ("文湖线",), ("D",)),
            EvalQuestion("q5", "Q5", (), ()),
        )
        hits = {
            # gold first
            "Q1": [_hit("A", 1), _hit("X", 2)],
            # gold third among unique sources (A repeats as a second chunk of one source)
            "Q2": [_hit("A", 1), _hit("A", 2, chunk_id=9), _hit("X", 3), _hit("B", 4)],
            # gold never retrieved
            "Q3": [_hit("X", 1), _hit("Y", 2)],
            # gold second
            "Q4": [_hit("X", 1), _hit("D", 2)],
            "Q5": [_hit("X", 1)],
        }
        answers = {
            # span exact after normalisation (full-width), sentence contains it
            "Q1": _answer("Q1", "同比增长５．８％。", "５．８％"),
            # no span: the sentence is scored; it contains the gold (Traditional)
            "Q2": _answer("Q2", "連續八個月增長", None),
            # span partly right: 中国人民 vs 人民银行 -> F1 0.5; sentence lacks the gold
            "Q3": _answer("Q3", "中国人民。", "中国人民"),
            # wrongly refused
            "Q4": _answer("Q4", "not answered", None, found=False),
            # unanswerable, correctly refused
            "Q5": _answer("Q5", "not answered", None, found=False),
        }
        es = EvalSet("stub", (), qs)
        return run_eval(es, StubQA(hits, answers), modes=("bm25",), k=3, progress=False)

    def test_retrieval(self, result: EvalResult) -> None:
        s = result.summary("bm25")
        ranks = {q.id: q.gold_rank for q in result.runs[0].questions}
        assert ranks == {"q1": 1, "q2": 3, "q3": None, "q4": 2, "q5": None}
        assert s.with_gold == 4
        assert [(r.k, r.value) for r in s.recall] == [(1, 0.25), (3, 0.75)]
        assert s.mrr == pytest.approx((1 + 1 / 3 + 0 + 1 / 2) / 4, abs=1e-6)

    def test_answers(self, result: EvalResult) -> None:
        s = result.summary("bm25")
        assert (s.questions, s.answerable, s.unanswerable) == (5, 4, 1)
        # sentence hits: q1, q2 -> 2/4
        assert s.answer_hit_rate == 0.5
        # overall EM: q1 1, q2 sentence "連續八個月增長" != "八个月" 0, q3 0, q4 refused 0
        assert s.em == 0.25
        # overall F1: q1 1; q2 sentence units 连续八个月增长 (7) vs 八个月 (3): common 3,
        # P 3/7, R 1 -> 0.6; q3 0.5; q4 0
        assert s.f1 == pytest.approx((1 + 0.6 + 0.5 + 0) / 4, abs=1e-6)
        # spans: q1 and q3
        assert s.with_span == 2
        assert s.span_em == 0.5
        assert s.span_f1 == pytest.approx(0.75)

    def test_abstention(self, result: EvalResult) -> None:
        s = result.summary("bm25")
        assert s.found_rate == pytest.approx(3 / 5)
        assert s.correct_refusal_rate == 1.0
        assert s.wrong_refusal_rate == 0.25

    def test_latency_and_misses(self, result: EvalResult, tmp_path: Path) -> None:
        s = result.summary("bm25")
        assert s.search_latency.count == s.ask_latency.count == 5
        assert s.search_latency.median_ms is not None and s.search_latency.median_ms >= 0
        path = tmp_path / "misses.jsonl"
        assert write_report(result, path) == 2
        rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
        assert [r["id"] for r in rows] == ["q3", "q4"]
        assert rows[0]["answers"] == ["人民银行"] and rows[0]["span"] == "中国人民"
        assert rows[0]["top"][0]["source"] == "X"
        assert set(rows[0]) >= {"question", "found", "answer_text", "gold_rank", "mode"}

    def test_table_and_json(self, result: EvalResult) -> None:
        table = render_table(result)
        assert "recall@1" in table and "25.0%" in table and "bm25" in table
        data = json.loads(json.dumps(result.to_json(questions=True)))
        m = data["modes"]["bm25"]
        assert m["recall"] == {"@1": 0.25, "@3": 0.75}
        assert len(m["per_question"]) == 5
        assert "per_question" not in result.to_json()["modes"]["bm25"]


def test_search_depth_and_warm_up() -> None:
    qs = (EvalQuestion("q1", "Q1", ("a",), ("A",)),)
    qa = StubQA({"Q1": [_hit("A", 1)]}, {"Q1": _answer("Q1", "a", "a")})
    run_eval(EvalSet("s", (), qs), qa, modes=("dense",), k=10, ask_k=3, progress=False)
    # one untimed warm-up pair, then the measured pair; 4*k chunks searched, ask_k read
    assert qa.calls[2:] == [("search", "Q1", 40, "dense"), ("ask", "Q1", 3, "dense")]
    assert [c[0] for c in qa.calls[:2]] == ["search", "ask"]


def test_rejected_question_is_listed_not_scored() -> None:
    from rag.errors import QueryError

    class Picky(StubQA):
        def search(self, question: str, k: int = 5, mode: str | None = None) -> list[Hit]:
            if question == "BAD":
                raise QueryError("the question is too long")
            return super().search(question, k, mode)

    qs = (EvalQuestion("bad", "BAD", ("a",), ("A",)), EvalQuestion("ok", "Q1", ("a",), ("A",)))
    qa = Picky({"Q1": [_hit("A", 1)]}, {"Q1": _answer("Q1", "a", "a")})
    result = run_eval(EvalSet("s", (), qs), qa, progress=False)
    run = result.runs[0]
    assert [q.id for q in run.questions] == ["ok"] and run.summary.questions == 1
    assert run.refused_questions == ("bad: the question is too long",)
    assert "rejected as input" in render_table(result)


class TestParagraphGold:
    DOC = "第一段，讲工业。\n\n  第二段：增长5.8%。  \n   \n第三段。"

    def test_paragraph_spans(self) -> None:
        spans = paragraph_spans(self.DOC)
        assert [self.DOC[p.start:p.end] for p in spans] == [
            "第一段，讲工业。", "第二段：增长5.8%。", "第三段。"
        ]
        assert [p.index for p in spans] == [0, 1, 2]

    def test_hits_overlapping_gold_paragraph(self) -> None:
        p1 = paragraph_spans(self.DOC)[1]
        qs = (
            EvalQuestion("a", "QA", ("5.8%",), (), (1,)),
            # the answer is in paragraph 1, but the file says 0: reported as a mismatch
            EvalQuestion("b", "QB", ("5.8%",), (), (0,)),
        )
        hits = {
            # chunk 0 covers paragraph 0 only, chunk 1 straddles paragraphs 1-2
            "QA": [_hit("doc", 1, 0, 8, chunk_id=0), _hit("doc", 2, p1.start + 3, len(self.DOC), chunk_id=1)],
            "QB": [_hit("doc", 1, 0, 8, chunk_id=0)],
        }
        answers = {q: _answer(q, "增长5.8%。", "5.8%") for q in ("QA", "QB")}
        qa = StubQA(hits, answers, {"doc": self.DOC})
        result = run_eval(EvalSet("para", (), qs), qa, k=5, progress=False)
        ranks = {q.id: q.gold_rank for q in result.runs[0].questions}
        assert ranks == {"a": 2, "b": 1}
        assert result.gold_mismatches == ("b",)
        assert "warning: 1 question(s)" in render_table(result)

    def test_bad_paragraph_index(self) -> None:
        qs = (EvalQuestion("a", "QA", ("x",), (), (7,)),)
        qa = StubQA({"QA": []}, {"QA": _answer("QA", "", None, False)}, {"doc": self.DOC})
        with pytest.raises(RagError, match="paragraph 7"):
            run_eval(EvalSet("p", (), qs), qa, progress=False)

    def test_needs_a_source_when_index_has_several_documents(self) -> None:
        qs = (EvalQuestion("a", "QA", ("x",), (), (0,)),)
        qa = StubQA({"QA": []}, {"QA": _answer("QA", "", None, False)}, {"d1": "x", "d2": "y"})
        with pytest.raises(RagError, match="source"):
            run_eval(EvalSet("p", (), qs), qa, progress=False)


class TestEndToEnd:
    def test_squad_fixture_compare(self, tmp_path: Path) -> None:
        es = load_squad(FIXTURE)
        report = tmp_path / "misses.jsonl"
        result = run_eval(
            es, tmp_path / "idx", modes=COMPARE_MODES, model=HASH, report_path=report,
            progress=False,
        )
        assert [r.summary.mode for r in result.runs] == list(COMPARE_MODES)
        assert result.index.built and result.index.model == HASH
        assert result.index.documents == len(es.passages) == 4
        assert result.index.build_seconds is not None
        for run in result.runs:
            s = run.summary
            assert (s.questions, s.answerable, s.unanswerable) == (7, 6, 1)
            assert s.with_gold == 6
            # four passages: every gold is among the first 10 unique sources
            assert s.recall_at(10) == 1.0
            assert s.recall_at(1) is not None and 0.0 <= s.recall_at(1) <= 1.0  # type: ignore[operator]
            assert s.search_latency.count == 7
        lines = report.read_text(encoding="utf-8").splitlines()
        misses = sum(1 for run in result.runs for q in run.questions if q.miss)
        assert len(lines) == misses

    def test_limit_indexes_every_passage_and_reuse(self, tmp_path: Path) -> None:
        es = load_squad(FIXTURE)
        first = run_eval(es, tmp_path / "idx", limit=2, model=HASH, progress=False)
        assert first.questions == 2 and first.index.documents == 4
        again = run_eval(es, tmp_path / "idx", limit=1, reuse_index=True, progress=False)
        assert not again.index.built and again.index.chunks == first.index.chunks

    def test_reuse_refuses_another_corpus(self, tmp_path: Path) -> None:
        import rag

        rag.IndexWriter(tmp_path / "idx", model=HASH).add_texts([("other", "别的文字。")], replace_all=True)
        with pytest.raises(RagError, match="reuse-index"):
            run_eval(load_squad(FIXTURE), tmp_path / "idx", reuse_index=True, progress=False)

    def test_a_loaded_index_of_the_set_is_evaluated_as_the_folder_is(self, tmp_path: Path) -> None:
        """``benchmarks/bench_rules.py`` evaluates one loaded QA under several settings."""
        import rag

        es = load_squad(FIXTURE)
        by_folder = run_eval(es, tmp_path / "idx", model=HASH, progress=False)
        qa = rag.load(tmp_path / "idx")
        by_qa = run_eval(es, qa, reuse_index=True, progress=False)
        assert [(q.answer_text, q.span) for q in by_qa.runs[0].questions] == [
            (q.answer_text, q.span) for q in by_folder.runs[0].questions]
        assert by_qa.summary("hybrid").f1 == by_folder.summary("hybrid").f1 and not by_qa.index.built
        with pytest.raises(RagError, match="builds its own index"):
            run_eval(es, qa, progress=False)
        other = rag.IndexWriter(tmp_path / "other", model=HASH)
        other.add_texts([("other", "别的文字。")], replace_all=True)
        with pytest.raises(RagError, match="passages"):
            run_eval(es, rag.load(tmp_path / "other"), reuse_index=True, progress=False)

    def test_temporary_index(self) -> None:
        result = run_eval(load_squad(FIXTURE), None, limit=1, model=HASH, progress=False)
        assert result.index.path is None and result.questions == 1

    def test_jsonl_against_existing_index(self, tmp_path: Path) -> None:
        import rag

        doc = "熊猫吃竹子。\n\n臺北捷運第一條路線為文湖線。\n\n经济成长率为2.3%。"
        rag.IndexWriter(tmp_path / "idx", model=HASH).add_texts([("doc.txt", doc)], replace_all=True)
        qfile = tmp_path / "qa.jsonl"
        rows = [
            {"id": "1", "question": "台北捷运第一条路线是哪条？", "answers": ["文湖线"], "paragraphs": [1]},
            {"id": "2", "question": "火星上有几座城市？", "answers": [], "paragraphs": []},
        ]
        qfile.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows), encoding="utf-8")
        from rag.evaluation.datasets import load_jsonl

        result = run_eval(load_jsonl(qfile), tmp_path / "idx", modes=("bm25",), progress=False)
        s = result.summary("bm25")
        assert result.kind == "jsonl" and not result.index.built
        assert (s.answerable, s.unanswerable, s.with_gold) == (1, 1, 1)
        assert result.gold_mismatches == ()
        assert result.runs[0].questions[0].gold == ("paragraph:1",)

    def test_bad_arguments(self, tmp_path: Path) -> None:
        es = load_squad(FIXTURE)
        with pytest.raises(RagError, match="mode"):
            run_eval(es, tmp_path / "i", modes=("nope",), model=HASH, progress=False)
        with pytest.raises(RagError, match="k must"):
            run_eval(es, tmp_path / "i", k=0, model=HASH, progress=False)


class TestCli:
    def _parse(self, argv: list[str]) -> argparse.Namespace:
        parser = argparse.ArgumentParser()
        add_eval_parser(parser.add_subparsers(dest="command"))
        return parser.parse_args(["eval", *argv])

    def test_json_output(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        args = self._parse([str(FIXTURE), "--index", str(tmp_path / "i"), "--model", HASH,
                            "--compare", "--json", "--limit", "3"])
        assert args.func(args) == 0
        out = capsys.readouterr()
        data = json.loads(out.out)
        assert set(data["modes"]) == set(COMPARE_MODES)
        assert data["questions"] == 3 and data["passages"] == 4
        assert out.err == ""  # quiet under --json

    def test_table_output(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        args = self._parse([str(FIXTURE), "--model", HASH, "--mode", "bm25"])
        assert args.func(args) == 0
        out = capsys.readouterr().out
        assert "tiny_squad (squad): 7 question(s)" in out and "recall@10" in out

    def test_errors_are_rag_errors(self, tmp_path: Path) -> None:
        args = self._parse([str(tmp_path / "missing.json")])
        with pytest.raises(RagError):
            args.func(args)
        args = self._parse([str(FIXTURE), "--limit", "-1"])
        with pytest.raises(RagError):
            args.func(args)

    def test_mode_and_compare_exclusive(self) -> None:
        with pytest.raises(SystemExit):
            self._parse([str(FIXTURE), "--mode", "bm25", "--compare"])

    @pytest.mark.parametrize("form", ["lines", "list", "split"])
    def test_ids_select_questions(self, tmp_path: Path, capsys: pytest.CaptureFixture[str], form: str) -> None:
        ids = ["TINY_0_QUERY_0", "2001-1-2"]
        path = tmp_path / "ids"
        if form == "lines":
            path.write_text("\n".join(ids) + "\n", encoding="utf-8")
        elif form == "list":
            path.write_text(json.dumps(ids), encoding="utf-8")
        else:
            path.write_text(json.dumps({"seed": 1, "validation_ids": ids}), encoding="utf-8")
        args = self._parse([str(FIXTURE), "--model", HASH, "--ids", str(path), "--json", "--per-question"])
        assert args.func(args) == 0
        data = json.loads(capsys.readouterr().out)
        assert data["questions"] == 2 and data["passages"] == 4

    @pytest.mark.parametrize(("content", "match"), [("nothing-matches\n", "none of its"), ("{bad", "not valid JSON"),
                                                    ('{"other": 1}', "validation_ids")])
    def test_bad_id_lists(self, tmp_path: Path, content: str, match: str) -> None:
        path = tmp_path / "ids"
        path.write_text(content, encoding="utf-8")
        args = self._parse([str(FIXTURE), "--model", HASH, "--ids", str(path)])
        with pytest.raises(RagError, match=match):
            args.func(args)
