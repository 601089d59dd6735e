"""Incremental builds, add / remove / update, duplicates, model safety, status, and the CLI."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

import rag
from rag.cli import main
from rag.index.embedding import HashEmbedder
from rag.errors import IndexCorruptError, IndexIncompatibleError, IndexNotFoundError, NoDocumentsError, SourceNotFoundError
from rag.index.status import index_status
from rag.index.writer import IndexWriter
from rag.settings import IndexSettings
from rag.index.store import POINTER, current_version, load_index

ARTICLE = ("前三季度，全国规模以上工业增加值同比增长5.8%，比上半年加快0.2个百分点。工业投资连续八个月保持两位数增长。"
           "高技术制造业增加值同比增长8.9%，明显快于全部规模以上工业。装备制造业增长7.4%，对工业增长的贡献率超过四成。"
           "国家统计局新闻发言人表示，工业生产总体平稳，结构持续优化。")
REPOST = "【转载】" + ARTICLE.replace("明显快于", "明显高于")  # a re-posted article with small edits


def write(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    p = folder / name
    p.write_text(text, encoding="utf-8")
    return p


@pytest.fixture()
def corpus(tmp_path: Path, monkeypatch) -> Path:
    monkeypatch.chdir(tmp_path)
    docs = Path("docs")
    write(docs, "article.txt", ARTICLE)
    write(docs, "library.md", "The city library opens at 9 am and closes at 6 pm. It was founded in 1921 by Mary Smith.")
    write(docs, "bridge.txt", "The old bridge was built in 1890 by engineers from the city. It is 300 metres long.")
    return docs


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


def test_build_is_incremental(corpus: Path):
    first = IndexWriter("index", model="test-hash").sync([corpus])
    assert first.added == ("docs/article.txt", "docs/bridge.txt", "docs/library.md") and first.reused_chunks == 0
    again = IndexWriter("index").sync([corpus])
    assert not again.published and again.embedded_chunks == 0 and again.info.index_dir == first.info.index_dir
    write(corpus, "bridge.txt", "The old bridge was rebuilt in 1990 after the flood.")
    write(corpus, "new.txt", "The museum opens at 10 am on Sundays.")
    (corpus / "library.md").unlink()
    r = IndexWriter("index").sync([corpus])
    assert r.added == ("docs/new.txt",) and r.updated == ("docs/bridge.txt",) and r.removed == ("docs/library.md",)
    assert r.unchanged == ("docs/article.txt",)
    assert r.embedded_chunks == 2 and r.reused_chunks == r.info.chunks - 2 and not r.full
    qa = rag.load("index")
    assert "docs/library.md" not in qa.sources()
    for h in qa.search("When does the city library open?", k=10):
        assert h.source != "docs/library.md"
    assert [c.chunk_id for c in qa.collection.stored.chunks] == list(range(qa.chunk_count))
    full = IndexWriter("index").sync([corpus], full=True)
    assert full.full and full.embedded_chunks == full.info.chunks


def test_add_remove_and_update(corpus: Path, tmp_path: Path):
    IndexWriter("index", model="test-hash").add([corpus / "article.txt"])
    r = IndexWriter("index").add([corpus / "library.md", corpus / "bridge.txt"])
    assert r.added == ("docs/bridge.txt", "docs/library.md") and r.unchanged == ("docs/article.txt",)
    assert r.reused_chunks == load_index(Path("index")).manifest.documents[0].chunks
    qa = rag.load("index")
    assert qa.ask("When was the old bridge built?").span == "1890"
    r = IndexWriter("index").remove(["docs/bridge.txt"])
    assert r.removed == ("docs/bridge.txt",) and r.embedded_chunks == 0
    qa = rag.load("index")
    assert all(h.source != "docs/bridge.txt" for h in qa.search("bridge 1890", k=10))
    assert not qa.ask("When was the old bridge built?").found
    with pytest.raises(SourceNotFoundError, match="docs/nope.txt: not in the index"):
        IndexWriter("index").remove(["docs/nope.txt"])
    r = IndexWriter("index").remove(["docs/library.md", "docs/nope.txt"])
    assert r.removed == ("docs/library.md",) and [e.path for e in r.errors] == ["docs/nope.txt"]
    before = (Path("index") / POINTER).read_text()
    with pytest.raises(NoDocumentsError, match="current index is kept"):
        IndexWriter("index").remove([corpus])  # a folder removes everything under it: refused
    assert (Path("index") / POINTER).read_text() == before
    write(corpus, "article.txt", ARTICLE + "增长势头良好。")
    r = IndexWriter("index").sync([corpus], refuse_mismatch=True)
    assert r.updated == ("docs/article.txt",) and r.added == ("docs/bridge.txt", "docs/library.md")


def test_remove_without_index(tmp_path: Path):
    with pytest.raises(IndexNotFoundError):
        IndexWriter(tmp_path / "none").remove(["a.txt"])


def test_exact_duplicates_indexed_once(corpus: Path):
    shutil.copy(corpus / "bridge.txt", corpus / "bridge-copy.txt")
    r = IndexWriter("index", model="test-hash").sync([corpus])
    assert [(d.source, d.same_as) for d in r.duplicates] == [("docs/bridge.txt", "docs/bridge-copy.txt")]
    assert r.info.documents == 3
    qa = rag.load("index")
    assert [h.source for h in qa.search("bridge built 1890", k=10)].count("docs/bridge.txt") == 0
    st = index_status("index", [corpus])
    assert not st.stale and [(d.source, d.same_as) for d in st.duplicates] == [("docs/bridge.txt", "docs/bridge-copy.txt")]
    (corpus / "bridge-copy.txt").unlink()
    r = IndexWriter("index").sync([corpus])
    assert r.removed == ("docs/bridge-copy.txt",) and r.embedded_chunks == 0 and not r.duplicates
    qa = rag.load("index")
    assert qa.ask("When was the old bridge built?").citations[0].source == "docs/bridge.txt"


def test_near_duplicates_reported_and_indexed(corpus: Path):
    write(corpus, "repost.txt", REPOST)
    r = IndexWriter("index", model="test-hash").sync([corpus])
    assert [(n.source, n.similar_to) for n in r.near_duplicates] == [("docs/repost.txt", "docs/article.txt")]
    assert 0.8 <= r.near_duplicates[0].jaccard < 1.0
    assert r.info.documents == 4
    st = index_status("index")
    assert [(n.source, n.similar_to) for n in st.near_duplicates] == [("docs/repost.txt", "docs/article.txt")]
    write(corpus, "other.txt", "装备制造业增长7.4%。" + "这是一篇完全不同的文章，讲的是天气和交通。" * 3)
    assert len(IndexWriter("index").sync([corpus]).near_duplicates) == 1


class OtherModel(HashEmbedder):
    def __init__(self) -> None:
        super().__init__(dimension=32)
        self.name = "other-model"


def test_model_and_chunking_mismatch_refused_unless_full(corpus: Path):
    IndexWriter("index", model="test-hash").sync([corpus])
    new = write(Path("more"), "n.txt", "Another document about trains.")
    with pytest.raises(IndexIncompatibleError, match="model 'test-hash', not 'other-model'.*rebuild needed"):
        IndexWriter("index", embedder=OtherModel()).add([new])
    with pytest.raises(IndexIncompatibleError, match="dimension 64, not 16: rebuild needed"):
        IndexWriter("index", embedder=HashEmbedder(dimension=16)).sync([corpus], refuse_mismatch=True)
    with pytest.raises(IndexIncompatibleError, match="chunk_chars=300.*rebuild needed"):
        IndexWriter("index", settings=IndexSettings(chunk_chars=120)).add([new])
    r = IndexWriter("index", embedder=OtherModel()).add([new], full=True)
    assert r.full and r.info.model == "other-model" and r.info.dimension == 32 and r.info.documents == 4
    r = IndexWriter("index", embedder=HashEmbedder()).sync([corpus])  # build: rebuilds in full, says why
    assert r.full and any("rebuilding in full" in w for w in r.warnings)
    assert rag.load("index").manifest.model == "test-hash"


def test_other_format_version_refused_by_add_rebuilt_by_build(corpus: Path):
    from rag.index.manifest import manifest_digest as _digest

    IndexWriter("index", model="test-hash").sync([corpus])
    mpath = current_version(Path("index")) / "manifest.json"
    data = json.loads(mpath.read_text(encoding="utf-8"))
    data["format_version"] = 99
    data["digest"] = _digest(data)
    mpath.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(IndexIncompatibleError, match="format 99.*rebuild needed"):
        IndexWriter("index").add([corpus / "article.txt"])
    with pytest.raises(IndexIncompatibleError, match="rebuild needed"):
        rag.load("index")
    r = IndexWriter("index", model="test-hash").sync([corpus])
    assert r.full and any("cannot be used" in w for w in r.warnings)
    assert rag.load("index").ask("When was the old bridge built?").span == "1890"


def test_corrupt_index_refused_by_add(corpus: Path):
    IndexWriter("index", model="test-hash").sync([corpus])
    (current_version(Path("index")) / "chunks.jsonl").write_text("garbage\n", encoding="utf-8")
    with pytest.raises(IndexCorruptError, match="checksum mismatch.*rag build --full"):
        IndexWriter("index").add([corpus / "article.txt"])


def test_changed_cleaning_code_recleans_without_reembedding(corpus: Path, monkeypatch):
    import rag.index.writer

    IndexWriter("index", model="test-hash").sync([corpus])
    monkeypatch.setattr(rag.index.writer, "pipeline_fingerprint", lambda: "another-version")
    r = IndexWriter("index").sync([corpus])
    assert r.published and r.embedded_chunks == 0 and r.unchanged == ("docs/article.txt", "docs/bridge.txt", "docs/library.md")
    assert rag.load("index").manifest.fingerprint == "another-version"
    r = IndexWriter("index").remove(["docs/bridge.txt"])
    assert r.embedded_chunks == 0


def test_settings_default_to_the_index(corpus: Path):
    IndexWriter("index", model="test-hash", settings=IndexSettings(chunk_chars=120, chunk_overlap=20)).sync([corpus])
    r = IndexWriter("index").add([write(Path("more"), "n.txt", "Another document about trains.")])
    assert not r.full and rag.load("index").settings.index.chunk_chars == 120


def test_build_from_texts_is_incremental(tmp_path: Path):
    items = [("a", "The bridge was built in 1890 by engineers."), ("b", "Cats sleep a lot.")]
    writer = rag.IndexWriter(tmp_path / "i", model="test-hash")
    writer.add_texts(items, replace_all=True)
    v1 = load_index(tmp_path / "i")
    info = writer.add_texts(items + [("c", "Dogs bark at night.")], replace_all=True).info
    assert info.documents == 3
    v2 = load_index(tmp_path / "i")
    assert np.array_equal(v1.vectors, v2.vectors[:2])


# ---------------------------------------------------------------- CLI


def run(capsys, *argv):
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_cli_add_remove_status_and_full(capsys, corpus: Path):
    code, out, _ = run(capsys, "build", "docs", "--model", "test-hash")
    assert code == 0 and "indexed 3 document(s)" in out and "3 added" in out
    code, out, _ = run(capsys, "build", "docs")
    assert code == 0 and "up to date" in out
    write(Path("more"), "museum.txt", "The museum opens at 10 am on Sundays.")
    shutil.copy(corpus / "bridge.txt", Path("more") / "bridge-again.txt")
    code, out, err = run(capsys, "add", "more")
    assert code == 0 and "1 added" not in out and "2 added" in out and "1 chunk(s) embedded" in out
    assert "duplicate: more/bridge-again.txt has the same content as docs/bridge.txt" in err
    code, out, _ = run(capsys, "status", "docs", "more")
    assert code == 0 and "3 document(s)" not in out and "4 document(s)" in out and "up to date" in out
    assert "duplicate: more/bridge-again.txt = docs/bridge.txt" in out
    code, out, err = run(capsys, "remove", "more/museum.txt", "nope.txt")
    assert code == 0 and "removed 1 document(s)" in out and "not removed: nope.txt: not in the index" in err
    code, out, _ = run(capsys, "status", "docs", "--json")
    data = json.loads(out)
    assert data["exists"] and data["removed"] == ["more/bridge-again.txt"] and data["model"] == "test-hash"
    code, out, _ = run(capsys, "build", "docs", "--full", "--json")
    data = json.loads(out)
    assert data["full"] and data["embedded_chunks"] == data["info"]["chunks"] and data["removed"] == ["more/bridge-again.txt"]
    code, out, _ = run(capsys, "status", "--verify")
    assert code == 0 and "test-hash" in out


@pytest.mark.parametrize(
    "argv,message",
    [
        (["remove", "x.txt", "--index", "missing"], "no index"),
        (["add", "docs", "--model", "other-model"], "rebuild needed"),
        (["remove", "nothing.txt"], "nothing.txt: not in the index"),
    ],
)
def test_cli_errors_are_one_line(capsys, corpus: Path, argv, message):
    run(capsys, "build", "docs", "--model", "test-hash")
    code, out, err = run(capsys, *argv)
    assert code == 1
    last = err.strip().splitlines()[-1]
    assert last.startswith("error: ") and message in last and "Traceback" not in err


def test_cli_status_without_index(capsys, tmp_path: Path):
    code, out, _ = run(capsys, "status", "--index", str(tmp_path / "none"))
    assert code == 1 and "no usable index" in out


class AtPrecision(HashEmbedder):
    """A model whose vectors come from a given arithmetic (a stand-in for the real encoder)."""

    def __init__(self, precision: str) -> None:
        super().__init__(dimension=32)
        self.name = "other-model"
        self.precision = precision


def test_precision_is_part_of_the_index(corpus: Path, monkeypatch):
    monkeypatch.delenv("RAG_PRECISION", raising=False)
    IndexWriter("index", embedder=AtPrecision("bf16")).sync([corpus])
    assert load_index(Path("index")).manifest.precision == "bf16"
    st = index_status("index")
    assert st.precision == "bf16" and st.preferred_precision in ("bf16", "float32")
    new = write(Path("more"), "n.txt", "Another document about trains.")
    # new vectors never mix with vectors of another arithmetic
    with pytest.raises(IndexIncompatibleError, match="precision bf16, not float32.*rebuild needed"):
        IndexWriter("index", embedder=AtPrecision("float32")).add([new])
    with pytest.raises(IndexIncompatibleError, match="computed in bf16.*float32: rebuild needed"):
        rag.load("index", embedder=AtPrecision("float32"))
    assert rag.load("index", embedder=AtPrecision("bf16")).manifest.precision == "bf16"
    r = IndexWriter("index", embedder=AtPrecision("float32")).sync([corpus])  # build: rebuilds in full
    assert r.full and any("precision bf16, not float32" in w for w in r.warnings)
    assert load_index(Path("index")).manifest.precision == "float32"


def test_manifests_from_before_the_record_keep_their_arithmetic():
    from rag.index.manifest import Manifest, legacy_precision

    assert legacy_precision("multilingual-e5-small") == "int8"  # built on the int8 fast path
    assert legacy_precision("all-MiniLM-L6-v2") == legacy_precision("test-hash") == "float32"
    old = {"format_version": 1, "model": "multilingual-e5-small", "dimension": 384, "documents": [], "chunks": 0,
           "files": {}}
    assert Manifest.from_json(old).precision == "int8"
    assert Manifest.from_json({**old, "precision": "bf16"}).precision == "bf16"


def test_cli_precision_flag_and_status(capsys, corpus: Path, monkeypatch):
    monkeypatch.delenv("RAG_PRECISION", raising=False)
    assert main(["build", "docs", "--model", "test-hash", "--precision", "float32"]) == 0
    capsys.readouterr()
    assert main(["status"]) == 0
    assert "model test-hash in float32" in capsys.readouterr().out
    with pytest.raises(SystemExit):  # argparse refuses it
        main(["build", "docs", "--precision", "fp8"])
    assert "invalid choice: 'fp8'" in capsys.readouterr().err
