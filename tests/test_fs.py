"""rag.fs: synced and atomic writes, link-refusing creation, advisory locks."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from rag import fs


def test_atomic_write_replaces_and_leaves_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "record.json"
    target.write_text("old", encoding="utf-8")
    fs.atomic_write_text(target, "new ü")
    assert target.read_text(encoding="utf-8") == "new ü"
    fs.atomic_write_bytes(target, b"\x00bytes", durable=False)
    assert target.read_bytes() == b"\x00bytes"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["record.json"]


def test_failed_atomic_write_keeps_the_old_content(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "record.json"
    target.write_text("old", encoding="utf-8")

    def refuse(src: object, dst: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(OSError):
        fs.atomic_write_text(target, "new")
    assert target.read_text(encoding="utf-8") == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["record.json"]


def test_create_file_never_writes_through_a_link(tmp_path: Path) -> None:
    fs.create_file(tmp_path / "marker", "mine\n")
    assert (tmp_path / "marker").read_text(encoding="utf-8") == "mine\n"
    with pytest.raises(FileExistsError):
        fs.create_file(tmp_path / "marker", "again\n")
    other = tmp_path / "other"
    other.write_text("theirs", encoding="utf-8")
    (tmp_path / "link").symlink_to(other)
    with pytest.raises(FileExistsError):
        fs.create_file(tmp_path / "link", "through\n")
    assert other.read_text(encoding="utf-8") == "theirs"
    assert fs.is_plain_file(tmp_path / "marker") and not fs.is_plain_file(tmp_path / "link")
    assert fs.is_real_dir(tmp_path) and fs.lstat(tmp_path / "missing") is None


def test_write_synced_and_replace_synced(tmp_path: Path) -> None:
    fs.write_synced(tmp_path / "a.tmp", b"data")
    fs.fsync_file(tmp_path / "a.tmp")
    fs.replace_synced(tmp_path / "a.tmp", tmp_path / "a")
    fs.fsync_dir(tmp_path)
    assert (tmp_path / "a").read_bytes() == b"data" and not (tmp_path / "a.tmp").exists()


@pytest.mark.skipif(not fs.LOCKS_AVAILABLE, reason="no advisory locks on this platform")
def test_locks_exclude_other_open_files(tmp_path: Path) -> None:
    lock = tmp_path / ".lock"
    with fs.exclusive_lock(lock):
        fd = os.open(lock, os.O_RDWR)
        try:
            assert not fs.try_lock(fd)  # held through another open file description
        finally:
            os.close(fd)
    fd = os.open(lock, os.O_RDWR)
    try:
        assert fs.try_lock(fd)
        fs.unlock(fd)
    finally:
        os.close(fd)
