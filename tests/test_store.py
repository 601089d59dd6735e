import json
import shutil
from pathlib import Path

import pytest

import rag
from rag.errors import IndexCorruptError, IndexIncompatibleError, IndexNotFoundError, NoDocumentsError
from rag.index.store import FORMAT_VERSION, POINTER, current_version


def test_manifest_is_self_describing(hash_index: Path):
    version = current_version(hash_index)
    m = json.loads((version / "manifest.json").read_text(encoding="utf-8"))
    assert m["format_version"] == FORMAT_VERSION == 3 and m["model"] == "test-hash" and m["dimension"] == 64
    assert m["chunks"] > 0 and m["settings"]["chunk_chars"] > 0
    assert {d["source"].split("/")[-1] for d in m["documents"]} == {"000_7acc4ff99040d81b.txt", "note.md"}
    assert all(len(d["sha256"]) == 64 for d in m["documents"])
    assert set(m["files"]) >= {"vectors.faiss", "chunks.jsonl", "documents.jsonl"}
    assert "faiss-cpu" in m["versions"] and "numpy" in m["versions"]


def test_no_pickle_on_disk(hash_index: Path):
    for p in hash_index.rglob("*"):
        assert p.suffix not in {".pkl", ".pickle", ".joblib"}
        if p.suffix == ".npy":
            assert b"pickle" not in p.read_bytes()[:200]


@pytest.fixture()
def index_copy(hash_index: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "index"
    shutil.copytree(hash_index, dst)
    return dst


def test_truncated_faiss_refused(index_copy: Path):
    f = current_version(index_copy) / "vectors.faiss"
    f.write_bytes(f.read_bytes()[:100])
    with pytest.raises(IndexCorruptError, match="vectors.faiss"):
        rag.load(index_copy)


def test_flipped_byte_in_chunk_store_refused(index_copy: Path):
    f = current_version(index_copy) / "chunks.jsonl"
    data = bytearray(f.read_bytes())
    data[10] ^= 0x01
    f.write_bytes(bytes(data))
    with pytest.raises(IndexCorruptError, match="checksum"):
        rag.load(index_copy)


def test_missing_manifest_refused(index_copy: Path):
    (current_version(index_copy) / "manifest.json").unlink()
    with pytest.raises(IndexCorruptError, match="manifest"):
        rag.load(index_copy)


def test_missing_index(tmp_path: Path):
    with pytest.raises(IndexNotFoundError, match="no index"):
        rag.load(tmp_path / "nothing")


def test_other_model_refused(hash_index: Path):
    with pytest.raises(IndexIncompatibleError, match="rebuild needed"):
        rag.load(hash_index, model="all-MiniLM-L6-v2")


def test_empty_build_keeps_working_index(index_copy: Path, tmp_path: Path):
    before = (index_copy / POINTER).read_text()
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "blank.txt").write_text("   \n", encoding="utf-8")
    with pytest.raises(NoDocumentsError):
        rag.build_index([empty], index_dir=index_copy, model="test-hash")
    assert (index_copy / POINTER).read_text() == before
    assert rag.load(index_copy).ask("前三季度规模以上工业增加值同比增长多少？").found


def test_rebuild_publishes_new_version_and_keeps_one_previous(index_copy: Path, seed_path: Path):
    for _ in range(3):
        rag.build_index([seed_path], index_dir=index_copy, model="test-hash")
    versions = [p for p in index_copy.glob("v-*") if p.is_dir()]
    assert len(versions) == 2
    assert current_version(index_copy) in versions


def test_new_files_are_checksummed_and_pickle_free(hash_index: Path):
    import numpy as np

    version = current_version(hash_index)
    m = json.loads((version / "manifest.json").read_text(encoding="utf-8"))
    assert {"signatures.npy", "terms.npy", "term_offsets.npy", "vocabulary.json"} <= set(m["files"]) and len(m["digest"]) == 64
    sigs = np.load(version / "signatures.npy", allow_pickle=False)
    assert sigs.dtype == np.uint64 and sigs.shape[0] == len([d for d in m["documents"] if not d.get("duplicate_of")])
    row = json.loads((version / "chunks.jsonl").read_text(encoding="utf-8").splitlines()[0])
    assert row[0] == 0 and 0.0 <= row[5] <= 1.0  # id, source, start, end, text, visibility


def test_edited_manifest_refused(index_copy: Path):
    m = current_version(index_copy) / "manifest.json"
    m.write_text(m.read_text(encoding="utf-8").replace('"model": "test-hash"', '"model": "test-hashx"'), encoding="utf-8")
    with pytest.raises(IndexCorruptError, match="manifest checksum mismatch"):
        rag.load(index_copy)


def test_corrupt_current_falls_back_to_previous_version(index_copy: Path, seed_path: Path):
    from rag.index.store import load_index

    old = current_version(index_copy)
    rag.build_index([seed_path], index_dir=index_copy, model="test-hash")
    new = current_version(index_copy)
    assert new != old and new.name > old.name
    f = new / "vectors.faiss"
    f.write_bytes(f.read_bytes()[:100])
    stored = load_index(index_copy)
    assert stored.path == old and stored.warning is not None
    assert "vectors.faiss: checksum mismatch" in stored.warning.message and stored.warning.loaded == str(old)
    qa = rag.load(index_copy)
    assert qa.version_path == old and "note.md" in " ".join(qa.sources())  # the old version had the note
    with pytest.raises(IndexCorruptError, match="vectors.faiss"):
        load_index(index_copy, fallback=False)
