"""Removing a file of the documents folder from the chat: it is excluded (recorded beside the
index, :mod:`rag.index.exclusions`), not deleted; the start-up sync, ``rag build`` and
``IndexWriter.sync`` leave it out; restoring it indexes it again. A corrupt record is a clear
error naming the file and never harms the index. Test embedder only: fast, no model."""

from __future__ import annotations

import html
import json
import os
import re
import shutil
from pathlib import Path

import pytest

import rag
from rag.index import exclusions
from rag.index.exclusions import Exclusion, ExclusionRecordError
from rag.index.writer import IndexWriter
from rag.ui import handlers
from rag.ui.service import QAService
from rag.ui.startup import ensure_index, plan_startup

NOTE = "The harbour museum opens at 10 am. It was founded in 1911 by Ida Lund.\n"


@pytest.fixture()
def setup(tmp_path: Path, seed_path: Path) -> tuple[QAService, Path, Path]:
    """A service over docs/ (the seed article and a note), its index built with the test embedder."""
    docs = tmp_path / "docs"
    docs.mkdir()
    shutil.copy(seed_path, docs / seed_path.name)
    note = docs / "harbour.txt"
    note.write_text(NOTE, encoding="utf-8")
    rag.build_index([docs], index_dir=tmp_path / "index", model="test-hash")
    svc = QAService(tmp_path / "index", docs, tmp_path / "uploads")
    svc.load()
    return svc, docs, note


def _source(svc: QAService, name: str) -> str:
    (source,) = [s for s in svc.current().sources() if s.endswith(name)]
    return source


def _text(html_text: str) -> str:
    return html.unescape(re.sub(r"<[^>]+>", "", html_text))


def _pointer(index: Path) -> str:
    return (index / "CURRENT").read_text(encoding="utf-8").strip()


def test_exclude_sync_restore_cycle(setup: tuple[QAService, Path, Path]) -> None:
    svc, docs, note = setup
    index = svc.index_dir
    source = _source(svc, "harbour.txt")
    assert svc.ask("Who founded the harbour museum?").found

    # the Documents tab offers every document, saying what removing it does
    labels = dict((value, label) for label, value in handlers.removable_choices(svc))
    assert "excludes it, the file is kept" in labels[source]

    out = handlers.remove_document(svc, source)
    assert "Excluded" in out and "file stays in the documents folder" in out, out
    assert note.is_file() and note.read_text(encoding="utf-8") == NOTE  # the user's file is untouched
    assert source not in svc.current().sources()
    assert not svc.ask("Who founded the harbour museum?").found
    record = json.loads((index / exclusions.RECORD).read_text(encoding="utf-8"))
    assert record["format"] == 1 and [e["source"] for e in record["excluded"]] == [source]
    assert len(record["excluded"][0]["sha256"]) == 64 and record["excluded"][0]["excluded_at"].endswith("Z")
    assert not [p.name for p in index.iterdir() if p.name.endswith(".tmp")]  # written atomically, nothing left

    # the start-up check does not count it as new, and a sync does not add it back
    plan = plan_startup(index, svc.source_paths(), None)
    assert not plan.rebuild and plan.excluded == (source,), plan
    version = _pointer(index)
    result = ensure_index(index, svc.source_paths(), None)
    assert result.qa is None and result.excluded == (source,) and _pointer(index) == version
    report = IndexWriter(index, model="test-hash").sync(svc.source_paths())
    assert report.excluded == (source,) and not report.published and source not in report.added
    report = IndexWriter(index, model="test-hash").sync(svc.source_paths(), full=True)  # a full rebuild too
    assert report.excluded == (source,) and source not in rag.load(index).sources()

    # the tab lists it, with a Restore choice
    listed, restorable = handlers.excluded_view(svc)
    assert restorable == [source] and "harbour.txt" in listed and "in the folder" in listed

    out = handlers.restore_document(svc, source)
    assert "Restored" in out, out
    assert source in svc.current().sources() and svc.ask("Who founded the harbour museum?").found
    assert not (index / exclusions.RECORD).exists()  # an empty record is deleted
    assert handlers.excluded_view(svc)[1] == []
    report = IndexWriter(index, model="test-hash").sync(svc.source_paths())
    assert report.excluded == () and source in rag.load(index).sources()  # and it stays indexed


