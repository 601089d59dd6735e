"""The one index writer (:class:`rag.IndexWriter`) and what it talks to: the :class:`Store`
protocol (a folder, or any other store: here one held in memory), and the one progress
callback ``(stage, done, total)`` with its one terminal printer."""

from __future__ import annotations

import io
import time
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path

import faiss
import numpy as np
import pytest

import rag
from rag.errors import IndexIncompatibleError, IndexNotFoundError
from rag.index.collection import MemoryCollection
from rag.index.embedding import HashEmbedder
from rag.index.folder_store import FolderStore, open_store
from rag.index.store import FORMAT_VERSION, Manifest, SourceRecord, StoredIndex, load_index
from rag.index.store_api import Store
from rag.index.writer import IndexWriter
from rag.terminal import progress_printer

DOCS = {
    "bridge.txt": "The old bridge was built in 1890 by engineers from the city. It is 300 metres long.",
    "library.md": "The city library opens at 9 am and closes at 6 pm. It was founded in 1921 by Mary Smith.",
}


@pytest.fixture()
def docs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    folder = Path("docs")
    folder.mkdir()
    for name, text in DOCS.items():
        (folder / name).write_text(text, encoding="utf-8")
    return folder


class OtherModel(HashEmbedder):
    def __init__(self) -> None:
        super().__init__(dimension=32)
        self.name = "other-model"


class MemoryStore:
    """A store that is not a folder: versions are kept in memory (as a database store keeps
    them in tables). Records each operation the writer asks for."""

    def __init__(self) -> None:
        self.versions: list[StoredIndex] = []
        self.calls: list[str] = []

    @property
    def location(self) -> str:
        return "memory://test"

    def exists(self) -> bool:
        return bool(self.versions)

    def read(self, *, verify: bool = True, fallback: bool = True, tokens: bool = False) -> StoredIndex:
        self.calls.append("read")
        if not self.versions:
            raise IndexNotFoundError(f"{self.location}: no index here (build one with: python -m rag build)")
        return self.versions[-1]

    def collection(self, *, verify: bool = True) -> MemoryCollection:
        return MemoryCollection(self.read(verify=verify))

    def manifest(self) -> tuple[Manifest, str, str | None]:
        stored = self.read()
        return stored.manifest, stored.path.name, None

    def lock(self, timeout: float | None = None) -> AbstractContextManager[None]:
        self.calls.append("lock")
        return nullcontext()

    def tidy(self) -> list[str]:
        self.calls.append("tidy")
        return []

    def publish(self, content, *, based_on: StoredIndex | None = None) -> str:  # type: ignore[no-untyped-def]
        self.calls.append("publish")
        per_doc: dict[str, int] = {}
        for c in content.chunks:
            per_doc[c.source] = per_doc.get(c.source, 0) + 1
        records = [SourceRecord(d.source, d.sha256, per_doc.get(d.source, 0), d.encoding) for d in content.documents]
        manifest = Manifest(FORMAT_VERSION, content.model, content.dimension, content.settings,
                            tuple(sorted(records + list(content.duplicates), key=lambda r: r.source)),
                            len(content.chunks), float(np.mean(content.chunk_visibility)), time.strftime("%Y-%m-%d"),
                            content.build_seconds, {}, {}, content.near_duplicates, content.fingerprint,
                            content.precision)
        vectors = faiss.IndexFlatIP(content.dimension)
        vectors.add(np.ascontiguousarray(content.vectors, dtype=np.float32))
        version = Path(f"v{len(self.versions) + 1}")
        self.versions.append(StoredIndex(version, manifest, content.chunks, {d.source: d for d in content.documents},
                                         content.vectors, vectors, content.bm25, content.chunk_visibility,
                                         content.signatures, None, content.tokens))
        return f"{self.location}/{version}"

    def retain(self, current: StoredIndex) -> None:
        self.calls.append("retain")


def test_stores_implement_the_protocol(tmp_path: Path):
    assert isinstance(FolderStore(tmp_path), Store) and isinstance(MemoryStore(), Store)
    assert not isinstance(tmp_path, Store) and not isinstance("index", Store)
    store = MemoryStore()
    assert open_store(store) is store
    assert isinstance(open_store(tmp_path / "index"), FolderStore)
    assert open_store(tmp_path / "index").location == str(tmp_path / "index")


