"""The dense index: exact below ``ann_min_chunks``, IVF above it with its recall measured and
recorded, the same answers through a stored and loaded index."""

import json
from pathlib import Path

import numpy as np
import pytest

import rag
from rag.index import vectors
from rag.index.manifest import Manifest
from rag.index.store import current_version, load_index
from rag.settings import IndexSettings


def clustered(n: int, d: int = 64, seed: int = 0) -> np.ndarray:
    """Points around 40 fixed centres (the same for every ``seed``; ``seed`` draws the points)."""
    centres = np.random.default_rng(0).normal(size=(40, d))
    rng = np.random.default_rng(seed + 1)
    x = centres[rng.integers(0, len(centres), n)] + 0.5 * rng.normal(size=(n, d))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def test_small_collections_are_scanned_exactly() -> None:
    x = clustered(500)
    index, record = vectors.build(x, 64, IndexSettings())
    assert record is None and type(index).__name__ == "IndexFlatIP" and index.ntotal == 500


def test_large_collections_get_an_ivf_index_at_the_recall_asked() -> None:
    x = clustered(6000)
    index, record = vectors.build(x, 64, IndexSettings(ann_min_chunks=5000))
    assert record is not None and record.kind == "ivf-flat"
    assert record.recall_at_10 >= 0.99 and record.nlist == vectors.lists_for(6000) and record.sample == vectors.RECALL_SAMPLE
    # the recall recorded is what a search of held-out points gets too
    import faiss

    exact = faiss.IndexFlatIP(64)
    exact.add(x)
    queries = clustered(200, seed=7)
    _, want = exact.search(queries, 10)
    _, got = index.search(queries, 10)
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(want.tolist(), got.tolist())])
    assert recall >= 0.97


def test_repeated_rows_do_not_defeat_the_recall_measure() -> None:
    """A collection where most rows have exact copies (boilerplate, the synthetic benchmark
    corpus): which copy a search returns is arbitrary, so recall is counted by score, and the
    IVF index is still chosen; counted by id, the same searches miss copies."""
    base = clustered(2000)
    x = np.concatenate([base, base, base])  # every vector three times
    index, record = vectors.build(x, 64, IndexSettings(ann_min_chunks=5000))
    assert record is not None and record.recall_at_10 >= 0.99
    scores, _ = index.search(base[:50], 10)
    import faiss

    exact = faiss.IndexFlatIP(64)
    exact.add(x)
    want, _ = exact.search(base[:50], 10)
    assert np.all(scores[:, -1] >= want[:, -1] - vectors.SCORE_TIE)


def test_the_exact_top_by_blocks_is_faiss_exact_top() -> None:
    import faiss

    x, q = clustered(3000), clustered(40, seed=3)
    exact = faiss.IndexFlatIP(64)
    exact.add(x)
    want_scores, want_ids = exact.search(q, 11)
    scores, ids = vectors._exact_top(x, q, 11, block=700)
    assert np.allclose(scores, want_scores, atol=1e-5)
    assert np.mean(ids == want_ids) > 0.99  # equal up to near-ties


def test_an_unreachable_recall_keeps_the_exact_scan() -> None:
    x = clustered(6000)
    index, record = vectors.build(x, 64, IndexSettings(ann_min_chunks=5000, ann_recall=1.01))
    assert record is None and type(index).__name__ == "IndexFlatIP"


def test_the_record_round_trips_through_the_manifest() -> None:
    record = vectors.AnnRecord("ivf-flat", 120, 16, 0.9933, 300)
    assert vectors.AnnRecord.from_json(json.loads(json.dumps(record.to_json()))) == record
    assert vectors.AnnRecord.from_json(None) is None


def test_a_stored_ivf_index_loads_searches_and_gives_its_vectors_back(tmp_path: Path, monkeypatch) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    for i in range(60):
        (docs / f"d{i:02d}.txt").write_text(
            "。".join(f"第{i}号文件的第{j}句话讲述了编号{i * 100 + j}的项目进展情况" for j in range(12)) + "。",
            encoding="utf-8")
    settings = IndexSettings(ann_min_chunks=100)
    exact_dir, ann_dir = tmp_path / "exact", tmp_path / "ann"
    rag.build_index(docs, exact_dir, model="test-hash")
    info = rag.build_index(docs, ann_dir, model="test-hash", settings=settings)
    assert info.chunks >= 100
    manifest = Manifest.from_json(json.loads((current_version(ann_dir) / "manifest.json").read_text(encoding="utf-8")))
    assert manifest.ann is not None and manifest.ann.recall_at_10 >= 0.99
    exact, ann = load_index(exact_dir), load_index(ann_dir)
    assert np.allclose(exact.vectors, ann.vectors)  # read back from the IVF index, row i is chunk i
    assert ann.faiss_index.nprobe == manifest.ann.nprobe
    qa = rag.load(ann_dir)
    hits = qa.search("第7号文件的第3句话", k=5, mode="dense")
    assert hits and all(0 <= h.chunk_id < info.chunks for h in hits)


@pytest.mark.parametrize("n", [0, 1])
def test_tiny_inputs(n: int) -> None:
    index, record = vectors.build(clustered(max(n, 1))[:n], 64, IndexSettings(ann_min_chunks=1))
    assert index.ntotal == n and (record is None or record.nlist >= 1)
