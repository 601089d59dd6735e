"""An index folder that cannot be written (read-only, disk full, FAISS refusing to write):
``rag add/build/remove`` say so in one line naming the folder and the reason, exit 1, and the
index as it was still loads and answers.

Tests run as root, where ``chmod`` does not stop writes: the failures are injected where the
operating system would report them (opening the lock file, creating the version folder,
writing a file, FAISS's own writer)."""

from __future__ import annotations

import builtins
import errno
import io
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import rag
from rag.index import store
from rag.index.writer import IndexWriter
from rag.cli import main
from rag.errors import IndexError_, RagError

QUESTION = "前三季度规模以上工业增加值同比增长多少？"
EROFS = os.strerror(errno.EROFS)
ENOSPC = os.strerror(errno.ENOSPC)


@pytest.fixture()
def built(tmp_path: Path, seed_path: Path) -> tuple[Path, Path, Path]:
    """(docs folder, index folder, a new file to add)."""
    docs = tmp_path / "docs"
    docs.mkdir()
    shutil.copy(seed_path, docs / seed_path.name)
    (docs / "note.md").write_text("# Library\n\nThe city library opens at 9 am on weekdays.\n", encoding="utf-8")
    index = tmp_path / "index"
    rag.build_index([docs], index_dir=index, model="test-hash")
    extra = tmp_path / "museum.txt"
    extra.write_text("The city museum was founded in 1887 by Anna Berg.", encoding="utf-8")
    return docs, index, extra


def _inside(path: Any, folder: Path) -> bool:
    try:
        return Path(os.fsdecode(path)).resolve().is_relative_to(folder.resolve())
    except (TypeError, ValueError):
        return False


def _writes(flags: int) -> bool:
    return bool(flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND))


# Each injector makes writes under the index folder fail the way the OS (or FAISS) reports it.
Injector = Callable[[pytest.MonkeyPatch, Path], str]


def read_only_everything(mp: pytest.MonkeyPatch, index: Path) -> str:
    """A read-only mount: every open for writing, mkdir and rename under the index fails."""
    real_open, real_os_open, real_mkdir, real_replace = builtins.open, os.open, os.mkdir, os.replace

    def fail(path: Any) -> OSError:
        return OSError(errno.EROFS, EROFS, os.fsdecode(path))

    def os_open(path: Any, flags: int, *args: Any, **kw: Any) -> int:
        if _inside(path, index) and _writes(flags):
            raise fail(path)
        return real_os_open(path, flags, *args, **kw)

    def open_(file: Any, mode: str = "r", *args: Any, **kw: Any) -> Any:
        if not isinstance(file, int) and _inside(file, index) and any(c in mode for c in "wax+"):
            raise fail(file)
        return real_open(file, mode, *args, **kw)

    def mkdir(path: Any, *args: Any, **kw: Any) -> None:
        if _inside(path, index):
            if os.path.exists(path):
                raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), os.fsdecode(path))
            raise fail(path)
        real_mkdir(path, *args, **kw)

    def replace(src: Any, dst: Any, *args: Any, **kw: Any) -> None:
        if _inside(dst, index):
            raise fail(dst)
        real_replace(src, dst, *args, **kw)

    mp.setattr(os, "open", os_open)
    mp.setattr(builtins, "open", open_)
    mp.setattr(io, "open", open_)
    mp.setattr(os, "mkdir", mkdir)
    mp.setattr(os, "replace", replace)
    return EROFS


def read_only_version_folder(mp: pytest.MonkeyPatch, index: Path) -> str:
    """The lock file is writable but the folder is not: creating the new version fails."""
    real_mkdir = os.mkdir

    def mkdir(path: Any, *args: Any, **kw: Any) -> None:
        if _inside(path, index) and Path(os.fsdecode(path)).name.startswith(".tmp-"):
            raise OSError(errno.EROFS, EROFS, os.fsdecode(path))
        real_mkdir(path, *args, **kw)

    mp.setattr(os, "mkdir", mkdir)
    return EROFS


def disk_full_while_writing(mp: pytest.MonkeyPatch, index: Path) -> str:
    """The disk fills up in the middle of writing documents.jsonl (after some bytes)."""
    real_open = builtins.open

    class Full:
        def __init__(self, f: Any) -> None:
            self._f = f
            self._left = 64

        def write(self, s: str) -> int:
            if len(s) > self._left:
                raise OSError(errno.ENOSPC, ENOSPC)
            self._left -= len(s)
            return self._f.write(s)

        def __enter__(self) -> "Full":
            return self

        def __exit__(self, *exc: object) -> None:
            self._f.close()

        def __getattr__(self, name: str) -> Any:
            return getattr(self._f, name)

    def open_(file: Any, mode: str = "r", *args: Any, **kw: Any) -> Any:
        f = real_open(file, mode, *args, **kw)
        if not isinstance(file, int) and _inside(file, index) and "w" in mode and str(file).endswith("documents.jsonl"):
            return Full(f)
        return f

    mp.setattr(builtins, "open", open_)
    return ENOSPC


def faiss_cannot_write(mp: pytest.MonkeyPatch, index: Path) -> str:
    """FAISS raises RuntimeError (not OSError) when it cannot open or write its file."""
    import faiss

    def write_index(vec_index: Any, path: str) -> None:
        raise RuntimeError(
            "Error in faiss::FileIOWriter::FileIOWriter(const char*) at /project/faiss/faiss/impl/io.cpp:102: "
            f"Error: 'f' failed: could not open {path} for writing: No space left on device"
        )

    mp.setattr(faiss, "write_index", write_index)
    return ENOSPC


