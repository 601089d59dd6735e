"""Live-server tests: ``python -m rag.ui`` on 127.0.0.1 (a free port), driven with
``gradio_client`` and plain HTTP. The index uses the deterministic test embedder."""

from __future__ import annotations

import json
import re
import shutil
import urllib.parse
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import fields
from pathlib import Path
from typing import Any

import httpx
import pytest

import rag
from rag.types import Answer
from rag.ui.app import DEFAULT_HOST, resolve_address

ROOT = Path(__file__).resolve().parent.parent
SEED = ROOT / "docs" / "000_7acc4ff99040d81b.txt"
SAFE_NAME = re.compile(r"[\w\-]+-[0-9a-f]{10}\.(txt|md)")


class Live:
    def __init__(self, url: str, base: Path) -> None:
        self.url = url
        self.base = base
        self.docs = base / "docs"
        self.index = base / "index"
        self.uploads = base / "uploads"
        from gradio_client import Client

        self.client = Client(url, verbose=False)

    def ask(self, question: str, **kw: Any) -> dict[str, Any]:
        return self.client.predict(question, api_name="/ask", **kw)

    def call_raw(self, api_name: str, data: list[Any]) -> tuple[str, Any]:
        """The REST API without the client: (event, data) of the final message."""
        with httpx.Client(base_url=self.url, timeout=120) as http:
            r = http.post(f"/gradio_api/call/{api_name}", json={"data": data})
            r.raise_for_status()
            event_id = r.json()["event_id"]
            text = http.get(f"/gradio_api/call/{api_name}/{event_id}").text
        events = re.findall(r"event: (\w+)\ndata: (.*)", text)
        assert events, text
        kind, payload = events[-1]
        return kind, json.loads(payload) if payload and payload != "null" else None


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    from rag.ui.launcher import ServerProcess

    base = tmp_path_factory.mktemp("ui_server")
    (base / "docs").mkdir()
    shutil.copy(SEED, base / "docs" / SEED.name)
    rag.build_index([base / "docs"], index_dir=base / "index", model="test-hash")
    args = ["--docs", str(base / "docs"), "--index", str(base / "index"), "--uploads", str(base / "uploads"),
            "--model", "test-hash"]
    with ServerProcess(args, log_path=base / "server.log", cwd=ROOT) as srv:
        yield Live(srv.url, base)


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_only_intended_endpoints_are_public(live: Live) -> None:
    info = live.client.view_api(return_format="dict", print_info=False)
    assert set(info["named_endpoints"]) == {"/ask", "/documents", "/add_documents"}
    assert not info["unnamed_endpoints"]
    names = [p["parameter_name"] for p in info["named_endpoints"]["/ask"]["parameters"]]
    assert names == ["question", "k", "mode", "history"]


def test_ask_returns_the_structured_answer_with_citations(live: Live) -> None:
    ans = live.ask("前三季度规模以上工业增加值同比增长多少？")
    assert set(ans) == {f.name for f in fields(Answer)}
    assert ans["found"] is True and ans["span"] == "5.8%"
    assert ans["citations"] and ans["citations"][0]["n"] == 1
    qa = rag.load(live.index)
    for c in ans["citations"]:
        assert c["source"].endswith(SEED.name)
        assert qa.document(c["source"]).text[c["start"]:c["end"]] == c["quote"]
    local = json.loads(json.dumps(qa.ask("前三季度规模以上工业增加值同比增长多少？").to_dict(), ensure_ascii=False))
    assert ans == local  # the same structured answer as the Python API
    trad = live.ask("國家技術轉移區域中心有幾個？", k=3, mode="bm25")
    assert trad["found"] and trad["span"] == "12個"


@pytest.mark.parametrize("question", ["灵璧县属于哪个省？", "今年全国GDP同比增长多少？"])
def test_unanswerable_question_is_refused(live: Live, question: str) -> None:
    ans = live.ask(question)
    assert ans["found"] is False and not ans["citations"] and ans["span"] is None
    assert "do not answer" in ans["text"]
    assert ans["passages"], "the closest passages come with the refusal"


