"""The chat (``python app.py --index postgresql://...``) and ``python -m rag eval --index
postgresql://...`` on a database index, against a real server the tests start
(``tests/pg_server.py``), with the deterministic test embedder: the URL reaches the store as
given (never folded into a path), its password never reaches the terminal, the start-up sync,
questions, uploads and the Documents tab work on it, and an evaluation on a URL gives the same
figures as on a folder built from the same passages."""

from __future__ import annotations

import io
import json
import sys
import types
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any

import pytest

from pg_server import PgServer, require_psycopg

require_psycopg()

import rag
from rag.cli import main as cli
from rag.errors import RagError
from rag.index.pg_store import PgStore
from rag.ui import app
from rag.ui.service import QAService, index_location, shown_location
from rag.ui.startup import ensure_index, plan_startup
from rag.ui.uploads import Upload

pytestmark = pytest.mark.postgres

FIXTURE = Path(__file__).parent / "fixtures" / "tiny_squad.json"
HASH = "test-hash"
SECRET = "s3cret-pw"
DOCS = {
    "article.txt": "前三季度，全国规模以上工业增加值同比增长5.8%。工业投资连续八个月保持两位数增长。"
                   "高技术制造业增长较快。",
    "bridge.txt": "The old bridge was built in 1890 by engineers from the city. It is 300 metres long.",
    "library.md": "The city library opens at 9 am and closes at 6 pm on weekdays. It was founded in 1921.",
}
MUSEUM = "The harbour museum opens at 10 am on Sundays. It was founded in 1911 by Ida Lund.\n"


@pytest.fixture()
def db(pg_server: PgServer, request: pytest.FixtureRequest):  # type: ignore[no-untyped-def]
    name = "t_" + request.node.name.replace("[", "_").replace("]", "")[:50].lower()
    url = pg_server.create_database(name)
    yield url
    pg_server.drop_database(name)


def with_password(url: str) -> str:
    """``url`` with a password in it (the test server trusts every local connection, so it is
    accepted and ignored): what must never reach the terminal."""
    return url.replace("postgresql://rag@", f"postgresql://rag:{SECRET}@", 1)


