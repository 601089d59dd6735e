import shutil
from pathlib import Path

import rag
from rag.lifecycle import index_status


def test_status_tracks_new_changed_removed(tmp_path: Path, seed_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    docs = Path("docs")
    docs.mkdir()
    shutil.copy(seed_path, docs / "a.txt")
    (docs / "b.txt").write_text("第二篇文章。", encoding="utf-8")
    assert index_status("index", [docs]).stale
    rag.build_index([docs], index_dir="index", model="test-hash")
    st = index_status("index", [docs])
    assert st.exists and not st.stale and st.documents == 2 and st.model == "test-hash"
    (docs / "b.txt").write_text("改过的第二篇。", encoding="utf-8")
    (docs / "c.txt").write_text("新文章。", encoding="utf-8")
    (docs / "a.txt").unlink()
    st = index_status("index", [docs])
    assert st.changed == ("docs/b.txt",) and st.new == ("docs/c.txt",) and st.removed == ("docs/a.txt",)
    assert st.stale