def test_unusable_questions_are_errors_in_words(live: Live) -> None:
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match="empty"):
        live.ask("   ")
    with pytest.raises(AppError, match="limit"):
        live.ask("问" * 2500)


def _call_raw_json(live: Live, api_name: str, body: str) -> tuple[str, Any]:
    """Like :meth:`Live.call_raw`, with the request body as written (JSON's 1e999, a lone surrogate)."""
    with httpx.Client(base_url=live.url, timeout=120) as http:
        r = http.post(f"/gradio_api/call/{api_name}", content=body.encode("ascii"),
                      headers={"content-type": "application/json"})
        r.raise_for_status()
        text = http.get(f"/gradio_api/call/{api_name}/{r.json()['event_id']}").text
    events = re.findall(r"event: (\w+)\ndata: (.*)", text)
    assert events, text
    kind, payload = events[-1]
    return kind, json.loads(payload) if payload and payload != "null" else None


@pytest.mark.parametrize(
    "body,message",
    [
        (r'{"data": ["\u589e\u957f\ud800\u591a\u5c11", 5, "hybrid", null]}', "lone surrogate"),
        (r'{"data": ["\u589e\u957f\u591a\u5c11", 1e999, "hybrid", null]}', "k must be a whole number from 1 to 50"),
        (r'{"data": ["\u589e\u957f\u591a\u5c11", 51, "hybrid", null]}', "k must be a whole number from 1 to 50"),
        (r'{"data": ["\u589e\u957f\u591a\u5c11", 2.5, "hybrid", null]}', "k must be a whole number from 1 to 50"),
        (r'{"data": ["\u589e\u957f\u591a\u5c11", 5, "nonsense", null]}', "unknown retrieval mode"),
    ],
)
def test_ask_refuses_bad_input_in_words(live: Live, body: str, message: str) -> None:
    kind, data = _call_raw_json(live, "ask", body)
    assert kind == "error", (kind, data)
    assert message in json.dumps(data), data


def test_documents_endpoint(live: Live) -> None:
    docs = live.client.predict(api_name="/documents")
    assert docs["model"] == "test-hash" and docs["chunks"] > 0
    (seed,) = [d for d in docs["documents"] if d["source"].endswith(SEED.name)]
    assert seed["chunks"] > 0 and seed["cleaning"]["pinyin reading"] > 0


def test_upload_then_answer_from_it(live: Live, tmp_path: Path) -> None:
    from gradio_client import handle_file

    museum = _write(tmp_path / "museum.txt",
                    "The city museum was founded in 1887 by Anna Berg.\n\nIt opens at 10 am on Saturdays.\n")
    bridge = _write(tmp_path / "桥梁.md", "# 大桥\n\n新建的跨江大桥全长1234米，于2023年通车。\n")
    pdf = tmp_path / "slides.pdf"
    pdf.write_bytes(b"%PDF-1.4 not text")
    status, result = live.client.predict([handle_file(museum), handle_file(bridge)], api_name="/add_documents")
    assert result["ok"] is True, result
    assert sorted(a["name"] for a in result["added"]) == ["museum.txt", "桥梁.md"]
    for a in result["added"]:
        assert SAFE_NAME.fullmatch(a["saved_as"]) and (live.uploads / a["saved_as"]).is_file()
    assert "museum.txt" in status and "now uses the new index" in status
    ans = live.ask("Who founded the city museum?")
    assert ans["found"] and "Anna Berg" in ans["text"]
    assert any(c["source"].endswith(result["added"][0]["saved_as"]) or "museum" in c["source"] for c in ans["citations"])
    zh = live.ask("跨江大桥全长多少米？")
    assert zh["found"] and "1234" in (zh["span"] or zh["text"])
    docs = live.client.predict(api_name="/documents")
    assert len(docs["documents"]) == 3
    # A file that cannot be read, and a type the engine does not read, are refused in words, in
    # one message, and change nothing.
    exe = tmp_path / "tool.exe"
    exe.write_bytes(b"MZ\x90\x00")
    status, result = live.client.predict([handle_file(pdf), handle_file(exe)], api_name="/add_documents")
    assert result["ok"] is False and sorted(r["name"] for r in result["refused"]) == ["slides.pdf", "tool.exe"]
    assert status.count("rag-bad") == 2 and "not accepted" in status
    assert len(live.client.predict(api_name="/documents")["documents"]) == 3