def test_rag_build_respects_exclusions(setup: tuple[QAService, Path, Path]) -> None:
    from rag.cli import main

    svc, docs, note = setup
    source = _source(svc, "harbour.txt")
    assert "Excluded" in handlers.remove_document(svc, source)
    assert main(["build", str(docs), "--index", str(svc.index_dir), "--model", "test-hash"]) == 0
    assert source not in rag.load(svc.index_dir).sources()
    # an explicit add indexes what it is given (the next sync takes it out again)
    assert main(["add", str(note), "--index", str(svc.index_dir), "--model", "test-hash"]) == 0
    assert source in rag.load(svc.index_dir).sources()
    IndexWriter(svc.index_dir, model="test-hash").sync([docs])
    assert source not in rag.load(svc.index_dir).sources()


def test_an_exclusion_whose_removal_was_cut_short_is_dropped_at_start(setup: tuple[QAService, Path, Path]) -> None:
    svc, docs, note = setup
    source = _source(svc, "harbour.txt")
    exclusions.exclude(svc.index_dir, [Exclusion(source, "")])  # recorded, but the index still holds it
    plan = plan_startup(svc.index_dir, svc.source_paths(), None)
    assert plan.rebuild and "1 excluded but still indexed" in plan.reason, plan
    result = ensure_index(svc.index_dir, svc.source_paths(), None)
    assert result.qa is not None and source not in result.qa.sources()
    assert note.is_file()