def fill(folder: Path, docs: dict[str, str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in docs.items():
        (folder / name).write_text(text, encoding="utf-8")
    return folder


def run_cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = cli(list(argv))
    return code, out.getvalue(), err.getvalue()


def assert_cited(svc: QAService, question: str, expected: str) -> str:
    """``question`` is answered with ``expected`` in the answer, cited: each quote is the text of
    its document at the citation's offsets. Returns the first citation's source."""
    ans = svc.ask(question)
    assert ans.found and ans.citations and expected in ans.text, ans
    for c in ans.citations:
        assert c.quote and svc.document_text(c.source)[c.start:c.end] == c.quote
    return ans.citations[0].source


def test_the_location_is_a_url_as_given_or_a_folder(db: str, tmp_path: Path) -> None:
    url = with_password(db)
    for scheme in ("postgresql://", "postgres://", "POSTGRESQL://"):
        given = url.replace("postgresql://", scheme, 1)
        assert index_location(given) == given and isinstance(index_location(given), str)
        assert SECRET not in shown_location(given) and ":***@127.0.0.1" in shown_location(given)
    assert index_location("index") == Path("index") and index_location(tmp_path) == tmp_path
    assert shown_location(tmp_path / "i") == str(tmp_path / "i")
    svc = QAService(url, tmp_path / "docs", tmp_path / "uploads")
    assert svc.index_dir == url and svc.index_folder is None  # not Path(url), which folds "//"
    assert svc.location == shown_location(url) and SECRET not in svc.location
    assert str(Path(url)) != url  # what Path does to a URL (folds "//"): the reason for all this


def test_the_documents_tab_says_what_removal_does_on_a_database(db: str, tmp_path: Path) -> None:
    import gradio as gr

    from rag.ui.layout import REMOVE_HELP_DATABASE, REMOVE_HELP_FOLDER, build_blocks

    def texts(svc: QAService) -> list[str]:
        return [str(b.value) for b in build_blocks(svc).blocks.values() if isinstance(b, gr.Markdown)]

    on_db = texts(QAService(with_password(db), tmp_path / "docs", tmp_path / "uploads"))
    assert REMOVE_HELP_DATABASE in on_db and REMOVE_HELP_FOLDER not in on_db
    on_folder = texts(QAService(tmp_path / "index", tmp_path / "docs", tmp_path / "uploads"))
    assert REMOVE_HELP_FOLDER in on_folder and REMOVE_HELP_DATABASE not in on_folder


def test_the_chat_starts_answers_and_takes_uploads_on_a_database(
    db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    fill(Path("docs"), DOCS)
    url = with_password(db)
    # app.py as run, up to serving: the start-up sync builds the index in the database, then the
    # chat would be built (a stand-in layout records what it is given and stops there)
    seen: dict[str, Any] = {}

    def build_blocks(service: QAService, default_mode: str, delete_cache: tuple[int, int]) -> None:
        seen.update(service=service, mode=default_mode)
        raise RagError("stopped before serving (test)")

    layout = types.ModuleType("rag.ui.layout")
    layout.__dict__.update(CSS="", HEAD="", JS="", theme=lambda: None, build_blocks=build_blocks)
    monkeypatch.setitem(sys.modules, "rag.ui.layout", layout)
    monkeypatch.setattr(app.environment, "set_app_defaults", lambda: None)
    err = io.StringIO()
    with redirect_stderr(err):
        code = app.run(["--index", url, "--docs", "docs", "--uploads", "uploads", "--model", HASH])
    log = err.getvalue()
    assert code == 1 and "stopped before serving (test)" in log, log
    assert SECRET not in log and f"Checking the index in {shown_location(url)} against docs" in log, log
    assert "Built the index (no index yet): 3 document(s)" in log, log
    assert not Path("postgresql:").exists() and not Path("postgres:").exists()  # no folder named after the URL
    svc: QAService = seen["service"]
    assert seen["mode"] == "hybrid" and svc.index_dir == url and svc.ready
    assert PgStore(db).exists() and rag.load(db).sources() == svc.current().sources()

    # questions: cited, each quote the document's text at the citation's offsets
    assert_cited(svc, "When was the old bridge built?", "1890")
    ov = svc.overview()
    assert ov.index_dir == shown_location(url) and SECRET not in ov.index_dir and ov.version.startswith("v-000001-")
    assert {d.source for d in ov.documents} == {f"docs/{n}" for n in DOCS}

    # the next start finds it up to date and loads it from the database in the background
    assert not plan_startup(url, svc.source_paths(), None).rebuild
    again = QAService(url, "docs", "uploads")
    again.load_in_background().join(timeout=300)
    assert again.ready and again.error is None
    assert_cited(again, "When was the old bridge built?", "1890")
    # a new file of the documents folder is synced in
    fill(Path("docs"), {"weather.txt": "今年夏天雨水偏多，气温比常年偏高一度左右。"})
    plan = plan_startup(url, svc.source_paths(), None)
    assert plan.rebuild and plan.reason == "documents changed since the last build: 1 new" and plan.excluded == ()
    result = ensure_index(url, svc.source_paths(), None)
    assert result.qa is not None and result.documents == 4
    svc.load(result.qa)

    # an upload is added to the database index and answered from
    upload = tmp_path / "incoming" / "museum.txt"
    fill(upload.parent, {"museum.txt": MUSEUM})
    added = svc.add_uploads([Upload("museum.txt", upload)])
    assert added.ok and added.error is None and added.documents == 5, added
    (saved,) = added.added
    uploaded = next(s for s in svc.current().sources() if s.endswith(saved.path.name))
    assert assert_cited(svc, "When does the harbour museum open?", "10 am on Sundays") == uploaded
    assert rag.load(db).sources() == svc.current().sources() and svc.source_paths() == [Path("docs"), Path("uploads")]

    # the Documents tab: a database keeps no record of excluded documents, so only uploads are
    # offered for removal; a documents-folder file is refused in words, nothing changes
    assert svc.removable() == [uploaded] and svc.excluded() == ()
    refused = svc.remove_document("docs/library.md")
    assert not refused.ok and "keeps no record of excluded documents" in (refused.error or "")
    assert "docs/library.md" in svc.current().sources()
    assert not svc.restore_document("docs/library.md").ok
    removed = svc.remove_document(uploaded)
    assert removed.ok and removed.documents == 4 and not saved.path.exists()
    assert uploaded not in rag.load(db).sources()
    assert all(c.source != uploaded for c in svc.ask("When does the harbour museum open?").citations)
    assert not list(tmp_path.glob("postgres*"))  # nothing was written beside us in the URL's name


def figures(data: dict[str, Any]) -> dict[str, Any]:
    """An eval result's JSON without what differs between runs (timings, where the index is)."""
    timed = {"seconds", "cpu_seconds", "search_latency", "ask_latency", "search_ms", "ask_ms", "build_seconds",
             "build_wall_seconds", "build_cpu_seconds", "path", "score"}

    def strip(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items() if k not in timed}
        if isinstance(value, list):
            return [strip(v) for v in value]
        return value

    return strip(data)  # type: ignore[no-any-return]


def scores(data: dict[str, Any]) -> list[float]:
    return [h["score"] for run in data["modes"].values() for q in run["per_question"] for h in q["top"]]


def test_eval_on_a_url_gives_the_figures_of_a_folder(db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    url = with_password(db)
    common = ("--model", HASH, "--compare", "--json", "--per-question")
    code, out, err = run_cli("eval", str(FIXTURE), "--index", str(tmp_path / "folder"), *common)
    assert code == 0, err
    on_folder = json.loads(out)
    code, out, err = run_cli("eval", str(FIXTURE), "--index", url, *common)
    assert code == 0, err
    on_db = json.loads(out)
    assert SECRET not in out + err and on_db["index"]["path"] == shown_location(url)
    assert on_db["index"]["built"] and on_db["index"]["documents"] == on_folder["index"]["documents"] == 4
    assert PgStore(db).exists() and not Path("postgresql:").exists()
    assert figures(on_db) == figures(on_folder)
    assert scores(on_db) == pytest.approx(scores(on_folder), abs=1e-3)  # the database keeps halfvec vectors
    assert on_db["modes"]["hybrid"]["recall"]["@10"] == 1.0
    # --reuse-index on the URL: the index as it is, the same figures
    code, out, err = run_cli("eval", str(FIXTURE), "--index", url, "--reuse-index", "--compare", "--json",
                             "--per-question")
    assert code == 0, err
    reused = json.loads(out)
    assert not reused["index"]["built"] and figures(reused)["modes"] == figures(on_folder)["modes"]
    # and its refusal of an index built from other passages names the URL, password masked
    rag.IndexWriter(db, model=HASH).add_texts([("other", "别的文字。")], replace_all=True)
    code, out, err = run_cli("eval", str(FIXTURE), "--index", url, "--reuse-index")
    assert code == 1 and err.count("\n") == 1 and "leave out --reuse-index" in err, err
    assert SECRET not in err and shown_location(url) in err
    # a full rebuild on the URL brings it back
    code, out, err = run_cli("eval", str(FIXTURE), "--index", url, "--full-build", *common)
    assert code == 0, err
    assert figures(json.loads(out))["modes"] == figures(on_folder)["modes"]


def test_eval_of_a_question_file_against_a_database_index(db: str, tmp_path: Path) -> None:
    doc = "熊猫吃竹子。\n\n臺北捷運第一條路線為文湖線。\n\n经济成长率为2.3%。"
    rows = [
        {"id": "1", "question": "台北捷运第一条路线是哪条？", "answers": ["文湖线"], "paragraphs": [1]},
        {"id": "2", "question": "火星上有几座城市？", "answers": [], "paragraphs": []},
    ]
    qfile = tmp_path / "qa.jsonl"
    qfile.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows), encoding="utf-8")
    results = []
    for where in (str(tmp_path / "idx"), db):
        rag.IndexWriter(where, model=HASH).add_texts([("doc.txt", doc)], replace_all=True)
        code, out, err = run_cli("eval", str(qfile), "--index", where, "--mode", "bm25", "--json", "--per-question")
        assert code == 0, err
        results.append(json.loads(out))
    on_folder, on_db = results
    assert on_db["kind"] == "jsonl" and on_db["index"]["path"] == db and not on_db["index"]["built"]
    assert figures(on_db) == figures(on_folder) and on_db["modes"]["bm25"]["with_gold"] == 1


def test_status_and_load_on_a_url_never_show_the_password(db: str, tmp_path: Path) -> None:
    """``rag status --json`` and ``rag.load(url).index_dir`` name the database, password masked,
    and keep the URL's ``//`` (a ``Path`` would fold it)."""
    from rag.index.status import index_status

    url = with_password(db)
    rag.build_index([fill(tmp_path / "docs", DOCS)], index_dir=url, model=HASH)
    st = index_status(url)
    assert SECRET not in st.index_dir and st.index_dir.startswith("postgresql://")
    qa = rag.load(url)
    assert SECRET not in str(qa.index_dir) and str(qa.index_dir).startswith("postgresql://")
    code, out, err = run_cli("status", "--index", url, "--json")
    assert code == 0 and SECRET not in out + err
