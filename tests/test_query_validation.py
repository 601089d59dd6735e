"""Questions, ``k`` and ``mode`` are checked in one place, with one range, and refused in words:
in the API (``QA.ask``/``QA.search``/``rag.load``), the CLI and the UI's ``/ask`` handler."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

import rag
from rag import settings
from rag.cli import main
from rag.errors import QueryError, RagError

QUESTION = "前三季度规模以上工业增加值同比增长多少？"
SURROGATE = "增长\ud800多少"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def _one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    return lines[0]


# -- the range is defined once ------------------------------------------------------------


def test_k_range_is_one_named_constant() -> None:
    assert (settings.K_MIN, settings.K_MAX) == (1, 50)
    assert settings.K_MIN <= settings.K_DEFAULT <= settings.K_MAX


def test_ui_slider_uses_the_shared_range() -> None:
    import gradio as gr

    from rag.ui import handlers
    from rag.ui.layout import build_blocks
    from rag.ui.service import QAService

    assert (handlers.K_MIN, handlers.K_MAX, handlers.K_DEFAULT) == (settings.K_MIN, settings.K_MAX, settings.K_DEFAULT)
    demo = build_blocks(QAService(Path("no-index"), Path("no-docs"), Path("no-uploads")))
    sliders = [b for b in demo.blocks.values() if isinstance(b, gr.Slider)]
    assert len(sliders) == 1
    assert (sliders[0].minimum, sliders[0].maximum) == (settings.K_MIN, settings.K_MAX)


# -- the Python API -----------------------------------------------------------------------


@pytest.mark.parametrize("method", ["ask", "search"])
def test_lone_surrogate_is_a_query_error(hash_qa, method: str) -> None:
    with pytest.raises(QueryError, match="lone surrogate") as info:
        getattr(hash_qa, method)(SURROGATE)
    str(info.value).encode("utf-8")  # the message itself can be printed


@pytest.mark.parametrize("k", [0, -1, 51, 10**6, 2.5, math.inf, -math.inf, math.nan, True, "5", None, 1e999])
@pytest.mark.parametrize("method", ["ask", "search"])
def test_bad_k_is_refused(hash_qa, method: str, k: object) -> None:
    with pytest.raises(QueryError, match="k must be a whole number from 1 to 50"):
        getattr(hash_qa, method)(QUESTION, k=k)


@pytest.mark.parametrize("k", [1, 50, 7.0])
def test_k_in_range_is_accepted(hash_qa, k: object) -> None:
    hits = hash_qa.search(QUESTION, k=k)
    assert 1 <= len(hits) <= int(k)  # type: ignore[call-overload]
    assert hash_qa.ask(QUESTION, k=k).question == QUESTION


@pytest.mark.parametrize("mode", ["nonsense", "", "BM25", 3])
@pytest.mark.parametrize("method", ["ask", "search"])
def test_unknown_mode_is_refused(hash_qa, method: str, mode: object) -> None:
    with pytest.raises(QueryError, match="retrieval mode"):
        getattr(hash_qa, method)(QUESTION, mode=mode)


@pytest.mark.parametrize("bad", [None, 3, b"index", ["index"]])
def test_load_refuses_a_non_path(bad: object) -> None:
    with pytest.raises(RagError, match="index folder"):
        rag.load(bad)  # type: ignore[arg-type]


# -- the CLI ------------------------------------------------------------------------------


@pytest.mark.parametrize("cmd", ["ask", "search"])
@pytest.mark.parametrize("k", ["51", "0", "100"])
def test_cli_k_out_of_range(capsys, hash_index: Path, tmp_path: Path, cmd: str, k: str) -> None:
    code, out, err = run(capsys, cmd, QUESTION, "--index", str(hash_index), "-k", k)
    assert code == 1 and out == ""
    assert "k must be a whole number from 1 to 50" in _one_error_line(err)
    # checked before anything is loaded
    code, _, err = run(capsys, cmd, QUESTION, "--index", str(tmp_path / "missing"), "-k", k)
    assert code == 1 and "k must be" in _one_error_line(err)


@pytest.mark.parametrize("argv", [["-k", "2.5"], ["-k", "many"], ["--mode", "nonsense"]])
def test_cli_non_integer_k_and_unknown_mode_are_refused(capsys, hash_index: Path, argv: list[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["ask", QUESTION, "--index", str(hash_index), *argv])
    err = capsys.readouterr().err
    assert info.value.code == 2 and "invalid" in err and "Traceback" not in err


def test_cli_surrogate_question(capsys, hash_index: Path) -> None:
    code, out, err = run(capsys, "ask", SURROGATE, "--index", str(hash_index))
    assert code == 1 and out == ""
    assert "lone surrogate" in _one_error_line(err)


def test_cli_eval_k_uses_the_shared_range(capsys, tmp_path: Path, hash_index: Path) -> None:
    data = tmp_path / "q.jsonl"
    data.write_text('{"id": "a", "question": "增长多少？", "answers": ["5.8%"]}\n', encoding="utf-8")
    for argv in (["-k", "51"], ["--ask-k", "51"], ["--ask-k", "0"]):
        code, _, err = run(capsys, "eval", str(data), "--index", str(hash_index), *argv)
        assert code == 1 and "from 1 to 50" in _one_error_line(err), argv


# -- the UI's /ask and chat handlers ------------------------------------------------------


class _Service:
    """The QAService surface the handlers use, over the session's test index."""

    def __init__(self, qa: rag.QA) -> None:
        self.qa = qa

    def ask(self, question: str, k: int = 5, mode: str | None = None) -> rag.Answer:
        return self.qa.ask(question, k=k, mode=mode)

    def document_text(self, source: str) -> str:
        return self.qa.document(source).text


@pytest.mark.parametrize(
    "question,k,mode,message",
    [
        (SURROGATE, 5, "hybrid", "lone surrogate"),
        (QUESTION, 1e999, "hybrid", "k must be"),
        (QUESTION, float("nan"), "hybrid", "k must be"),
        (QUESTION, 51, "hybrid", "from 1 to 50"),
        (QUESTION, 0, "hybrid", "from 1 to 50"),
        (QUESTION, 2.5, "hybrid", "whole number"),
        (QUESTION, "lots", "hybrid", "k must be"),
        (QUESTION, 5, "nonsense", "retrieval mode"),
    ],
)
def test_ask_endpoint_refuses_in_words(hash_qa, question: str, k: object, mode: object, message: str) -> None:
    from rag.ui import handlers

    service = _Service(hash_qa)
    with pytest.raises(QueryError, match=message):
        handlers.ask_json(service, question, k, mode)  # type: ignore[arg-type]
    history, _ = handlers.chat_reply(service, question, [], k, mode)  # type: ignore[arg-type]
    assert "Could not answer" in history[-1]["content"] and message in history[-1]["content"]


def test_ask_endpoint_accepts_the_slider_float(hash_qa) -> None:
    from rag.ui import handlers

    data = handlers.ask_json(_Service(hash_qa), QUESTION, 5.0, "bm25")  # type: ignore[arg-type]
    assert data["found"] and data["span"] == "5.8%"