INJECTORS = [read_only_everything, read_only_version_folder, disk_full_while_writing, faiss_cannot_write]


def _commands(docs: Path, index: Path, extra: Path) -> dict[str, list[str]]:
    return {
        "add": ["add", str(extra), "--index", str(index), "--json"],
        "build": ["build", str(docs), str(extra), "--index", str(index), "--json"],
        "build-full": ["build", str(docs), "--index", str(index), "--full", "--json"],
        "remove": ["remove", str(docs / "note.md"), "--index", str(index), "--json"],
    }


def _snapshot(index: Path) -> dict[str, bytes]:
    return {p.relative_to(index).as_posix(): p.read_bytes() for p in sorted(index.rglob("*"))
            if p.is_file() and p.name != store.LOCK}


def _assert_intact(index: Path, before: dict[str, bytes]) -> None:
    assert _snapshot(index) == before
    assert not list(index.glob(".tmp-*")) and not list(index.glob(f".{store.POINTER}.*"))
    qa = rag.load(index)
    assert qa.warning is None
    ans = qa.ask(QUESTION)
    assert ans.found and ans.span == "5.8%"
    assert len(qa.sources()) == 2


@pytest.mark.parametrize("inject", INJECTORS, ids=lambda f: f.__name__)
@pytest.mark.parametrize("command", ["add", "build", "build-full", "remove"])
def test_cli_write_failure_is_one_line_and_the_index_survives(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, built: tuple[Path, Path, Path],
    inject: Injector, command: str,
) -> None:
    docs, index, extra = built
    before = _snapshot(index)
    argv = _commands(docs, index, extra)[command]
    with monkeypatch.context() as mp:
        reason = inject(mp, index)
        code = main(argv)
        out, err = capsys.readouterr()
    assert code == 1 and out == ""
    assert "Traceback" not in err and err.endswith("\n")
    lines = err.splitlines()
    assert len(lines) == 1, err
    line = lines[0]
    assert line.startswith(f"error: {index}: cannot write the index") and reason in line, line
    _assert_intact(index, before)
    # and the index can still be changed once the folder is writable again
    assert main(argv) == 0
    capsys.readouterr()


@pytest.mark.parametrize("inject", INJECTORS, ids=lambda f: f.__name__)
def test_api_raises_a_typed_write_error(monkeypatch: pytest.MonkeyPatch, built: tuple[Path, Path, Path],
                                        inject: Injector) -> None:
    from rag.errors import IndexWriteError

    docs, index, extra = built
    before = _snapshot(index)
    with monkeypatch.context() as mp:
        reason = inject(mp, index)
        with pytest.raises(IndexWriteError) as info:
            IndexWriter(index).add([extra])
    exc = info.value
    assert isinstance(exc, IndexError_) and isinstance(exc, RagError)
    assert exc.path == str(index) and reason in exc.reason
    assert "\n" not in str(exc) and "Error in faiss" not in str(exc)
    _assert_intact(index, before)


def test_new_index_under_a_read_only_parent(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
                                            tmp_path: Path, seed_path: Path) -> None:
    parent = tmp_path / "ro"
    parent.mkdir()
    index = parent / "index"
    with monkeypatch.context() as mp:
        read_only_everything(mp, parent)
        code = main(["build", str(seed_path), "--index", str(index), "--model", "test-hash", "--json"])
        out, err = capsys.readouterr()
    assert code == 1 and out == ""
    assert err.splitlines() == [err.strip()] and err.startswith(f"error: {index}: cannot write the index")
    assert EROFS in err and not index.exists()


def _chmod_stops_writes(folder: Path) -> bool:
    probe = folder / "probe"
    probe.mkdir()
    probe.chmod(0o555)
    try:
        (probe / "x").write_text("x")
    except PermissionError:
        return True
    finally:
        probe.chmod(0o755)
        shutil.rmtree(probe)
    return False


def test_chmod_read_only_folder(capsys: pytest.CaptureFixture[str], built: tuple[Path, Path, Path],
                                tmp_path: Path) -> None:
    """A real read-only folder. Root (or CAP_DAC_OVERRIDE) writes through chmod: then skipped;
    as root it runs under ``setpriv --bounding-set=-dac_override,-dac_read_search``."""
    if os.name != "posix" or not _chmod_stops_writes(tmp_path):
        pytest.skip("this process writes through chmod (root)")
    docs, index, extra = built
    before = _snapshot(index)
    saved = [(p, p.stat().st_mode) for p in [index, *index.rglob("*")]]
    try:
        for p, _ in saved:
            p.chmod(0o555 if p.is_dir() else 0o444)
        code = main(["add", str(extra), "--index", str(index), "--json"])
        out, err = capsys.readouterr()
        # readers never write: a read-only index still answers
        assert main(["ask", QUESTION, "--index", str(index)]) == 0
        assert "Answer: 5.8%" in capsys.readouterr().out
    finally:
        for p, mode in saved:
            p.chmod(mode)
    assert code == 1 and out == "" and len(err.splitlines()) == 1, err
    assert err.startswith(f"error: {index}: cannot write the index: Permission denied")
    _assert_intact(index, before)