def test_the_writer_and_load_work_on_a_store_that_is_not_a_folder(docs: Path):
    store = MemoryStore()
    writer = IndexWriter(store, model="test-hash")
    with pytest.raises(IndexNotFoundError, match="memory://test: no index here"):
        writer.remove(["docs/bridge.txt"])
    report = writer.sync([docs])
    assert report.published and report.info.index_dir == "memory://test/v1" and report.info.documents == 2
    assert store.calls == ["lock", "tidy", "read", "publish"]  # one transaction: lock, plan, write, publish
    qa = rag.load(store)
    assert qa.ask("When was the old bridge built?").span == "1890"
    again = writer.sync([docs])
    assert not again.published and store.calls[-1] == "retain" and len(store.versions) == 1
    extra = Path("more") / "museum.txt"
    extra.parent.mkdir()
    extra.write_text("The museum opens at 10 am on Sundays.", encoding="utf-8")
    r = writer.add([extra])
    assert r.added == ("more/museum.txt",) and r.reused_chunks == 2
    r = writer.remove(["docs/library.md"])
    assert r.removed == ("docs/library.md",) and r.embedded_chunks == 0 and len(store.versions) == 3
    st = rag.index_status(store)
    assert st.exists and st.index_dir == "memory://test" and st.version == "v3" and st.documents == 2
    with pytest.raises(IndexIncompatibleError, match="memory://test: the index was built with model"):
        IndexWriter(store, embedder=OtherModel()).add([extra])


def test_one_writer_runs_every_operation_on_a_folder(docs: Path, tmp_path: Path):
    index = tmp_path / "index"
    seen: list[tuple[str, int, int]] = []
    writer = IndexWriter(index, model="test-hash", progress=lambda *a: seen.append(a))
    assert rag.build_index([docs], index_dir=index, model="test-hash").documents == 2  # the simple wrapper
    r = writer.add_texts([("notes/a.txt", "Ferries leave every hour from the north pier.")])
    assert r.added == ("notes/a.txt",) and r.unchanged == ("docs/bridge.txt", "docs/library.md")
    r = writer.sync([docs])  # exactly the files: the text is removed again
    assert r.removed == ("notes/a.txt",) and r.embedded_chunks == 0
    r = writer.add_texts([("t.txt", "Only this.")], replace_all=True)
    assert r.info.documents == 1 and set(r.removed) == {"docs/bridge.txt", "docs/library.md"}
    assert load_index(index).manifest.model == "test-hash"
    assert {stage for stage, _, _ in seen} == {"read", "chunk", "embed", "bm25", "write"}  # texts are not read
    assert all(0 <= done <= total for _, done, total in seen)


def test_rebuild_needed_is_refused_only_when_asked(docs: Path, tmp_path: Path):
    index = tmp_path / "index"
    IndexWriter(index, model="test-hash").sync([docs])
    with pytest.raises(IndexIncompatibleError, match="rebuild needed"):
        IndexWriter(index, embedder=OtherModel()).sync([docs], refuse_mismatch=True)
    r = IndexWriter(index, embedder=OtherModel()).sync([docs])
    assert r.full and r.info.model == "other-model" and any("rebuilding in full" in w for w in r.warnings)


def test_the_progress_printer_shows_each_stage_once_per_percent():
    out = io.StringIO()
    p = progress_printer(out)
    for done in (0, 0, 1, 2):
        p("read", done, 2)
    p("embed", 0, 0)  # nothing to do: nothing shown
    p("bad\x1b[2J", 1, 1)
    assert out.getvalue() == "  read: 0/2 (0%)\r  read: 1/2 (50%)\r  read: 2/2 (100%)\n" \
                             "bad\\x1b[2J: 1/1 (100%)\n"
    indented = io.StringIO()
    progress_printer(indented, indent="  ")("write", 1, 1)
    assert indented.getvalue() == "   write: 1/1 (100%)\n"