def test_a_failed_removal_puts_the_record_back(setup: tuple[QAService, Path, Path],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    svc, docs, note = setup
    source = _source(svc, "harbour.txt")
    before = svc.current()
    version = _pointer(svc.index_dir)

    def boom(*args: object, **kwargs: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(IndexWriter, "remove", boom)
    out = handlers.remove_document(svc, source)
    assert "the index was not changed" in out and "disk full" in out
    assert svc.current() is before and _pointer(svc.index_dir) == version
    assert exclusions.read_exclusions(svc.index_dir) == () and not (svc.index_dir / exclusions.RECORD).exists()


def test_a_failed_restore_keeps_it_excluded(setup: tuple[QAService, Path, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    svc, docs, note = setup
    source = _source(svc, "harbour.txt")
    handlers.remove_document(svc, source)
    (entry,) = exclusions.read_exclusions(svc.index_dir)

    def boom(*args: object, **kwargs: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(IndexWriter, "add", boom)
    out = handlers.restore_document(svc, source)
    assert "stays excluded" in out and "disk full" in out
    assert exclusions.read_exclusions(svc.index_dir) == (entry,)  # the same entry, its date too
    assert source not in svc.current().sources()


def test_restoring_a_file_that_is_gone_clears_the_record(setup: tuple[QAService, Path, Path]) -> None:
    svc, docs, note = setup
    source = _source(svc, "harbour.txt")
    handlers.remove_document(svc, source)
    note.unlink()
    listed, _ = handlers.excluded_view(svc)
    assert "no longer in the folder" in listed
    out = handlers.restore_document(svc, source)
    assert "no longer in the documents folder" in out
    assert exclusions.read_exclusions(svc.index_dir) == ()
    assert "not excluded" in handlers.restore_document(svc, source)
    assert "Choose an excluded document" in handlers.restore_document(svc, None)


def test_uploads_are_still_deleted_and_the_last_document_is_kept(setup: tuple[QAService, Path, Path],
                                                                  tmp_path: Path) -> None:
    svc, docs, note = setup
    up = tmp_path / "keeper.txt"
    up.write_text("The lighthouse keeper was Ada Quill, from 1901 to 1933.\n", encoding="utf-8")
    _, result = handlers.add_files(svc, [str(up)])
    saved = svc.uploads_dir / result["added"][0]["saved_as"]
    upload = _source(svc, saved.name)
    labels = dict((value, label) for label, value in handlers.removable_choices(svc))
    assert "added here: removing deletes it" in labels[upload]
    assert "Removed" in handlers.remove_document(svc, upload)
    assert not saved.exists() and exclusions.read_exclusions(svc.index_dir) == ()  # deleted, not excluded
    handlers.remove_document(svc, _source(svc, "harbour.txt"))
    seed = svc.current().sources()[0]
    assert "only document" in handlers.remove_document(svc, seed)
    assert svc.current().sources() == [seed]


@pytest.mark.parametrize("content,why", [
    (b"{not json", "not valid JSON"),
    (b'{"format": 1, "excluded": [{"sha256": "x"}]}', "entry 0 has no source name"),
    (b'{"format": 7, "excluded": []}', "format 7"),
    (b"[]", "expected an object"),
    (b"\xff\xfe\x00", "not UTF-8"),
])
def test_a_corrupt_record_is_a_clear_error_and_never_harms_the_index(setup: tuple[QAService, Path, Path],
                                                                      content: bytes, why: str) -> None:
    svc, docs, note = setup
    index = svc.index_dir
    path = index / exclusions.RECORD
    path.write_bytes(content)
    version = _pointer(index)
    sources = rag.load(index).sources()

    for attempt in (lambda: IndexWriter(index, model="test-hash").sync(svc.source_paths()),
                    lambda: IndexWriter(index, model="test-hash").sync(svc.source_paths(), full=True),
                    lambda: plan_startup(index, svc.source_paths(), None),
                    lambda: exclusions.exclude(index, [Exclusion("docs/x.txt")]),
                    lambda: exclusions.restore(index, ["docs/x.txt"])):
        with pytest.raises(ExclusionRecordError) as info:
            attempt()
        message = str(info.value)
        assert str(path) in message and why in message and "the index was not changed" in message, message
    assert _pointer(index) == version and rag.load(index).sources() == sources  # the index as it was
    assert path.read_bytes() == content  # and the record itself is left for the user to look at

    # the chat says so in one line and changes nothing
    listed, restorable = handlers.excluded_view(svc)
    assert "Not done" in listed and str(path) in _text(listed) and why in _text(listed) and restorable == []
    out = _text(handlers.remove_document(svc, _source(svc, "harbour.txt")))
    assert "the index was not changed" in out and str(path) in out
    assert _pointer(index) == version and svc.current().sources() == sources

    # the app's start refuses with that one line (exit 1), the index untouched
    from rag.ui.app import run

    assert run(["--docs", str(docs), "--index", str(index), "--uploads", str(svc.uploads_dir),
                "--model", "test-hash"]) == 1
    assert _pointer(index) == version


def test_a_linked_record_is_refused(setup: tuple[QAService, Path, Path], tmp_path: Path) -> None:
    svc, docs, note = setup
    elsewhere = tmp_path / "elsewhere.json"
    elsewhere.write_text('{"format": 1, "excluded": []}', encoding="utf-8")
    os.symlink(elsewhere, svc.index_dir / exclusions.RECORD)
    with pytest.raises(ExclusionRecordError, match="symbolic link"):
        exclusions.read_exclusions(svc.index_dir)
    with pytest.raises(ExclusionRecordError, match="symbolic link"):
        exclusions.exclude(svc.index_dir, [Exclusion("docs/x.txt")])
    assert elsewhere.read_text(encoding="utf-8") == '{"format": 1, "excluded": []}'  # never written through


def test_a_temporary_left_by_a_killed_writer_is_cleaned(setup: tuple[QAService, Path, Path]) -> None:
    svc, docs, note = setup
    left = svc.index_dir / ".excluded.json.0123abcd.tmp"
    left.write_text("{", encoding="utf-8")
    other = svc.index_dir / "README.md"
    other.write_text("mine", encoding="utf-8")
    exclusions.exclude(svc.index_dir, [Exclusion("docs/x.txt")])
    assert not left.exists() and other.read_text(encoding="utf-8") == "mine"
    assert [e.source for e in exclusions.read_exclusions(svc.index_dir)] == ["docs/x.txt"]


def test_status_names_excluded_files_and_does_not_call_them_new(setup: tuple[QAService, Path, Path],
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    from rag.cli import main
    from rag.index.status import index_status

    svc, docs, note = setup
    source = _source(svc, "harbour.txt")
    assert "Excluded" in handlers.remove_document(svc, source)
    st = index_status(svc.index_dir, [docs])
    assert st.excluded == (source,) and source not in st.new and not st.stale
    capsys.readouterr()
    assert main(["status", str(docs), "--index", str(svc.index_dir)]) == 0
    out = capsys.readouterr().out
    assert "excluded" in out and "harbour.txt" in out and "up to date" in out
    # an add of the excluded file puts it back in the index: then status says a sync would drop it
    IndexWriter(svc.index_dir, model="test-hash").add([note])
    assert source in index_status(svc.index_dir, [docs]).removed


def test_an_index_folder_that_lost_its_marker_is_still_adopted_with_its_record(setup: tuple[QAService, Path, Path]) -> None:
    svc, docs, _ = setup
    assert "Excluded" in handlers.remove_document(svc, _source(svc, "harbour.txt"))
    (svc.index_dir / ".rag-index").unlink()
    IndexWriter(svc.index_dir, model="test-hash").sync([docs])  # not refused as someone else's folder
    assert (svc.index_dir / ".rag-index").is_file() and (svc.index_dir / "excluded.json").is_file()
