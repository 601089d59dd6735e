"""Crash safety: a writer killed with SIGKILL at any moment leaves an index that loads and
answers exactly like the version before or the version after; corrupt versions are refused or
passed over for the previous one; readers in threads never see a half-written index; writers
are serialised by the lock.

Writers are forked from a warmed-up forkserver (``fault_workers``) so that each run takes a
fraction of a second; every index is then loaded afresh, and once more in a separate Python
process.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import rag
from fault_corpus import BASE, NEW, fill
from fault_workers import context, hold_lock, write_index
from rag.errors import IndexCorruptError
from rag.index.writer import IndexWriter
from rag.errors import IndexLockedError
from rag.index.store import FAULT_STEPS, LOCK, POINTER, VERSION_MARKER, current_version, load_index

ROOT = Path(__file__).resolve().parent.parent
QUERIES = ["前三季度规模以上工业增加值同比增长多少？", "When was the bridge built?", "library opening hours", "高技术制造业"]
OLD = dict(BASE)



def fingerprint(index: Path) -> str:
    """What a fresh load answers: search hits and answers for fixed queries."""
    qa = rag.load(index)
    out = []
    for q in QUERIES:
        out.append([(h.source, h.start, h.end, round(h.score, 5)) for h in qa.search(q, k=3)])
        ans = qa.ask(q)
        out.append([ans.found, ans.span, ans.text])
    out.append(sorted(qa.sources()))
    return json.dumps(out, ensure_ascii=False)


@pytest.fixture(scope="module")
def states(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path | str]:
    """The corpus in its new state, a template index of the old state (two versions, so that a
    publish also prunes), and the fingerprints of the old and the new index."""
    root = tmp_path_factory.mktemp("faults")
    corpus = root / "corpus"
    fill(corpus, {"article.txt": "最初的版本。"})
    IndexWriter(root / "old-index", model="test-hash").sync([corpus])
    fill(corpus, OLD)
    IndexWriter(root / "old-index", model="test-hash").sync([corpus])
    old = fingerprint(root / "old-index")
    fill(corpus, NEW)
    IndexWriter(root / "new-index", model="test-hash").sync([corpus])
    new = fingerprint(root / "new-index")
    assert old != new
    return {"root": root, "corpus": corpus, "template": root / "old-index", "old": old, "new": new}


def _run_writer(corpus: Path, index: Path, *, step: str | None = None, kill_after: float | None = None,
                full: bool = False) -> int | None:
    proc = context().Process(target=write_index, args=(str(corpus), str(index), step, full))
    proc.start()
    if kill_after is not None:
        proc.join(kill_after)
        if proc.is_alive():
            os.kill(proc.pid, signal.SIGKILL)
    proc.join(60)
    if proc.is_alive():  # pragma: no cover - a hung writer fails the test
        os.kill(proc.pid, signal.SIGKILL)
        proc.join()
        raise AssertionError(f"writer for {index} hung")
    return proc.exitcode


def test_kill_9_at_every_step_and_at_random_moments(states, tmp_path: Path):
    corpus, template = states["corpus"], states["template"]
    rng = random.Random(20240505)
    durations = []
    for n in range(4):  # the first run also starts the forkserver: not counted
        probe = tmp_path / f"probe-{n}"
        shutil.copytree(template, probe)
        start = time.perf_counter()
        assert _run_writer(corpus, probe) == 0
        durations.append(time.perf_counter() - start)
    writer_seconds = sorted(durations[1:])[1]
    runs = [("step", s, None, False) for s in FAULT_STEPS]
    runs += [("random", None, rng.uniform(0.0, 0.6 * writer_seconds), i % 3 == 0) for i in range(20)]
    outcomes = {"old": 0, "new": 0}
    killed = {"step": 0, "random": 0}
    for n, (kind, step, delay, full) in enumerate(runs):
        index = tmp_path / f"run-{n:02d}"
        shutil.copytree(template, index)
        code = _run_writer(corpus, index, step=step, kill_after=delay, full=full)
        assert code in (0, -signal.SIGKILL), f"run {n} ({kind} {step or delay}): writer exited with {code}"
        killed[kind] += code == -signal.SIGKILL
        if kind == "step":
            assert code == -signal.SIGKILL, f"step {step} was never reached"
        got = fingerprint(index)
        assert got in (states["old"], states["new"]), f"run {n} ({kind} {step or delay}): index answers neither old nor new"
        outcomes["old" if got == states["old"] else "new"] += 1
        assert rag.load(index).version_path == current_version(index)  # no fallback was needed
        # The next writer cleans up after the dead one and publishes the new state.
        report = IndexWriter(index, model="test-hash").sync([corpus])
        assert fingerprint(index) == states["new"]
        assert not list(index.glob(".tmp-*")) and not list(index.glob(f".{POINTER}.*"))
        assert len(list(index.glob("v-*"))) <= 2
        assert report.info.documents == len(NEW)
    # A random kill can come after a fast writer has finished; most must land mid-write.
    assert killed["random"] >= 10 and outcomes["old"] > 0 and outcomes["new"] > 0
    # And once more from a process that has never touched these indexes.
    code = (
        "import json, sys\n"
        "from test_faults import fingerprint\n"
        "print(json.dumps([fingerprint(p) for p in sys.argv[1:]]))\n"
    )
    indexes = [str(tmp_path / f"run-{n:02d}") for n in range(len(runs))]
    # ``-c`` puts the working directory (ROOT) first on the path; this test's folder comes next
    path = os.pathsep.join([str(Path(__file__).parent), *filter(None, [os.environ.get("PYTHONPATH")])])
    out = subprocess.run([sys.executable, "-c", code, *indexes], capture_output=True, text=True, timeout=120,
                         cwd=ROOT, env={**os.environ, "PYTHONPATH": path})
    assert out.returncode == 0, out.stderr
    assert all(fp == states["new"] for fp in json.loads(out.stdout))
    print(f"fault injection: {len(runs)} writer runs, {sum(killed.values())} killed with SIGKILL, "
          f"{outcomes['old']} left the old index, {outcomes['new']} the new, 0 lost or corrupt")


def test_corrupt_current_version_falls_back_to_previous(states, tmp_path: Path):
    for damage in ("truncate-faiss", "flip-chunk-byte", "delete-manifest", "edit-manifest", "dangling-pointer"):
        index = tmp_path / damage
        shutil.copytree(states["template"], index)
        fill(states["corpus"], NEW)
        IndexWriter(index, model="test-hash").sync([states["corpus"]])  # new version on top of the old one
        version = current_version(index)
        if damage == "truncate-faiss":
            f = version / "vectors.faiss"
            f.write_bytes(f.read_bytes()[:100])
            expect = "vectors.faiss: checksum mismatch"
        elif damage == "flip-chunk-byte":
            f = version / "chunks.jsonl"
            data = bytearray(f.read_bytes())
            data[len(data) // 2] ^= 0x01
            f.write_bytes(bytes(data))
            expect = "chunks.jsonl: checksum mismatch"
        elif damage == "delete-manifest":
            (version / "manifest.json").unlink()
            expect = "manifest missing"
        elif damage == "edit-manifest":
            m = version / "manifest.json"
            m.write_text(m.read_text(encoding="utf-8").replace('"chunks": ', '"chunks": 1', 1), encoding="utf-8")
            expect = "manifest checksum mismatch"
        else:
            (index / POINTER).write_text("v-999999-gone\n", encoding="utf-8")
            expect = "points to a missing version"
        stored = load_index(index)
        assert stored.warning is not None and expect in stored.warning.message, damage
        assert "loaded the previous version" in stored.warning.message
        # The version before the damaged one; with a dangling pointer, the newest intact one.
        assert fingerprint(index) == states["new" if damage == "dangling-pointer" else "old"], damage
        with pytest.raises(IndexCorruptError, match=expect):
            load_index(index, fallback=False)
        # A build repairs it: the damaged version is passed over and the new state published.
        report = IndexWriter(index, model="test-hash").sync([states["corpus"]])
        assert any("loaded the previous version" in w for w in report.warnings)
        assert load_index(index).warning is None and fingerprint(index) == states["new"]


def test_no_intact_version_is_refused_with_the_reason(states, tmp_path: Path):
    index = tmp_path / "index"
    shutil.copytree(states["template"], index)
    for v in index.glob("v-*"):
        (v / "documents.jsonl").write_text("{}\n", encoding="utf-8")
    with pytest.raises(IndexCorruptError, match="documents.jsonl: checksum mismatch.*rebuild needed"):
        rag.load(index)


def test_stale_temporaries_cleaned_when_a_writer_starts(states, tmp_path: Path):
    index = tmp_path / "index"
    shutil.copytree(states["template"], index)
    (index / ".tmp-v-000077-dead").mkdir()
    (index / ".tmp-v-000077-dead" / VERSION_MARKER).write_text("rag index version\n", encoding="utf-8")  # written first
    (index / ".tmp-v-000077-dead" / "vectors.faiss").write_bytes(b"half")
    (index / ".tmp-v-000076-dead").mkdir()  # killed before it wrote its marker: empty
    (index / f".{POINTER}.deadbeef").write_text("v-000077-dead\n", encoding="utf-8")
    shutil.copytree(current_version(index), index / "v-000078-unpublished")
    IndexWriter(index, model="test-hash").sync([states["corpus"]])
    names = sorted(p.name for p in index.iterdir())
    assert not [n for n in names if n.startswith(".tmp-") or n.startswith(f".{POINTER}.") or "unpublished" in n]
    assert LOCK in names and POINTER in names


def test_readers_in_threads_during_three_rebuilds(states, tmp_path: Path):
    root = tmp_path
    folder_old, folder_new = root / "old", root / "new"
    fill(folder_old, OLD)
    fill(folder_new, NEW)
    expected = {}
    for name, folder in (("old", folder_old), ("new", folder_new)):
        IndexWriter(root / f"expect-{name}", model="test-hash").sync([folder])
        expected[name] = fingerprint(root / f"expect-{name}")
    index = root / "index"
    IndexWriter(index, model="test-hash").sync([folder_old])
    held = rag.load(index)
    held_fp = fingerprint(index)
    stop = threading.Event()
    errors: list[BaseException] = []
    answers = {"held": 0, "fresh": 0}

    def holder() -> None:
        while not stop.is_set():
            try:
                for q in QUERIES:
                    held.search(q, k=3)
                    held.ask(q)
                answers["held"] += 1
            except BaseException as exc:  # noqa: BLE001
                errors.append(exc)
                return

    def loader() -> None:
        while not stop.is_set():
            try:
                fp = fingerprint(index)
                assert fp in (expected["old"], expected["new"]), "a load saw neither the old nor the new index"
                answers["fresh"] += 1
            except BaseException as exc:  # noqa: BLE001
                errors.append(exc)
                return

    threads = [threading.Thread(target=holder) for _ in range(2)] + [threading.Thread(target=loader) for _ in range(2)]
    for t in threads:
        t.start()
    try:
        for folder in (folder_new, folder_old, folder_new):
            time.sleep(0.2)
            IndexWriter(index, model="test-hash").sync([folder])
        time.sleep(0.2)
    finally:
        stop.set()
        for t in threads:
            t.join(60)
    assert not errors, errors[:3]
    assert answers["held"] > 0 and answers["fresh"] > 0
    assert fingerprint(index) == expected["new"]
    # The held QA still answers from its own complete (old) index.
    assert held_fp == expected["old"] and [h.source for h in held.search("library opening hours", k=3)]


def test_second_writer_waits_then_fails_with_a_clear_message(states, tmp_path: Path):
    index = tmp_path / "index"
    shutil.copytree(states["template"], index)
    ready = tmp_path / "held"
    proc = context().Process(target=hold_lock, args=(str(index), str(ready), 2.0))
    proc.start()
    try:
        deadline = time.monotonic() + 30
        while not ready.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        with pytest.raises(IndexLockedError, match=rf"\.lock: another process is writing this index \(pid {proc.pid} .*gave up after waiting 0.3s"):
            IndexWriter(index, model="test-hash", lock_timeout=0.3).sync([states["corpus"]])
        assert fingerprint(index) == states["old"]
        report = IndexWriter(index, model="test-hash", lock_timeout=30).sync([states["corpus"]])  # waits its turn
        assert report.published and fingerprint(index) == states["new"]
    finally:
        proc.join(30)


def test_concurrent_writer_threads_are_serialised(states, tmp_path: Path):
    index = tmp_path / "index"
    shutil.copytree(states["template"], index)
    folders = []
    for i in range(3):
        folder = tmp_path / f"c{i}"
        fill(folder, {**NEW, f"extra{i}.txt": f"Extra document number {i} about trains and stations."})
        folders.append(folder)
    errors: list[BaseException] = []

    def write(folder: Path) -> None:
        try:
            IndexWriter(index, model="test-hash").sync([folder])
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(f,)) for f in folders]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors
    qa = rag.load(index)
    assert len(qa.sources()) == len(NEW) + 1 and len(list(index.glob("v-*"))) == 2


def test_kill_9_during_add_and_remove_at_every_step(states, tmp_path: Path):
    """``add`` and ``remove`` killed at every fault step leave the index before or after the
    change, and the next writer finishes it."""
    from fault_workers import change_index

    template = states["template"]
    extra = tmp_path / "extra.txt"
    extra.write_text("新加入的文件：港口吞吐量增长了百分之七。", encoding="utf-8")
    gone = sorted(rag.load(template).sources())[0]
    killed = 0
    for op, target in (("add", str(extra)), ("remove", gone)):
        after = tmp_path / f"{op}-after"
        shutil.copytree(template, after)
        change_index(op, target, str(after), None)
        want = fingerprint(after)
        assert want != states["old"]
        for n, step in enumerate(FAULT_STEPS):
            index = tmp_path / f"{op}-{n:02d}"
            shutil.copytree(template, index)
            proc = context().Process(target=change_index, args=(op, target, str(index), step))
            proc.start()
            proc.join(60)
            assert not proc.is_alive(), f"{op} writer hung at {step}"
            assert proc.exitcode in (0, -signal.SIGKILL), f"{op} at {step}: exit {proc.exitcode}"
            killed += proc.exitcode == -signal.SIGKILL
            got = fingerprint(index)
            assert got in (states["old"], want), f"{op} killed at {step}: index answers neither before nor after"
            if got == states["old"]:  # killed before publishing: the change is simply made again
                change_index(op, target, str(index), None)
            assert fingerprint(index) == want
    assert killed >= 20, killed  # the CI's kill -9 runs of add and remove