def test_upload_every_format(live: Live, tmp_path: Path) -> None:
    from gradio_client import handle_file

    from tests.test_extractors import make_pdf

    pdf = tmp_path / "keeper.pdf"
    pdf.write_bytes(make_pdf([["The lighthouse keeper was Ada Quill, from 1901 to 1933."]]))
    page = _write(tmp_path / "ferry.html", "<html><body><article><h1>Ferry</h1><p>"
                  + "The ferry to Marrow Island leaves every hour from the north quay. " * 4
                  + "</p></article></body></html>")
    import docx

    d = docx.Document()
    d.add_paragraph("The harbour crane was built by Ilse Brandt in 1957.")
    d.save(str(tmp_path / "crane.docx"))
    status, result = live.client.predict([handle_file(pdf), handle_file(page), handle_file(tmp_path / "crane.docx")],
                                         api_name="/add_documents")
    assert result["ok"] and sorted(a["name"] for a in result["added"]) == ["crane.docx", "ferry.html", "keeper.pdf"]
    assert live.ask("Who was the lighthouse keeper?")["found"]
    assert "Ilse Brandt" in live.ask("Who built the harbour crane?")["text"]


def test_concurrent_uploads_do_not_overlap(live: Live, tmp_path: Path) -> None:
    from gradio_client import handle_file

    files = [_write(tmp_path / f"note{i}.txt", f"Note {i}: the meeting room number {i} holds {10 + i} people.\n")
             for i in range(3)]
    jobs = [live.client.submit([handle_file(f)], api_name="/add_documents") for f in files]
    results = [j.result(timeout=180)[1] for j in jobs]
    assert all(r["ok"] for r in results), results
    sources = [d["source"] for d in live.client.predict(api_name="/documents")["documents"]]
    for i in range(3):
        assert any(f"note{i}-" in s for s in sources), sources
    assert not list(live.index.glob(".tmp-*"))


def test_upload_name_cannot_escape(live: Live) -> None:
    with httpx.Client(base_url=live.url, timeout=60) as http:
        r = http.post("/gradio_api/upload",
                      files=[("files", ("../../evil.txt", b"The evil file says 77 times hello.", "text/plain"))])
        assert r.status_code == 200, r.text
        (server_path,) = r.json()
    kind, out = live.call_raw("add_documents", [[{"path": server_path, "orig_name": "../../evil.txt",
                                                  "meta": {"_type": "gradio.FileData"}}]])
    assert kind == "complete", out
    result = out[1]
    (added,) = result["added"]
    assert SAFE_NAME.fullmatch(added["saved_as"]) and added["saved_as"].startswith("evil-")
    assert (live.uploads / added["saved_as"]).is_file()
    for p in (live.base / "evil.txt", live.base.parent / "evil.txt", live.uploads.parent / "evil.txt", ROOT / "evil.txt"):
        assert not p.exists()
    assert not Path(server_path).exists(), "Gradio's cached copy is removed once saved"


def test_add_refuses_server_paths_that_were_not_uploaded(live: Live) -> None:
    before = live.client.predict(api_name="/documents")
    for path in (str(ROOT / "README.md"), "/etc/hostname", str(live.docs / SEED.name)):
        kind, out = live.call_raw("add_documents", [[{"path": path, "meta": {"_type": "gradio.FileData"}}]])
        assert kind == "error" or not out[1]["ok"], (path, out)
    assert live.client.predict(api_name="/documents")["documents"] == before["documents"]


