"""Data-loss defects of the index folder: a writer deletes only what it provably wrote, a lost
``CURRENT`` is recovered from (never wiped), a single path is one path (not its characters),
and nothing is written through a symbolic or hard link planted at a fixed name."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

import rag
from rag.cli import main
from rag.index.embedding import HashEmbedder
from rag.errors import IndexCorruptError, NotAnIndexError, UnsafeIndexPathError
from rag.index.status import index_status
from rag.index.writer import IndexWriter
from rag.index.store import LOCK, POINTER, current_version, load_index

INDEX_MARKER = ".rag-index"
VERSION_MARKER = ".rag-version"

DOCS = {
    "bridge.txt": "The old bridge was built in 1890 by engineers from the city. It is 300 metres long.",
    "library.md": "The city library opens at 9 am and closes at 6 pm. It was founded in 1921 by Mary Smith.",
}


def write(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    p = folder / name
    p.write_text(text, encoding="utf-8")
    return p


@pytest.fixture()
def docs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    folder = Path("docs")
    for name, text in DOCS.items():
        write(folder, name, text)
    return folder


def two_versions(docs: Path, index: Path) -> tuple[Path, Path]:
    """An index with two published versions (the second adds a museum document)."""
    IndexWriter(index, model="test-hash").sync([docs])
    first = current_version(index)
    write(docs, "museum.txt", "The museum opens at 10 am on Sundays.")
    IndexWriter(index, model="test-hash").sync([docs])
    second = current_version(index)
    assert first != second and first.is_dir()
    return first, second


def strip_markers(index: Path) -> None:
    """Make ``index`` look like one written before markers existed."""
    for p in list(index.rglob(".rag-*")):
        p.unlink()


def tree(folder: Path) -> dict[str, bytes | None]:
    return {p.relative_to(folder).as_posix(): (p.read_bytes() if p.is_file() else None) for p in sorted(folder.rglob("*"))}


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


# ---------------------------------------------------------------- 1. only what rag wrote is deleted


def test_build_refuses_a_folder_of_someone_elses_files(docs: Path):
    x = Path("x")
    write(x / "v-important", "t.txt", "thesis")
    write(x, "notes.txt", "my notes")
    before = tree(x)
    for writer in (lambda: rag.build_index([docs], index_dir=x, model="test-hash"),
                   lambda: IndexWriter(x, model="test-hash").add([docs]),
                   lambda: IndexWriter(x).remove(["docs/bridge.txt"])):
        with pytest.raises(NotAnIndexError, match=r"^x: .*not an index"):
            writer()
        assert tree(x) == before  # nothing deleted, nothing written (not even a lock)


def test_cli_refuses_a_foreign_folder_in_one_line(capsys: pytest.CaptureFixture[str], docs: Path):
    write(Path("x") / "v-important", "t.txt", "thesis")
    code, out, err = run(capsys, "build", "docs", "--index", "x", "--model", "test-hash")
    assert code == 1 and len(err.strip().splitlines()) == 1
    assert err.startswith("error: x: ") and "not an index" in err and "Traceback" not in err
    assert (Path("x") / "v-important" / "t.txt").read_text(encoding="utf-8") == "thesis"


def test_new_and_empty_folders_are_marked_as_index_folders(docs: Path):
    empty = Path("empty")
    empty.mkdir()
    for index in (Path("new") / "deeper", empty):
        IndexWriter(index, model="test-hash").sync([docs])
        assert (index / INDEX_MARKER).is_file() and not (index / INDEX_MARKER).is_symlink()
        version = current_version(index)
        assert (version / VERSION_MARKER).is_file()
        assert VERSION_MARKER not in load_index(index).manifest.files  # ownership, not content
    # A folder holding only a placeholder README (like this repository's index/) is usable too.
    placeholder = Path("placeholder")
    write(placeholder, "README.md", "The built index lives here.")
    IndexWriter(placeholder, model="test-hash").sync([docs])
    assert (placeholder / "README.md").read_text(encoding="utf-8") == "The built index lives here."
    assert rag.load(placeholder).chunk_count > 0


def test_foreign_folders_inside_an_index_are_never_deleted(docs: Path):
    index = Path("index")
    two_versions(docs, index)
    write(index / "v-important", "t.txt", "thesis")  # the user's, though named like a version
    write(index / "v-000999-notes", "n.txt", "mine")  # newer than CURRENT by its name
    write(index / ".tmp-mine", "keep.txt", "scratch")  # no marker: not a writer's temp folder
    (index / ".CURRENT.mine").write_text("not a pointer temp of ours\n", encoding="utf-8")
    for step in range(3):
        write(docs, "extra.txt", f"Extra document number {step} about trains.")
        r = IndexWriter(index, model="test-hash").sync([docs])
        assert r.published
    (index / POINTER).unlink()  # and with the pointer lost
    IndexWriter(index).add([write(Path("more"), "one.txt", "One more document about ferries.")])
    assert (index / "v-important" / "t.txt").read_text(encoding="utf-8") == "thesis"
    assert (index / "v-000999-notes" / "n.txt").read_text(encoding="utf-8") == "mine"
    assert (index / ".tmp-mine" / "keep.txt").read_text(encoding="utf-8") == "scratch"
    assert (index / ".CURRENT.mine").is_file()
    assert "more/one.txt" in rag.load(index).sources()


def test_crashed_writer_leftovers_carry_the_marker_and_are_removed(docs: Path):
    index = Path("index")
    two_versions(docs, index)
    dead = index / ".tmp-v-000077-20240101T000000-deadbeef"
    dead.mkdir()
    (dead / VERSION_MARKER).write_text("rag index version\n", encoding="utf-8")
    (dead / "vectors.faiss").write_bytes(b"half")  # killed before its manifest
    (index / ".tmp-v-000078-20240101T000000-0badf00d").mkdir()  # killed before its marker: empty
    (index / f".{POINTER}.deadbeef").write_text("v-000077-dead\n", encoding="utf-8")
    write(docs, "extra.txt", "Extra document about trains.")
    IndexWriter(index, model="test-hash").sync([docs])
    assert not list(index.glob(".tmp-*")) and not list(index.glob(f".{POINTER}.*"))
    assert len(list(index.glob("v-*"))) == 2


def test_index_written_without_markers_keeps_loading_and_updating(docs: Path):
    index = Path("index")
    first, second = two_versions(docs, index)
    # A writer of the previous code killed after its rename, before publishing: a complete
    # version newer than CURRENT, with a manifest and no marker.
    unpublished = index / "v-000003-20240101T000000-0000beef"
    shutil.copytree(second, unpublished)
    strip_markers(index)
    assert rag.load(index).version_path == second
    write(docs, "extra.txt", "Extra document about trains.")
    r = IndexWriter(index).sync([docs], refuse_mismatch=True)
    assert r.published and r.added == ("docs/extra.txt",) and r.info.model == "test-hash"
    third = current_version(index)
    names = sorted(p.name for p in index.glob("v-*"))
    # The unpublished version and the oldest one were provably ours (pattern name, verified
    # manifest, nothing else inside); the one before the published one is kept for fallback.
    assert names == sorted([second.name, third.name]) and not unpublished.exists() and not first.exists()
    assert (index / INDEX_MARKER).is_file()


def test_legacy_version_with_foreign_files_is_kept(docs: Path):
    index = Path("index")
    first, _ = two_versions(docs, index)
    strip_markers(index)
    write(first, "my-notes.txt", "do not lose me")  # not in its manifest: not provably ours
    for step in range(2):
        write(docs, "extra.txt", f"Extra document number {step}.")
        IndexWriter(index, model="test-hash").sync([docs])
    assert (first / "my-notes.txt").read_text(encoding="utf-8") == "do not lose me"


# ---------------------------------------------------------------- 2. a lost CURRENT


def test_lost_pointer_loads_the_newest_intact_version_with_a_warning(docs: Path):
    index = Path("index")
    first, second = two_versions(docs, index)
    (index / POINTER).unlink()
    stored = load_index(index)
    assert stored.path == second and stored.warning is not None
    assert second.name in stored.warning.message and "CURRENT" in stored.warning.message
    assert stored.warning.loaded == str(second)
    qa = rag.load(index)
    assert qa.version_path == second and qa.warning is not None and "docs/museum.txt" in qa.sources()
    st = index_status(index)
    assert st.exists and st.version == second.name and st.warning and second.name in st.warning
    with pytest.raises(IndexCorruptError, match="CURRENT"):
        load_index(index, fallback=False)
    # The newest version corrupt as well: the one before it.
    (second / "chunks.jsonl").write_text("garbage\n", encoding="utf-8")
    stored = load_index(index)
    assert stored.path == first and first.name in stored.warning.message


def test_lost_pointer_add_keeps_every_version_and_the_model(docs: Path, monkeypatch: pytest.MonkeyPatch):
    import rag.index.reuse

    def only_test_hash(name: str | None = None, **kwargs: object) -> HashEmbedder:
        assert name == "test-hash", f"the writer switched to model {name!r}"
        return HashEmbedder()

    index = Path("index")
    first, second = two_versions(docs, index)
    (index / POINTER).unlink()
    monkeypatch.setattr(rag.index.reuse, "load_embedder", only_test_hash)
    r = IndexWriter(index).add([write(Path("more"), "one.txt", "One more document about ferries.")])
    assert first.is_dir() and second.is_dir()  # nothing that was not a failed write is deleted
    assert any(second.name in w for w in r.warnings)
    assert r.info.model == "test-hash" and r.added == ("more/one.txt",)
    assert set(r.unchanged) == {"docs/bridge.txt", "docs/library.md", "docs/museum.txt"}
    stored = load_index(index)
    assert stored.warning is None and stored.path != second  # CURRENT is published again
    assert sorted(stored.documents) == ["docs/bridge.txt", "docs/library.md", "docs/museum.txt", "more/one.txt"]


def test_lost_pointer_remove_and_build_recover(docs: Path):
    index = Path("index")
    first, second = two_versions(docs, index)
    (index / POINTER).unlink()
    r = IndexWriter(index).remove(["docs/museum.txt"])
    assert r.removed == ("docs/museum.txt",) and any(second.name in w for w in r.warnings)
    assert first.is_dir() and second.is_dir()
    (index / POINTER).unlink()
    r = IndexWriter(index).sync([docs])
    assert r.info.model == "test-hash" and r.added == ("docs/museum.txt",) and not r.full


# ---------------------------------------------------------------- 3. one path is one path


def test_a_single_path_is_one_path_not_its_characters(docs: Path):
    index = Path("index")
    info = rag.build_index("docs", index_dir=index, model="test-hash")
    assert info.documents == 2 and not info.skipped
    assert rag.build_index(Path("docs"), index_dir=index).documents == 2
    assert rag.build_index("docs/", index_dir=index).documents == 2
    r = IndexWriter(index).add(str(write(Path("more"), "one.txt", "One more document about ferries.")))
    assert r.added == ("more/one.txt",)
    assert index_status(index, "docs").removed == ("more/one.txt",)
    r = IndexWriter(index).remove("more/one.txt")
    assert r.removed == ("more/one.txt",)
    r = IndexWriter(index).sync(Path("docs"), refuse_mismatch=True)
    assert not r.published and r.info.documents == 2


@pytest.mark.parametrize("bad", [42, None, b"docs", [Path("docs"), 7], {"docs": 1}.values()])
def test_paths_of_other_types_are_a_type_error(docs: Path, bad: object):
    with pytest.raises(TypeError, match="path"):
        rag.build_index(bad, index_dir="index", model="test-hash")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="path"):
        IndexWriter("index").remove(bad)  # type: ignore[arg-type]
    assert not Path("index").exists()


# ---------------------------------------------------------------- 4. no writing through links


def test_lock_that_is_a_symbolic_link_is_refused(docs: Path, tmp_path: Path):
    index = Path("index")
    IndexWriter(index, model="test-hash").sync([docs])
    victim = tmp_path / "victim"
    victim.write_text("precious\n", encoding="utf-8")
    (index / LOCK).unlink()
    (index / LOCK).symlink_to(victim.resolve())
    with pytest.raises(UnsafeIndexPathError, match=r"\.lock.*symbolic link"):
        IndexWriter(index).add([write(Path("more"), "f.txt", "A file about ferries.")])
    assert victim.read_text(encoding="utf-8") == "precious\n"
    # A dangling link would make the lock's O_CREAT create its target.
    (index / LOCK).unlink()
    (index / LOCK).symlink_to(tmp_path / "created-through-the-link")
    with pytest.raises(UnsafeIndexPathError):
        IndexWriter(index, model="test-hash").sync([docs])
    assert not (tmp_path / "created-through-the-link").exists()


def test_lock_that_is_a_hard_link_is_refused(docs: Path, tmp_path: Path):
    index = Path("index")
    IndexWriter(index, model="test-hash").sync([docs])
    victim = tmp_path / "victim"
    victim.write_text("precious\n", encoding="utf-8")
    (index / LOCK).unlink()
    os.link(victim, index / LOCK)
    with pytest.raises(UnsafeIndexPathError, match="hard link"):
        IndexWriter(index, model="test-hash").sync([docs])
    assert victim.read_text(encoding="utf-8") == "precious\n"


def test_pointer_and_marker_links_are_never_written_through(docs: Path, tmp_path: Path):
    index = Path("index")
    first, second = two_versions(docs, index)
    victim = tmp_path / "victim"
    victim.write_text(second.name + "\n", encoding="utf-8")
    (index / POINTER).unlink()
    (index / POINTER).symlink_to(victim.resolve())
    write(docs, "extra.txt", "Extra document about trains.")
    r = IndexWriter(index, model="test-hash").sync([docs])
    assert r.published and victim.read_text(encoding="utf-8") == second.name + "\n"
    assert not (index / POINTER).is_symlink() and load_index(index).warning is None
    (index / INDEX_MARKER).unlink()
    (index / INDEX_MARKER).symlink_to(victim.resolve())
    with pytest.raises(UnsafeIndexPathError, match=r"\.rag-index"):
        IndexWriter(index, model="test-hash").sync([docs])
    assert victim.read_text(encoding="utf-8") == second.name + "\n"