def test_oversized_upload_is_refused(live: Live, tmp_path: Path) -> None:
    from gradio_client import handle_file

    # over the 5 MB cap: it arrives, is refused with its reason, and the file beside it is added
    big = tmp_path / "big.txt"
    big.write_bytes(b"word " * (1_100_000))  # 5.5 MB
    small = _write(tmp_path / "tide.txt", "High tide at the north quay was at 4:12 pm on the first of May.\n")
    status, result = live.client.predict([handle_file(big), handle_file(small)], api_name="/add_documents")
    assert [a["name"] for a in result["added"]] == ["tide.txt"]
    assert [r["name"] for r in result["refused"]] == ["big.txt"] and "over the 5.0 MB limit" in status
    assert not any(p.name.startswith("big-") for p in live.uploads.glob("*"))
    # over what one file may weigh on its way in: refused by the upload route itself
    huge = b"word " * (4_300_000)  # 21.5 MB
    with httpx.Client(base_url=live.url, timeout=60) as http:
        r = http.post("/gradio_api/upload", files=[("files", ("huge.txt", huge, "text/plain"))])
    assert r.status_code == 413, r.status_code


def test_file_route_serves_nothing_outside_the_app(live: Live) -> None:
    version = (live.index / "CURRENT").read_text(encoding="utf-8").strip()
    targets = [
        "/etc/passwd",
        str(ROOT / "app.py"),
        "app.py",
        "rag/ui/app.py",
        "pyproject.toml",
        str(live.index / "CURRENT"),
        str(live.index / version / "manifest.json"),
        str(live.index / version / "documents.jsonl"),
        str(live.docs / SEED.name),
        "../../../../../../etc/passwd",
    ]
    targets += [str(p) for p in live.uploads.glob("*.txt")]
    with httpx.Client(base_url=live.url, timeout=30) as http:
        for t in targets:
            for url in (f"/gradio_api/file={t}", f"/gradio_api/file={urllib.parse.quote(t, safe='')}", f"/file={t}"):
                r = http.get(url)
                assert r.status_code in (403, 404), (url, r.status_code)
                assert "root:" not in r.text and "CURRENT" not in r.text[:50]


def test_listens_on_loopback_by_default() -> None:
    assert resolve_address(None, None, {}) == (DEFAULT_HOST, None) == ("127.0.0.1", None)
    assert resolve_address(None, None, {"GRADIO_SERVER_NAME": "0.0.0.0", "GRADIO_SERVER_PORT": "8000"}) == ("0.0.0.0", 8000)
    assert resolve_address("localhost", 9000, {"GRADIO_SERVER_NAME": "0.0.0.0"}) == ("localhost", 9000)
    with pytest.raises(rag.RagError, match="not a port"):
        resolve_address(None, None, {"GRADIO_SERVER_PORT": "http"})


def test_ask_with_history_understands_a_follow_up(live: Live) -> None:
    ans = live.ask("他认为下一步应该怎么做？", history=["赵志国是谁？"])
    assert ans["understood"] == "赵志国认为下一步应该怎么做？"
    assert ans["question"] == "他认为下一步应该怎么做？"
    assert ans["found"] and "趙志國" in ans["text"] and "關兵" not in ans["text"]
    # a question that stands alone: exactly the answer without a history
    alone = live.ask("前三季度规模以上工业增加值同比增长多少？")
    after = live.ask("前三季度规模以上工业增加值同比增长多少？", history=["赵志国是谁？", "他认为下一步应该怎么做？"])
    assert after == alone and after["understood"] is None


def test_ask_refuses_a_history_that_is_not_questions(live: Live) -> None:
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match="history"):
        live.ask("他认为下一步应该怎么做？", history=["赵志国是谁？"] * 51)
