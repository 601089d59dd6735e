"""The dense index: exact below ``ann_min_chunks``, IVF or the 8-bit scan with exact rescoring
above it with its recall measured and recorded, the same answers through a stored and loaded
index."""

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


def unclustered(n: int, d: int = 64, seed: int = 0) -> np.ndarray:
    """Points spread evenly over the sphere: no clusters for IVF to use (the 100k benchmark's
    vectors behave so)."""
    x = np.random.default_rng(seed).normal(size=(n, d))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def test_without_clusters_the_8bit_scan_with_exact_rescoring_is_chosen() -> None:
    import faiss

    x = unclustered(6000)
    index, record = vectors.build(x, 64, IndexSettings(ann_min_chunks=5000))
    assert record is not None and record.kind == "sq8-refine", record
    assert record.recall_at_10 >= 0.99 and record.k_factor in {2 * f for f in vectors.K_FACTORS}
    assert record.nlist == 0 and record.nprobe == 0
    exact = faiss.IndexFlatIP(64)
    exact.add(x)
    queries = unclustered(200, seed=9)
    want, _ = exact.search(queries, 10)
    got, _ = index.search(queries, 10)
    # held-out points find the exact top 10 by score, and the scores given are exact ones
    assert np.mean(got >= want[:, -1:] - vectors.SCORE_TIE) >= 0.99
    assert np.allclose(got[:, 0], want[:, 0], atol=1e-5)


def test_ivf_probing_most_of_its_lists_is_not_kept() -> None:
    """IVF reaching the recall only by probing more than IVF_MAX_SHARE of its lists scans
    more than the 8-bit scan would: the writer does not keep it."""
    x = unclustered(6000)
    nlist = vectors.lists_for(len(x))
    sample = np.arange(50)
    bar = [-np.inf] * len(sample)  # any answer reaches this bar: only the share rule decides
    found = vectors._ivf(x, 64, IndexSettings(ann_min_chunks=5000), x[sample], sample, bar)
    assert found is not None and found[1].nprobe <= vectors.IVF_MAX_SHARE * nlist
    strict = [float(s) for s in vectors._exact_top(x, x[sample], 11)[0][:, -1]]
    assert vectors._ivf(x, 64, IndexSettings(ann_min_chunks=5000), x[sample], sample, strict) is None


def test_the_record_round_trips_through_the_manifest() -> None:
    for record in (vectors.AnnRecord("ivf-flat", 120, 16, 0.9933, 300),
                   vectors.AnnRecord("sq8-refine", 0, 0, 1.0, 300, 4)):
        assert vectors.AnnRecord.from_json(json.loads(json.dumps(record.to_json()))) == record
    assert vectors.AnnRecord.from_json(None) is None
    # manifests written before the 8-bit scan have no k_factor
    old = {"kind": "ivf-flat", "nlist": 120, "nprobe": 16, "recall_at_10": 0.99, "sample": 300}
    assert vectors.AnnRecord.from_json(old) == vectors.AnnRecord("ivf-flat", 120, 16, 0.99, 300, 0)


def sixty_documents(docs: Path) -> Path:
    """60 small documents: over 100 chunks, enough for an approximate index at ``ann_min_chunks=100``."""
    docs.mkdir()
    for i in range(60):
        (docs / f"d{i:02d}.txt").write_text(
            "。".join(f"第{i}号文件的第{j}句话讲述了编号{i * 100 + j}的项目进展情况" for j in range(12)) + "。",
            encoding="utf-8")
    return docs


def test_a_stored_ivf_index_loads_searches_and_gives_its_vectors_back(tmp_path: Path, monkeypatch) -> None:
    docs = sixty_documents(tmp_path / "docs")
    settings = IndexSettings(ann_min_chunks=100)
    monkeypatch.setattr(vectors, "IVF_MAX_SHARE", 1.0)  # a few lists here: let IVF probe them all
    exact_dir, ann_dir = tmp_path / "exact", tmp_path / "ann"
    rag.build_index(docs, exact_dir, model="test-hash")
    info = rag.build_index(docs, ann_dir, model="test-hash", settings=settings)
    assert info.chunks >= 100
    manifest = Manifest.from_json(json.loads((current_version(ann_dir) / "manifest.json").read_text(encoding="utf-8")))
    assert manifest.ann is not None and manifest.ann.kind == "ivf-flat" and manifest.ann.recall_at_10 >= 0.99
    exact, ann = load_index(exact_dir), load_index(ann_dir)
    assert np.allclose(exact.vectors, ann.vectors)  # read back from the IVF index, row i is chunk i
    assert ann.faiss_index.nprobe == manifest.ann.nprobe
    qa = rag.load(ann_dir)
    hits = qa.search("第7号文件的第3句话", k=5, mode="dense")
    assert hits and all(0 <= h.chunk_id < info.chunks for h in hits)


def test_a_stored_8bit_index_loads_with_its_factor_and_gives_its_vectors_back(tmp_path: Path, monkeypatch) -> None:
    """The same round trip through the writer and the loader for the 8-bit scan: vectors read
    back exactly (the rescoring index keeps them whole), the factor applied from the manifest."""
    docs = sixty_documents(tmp_path / "docs")
    monkeypatch.setattr(vectors, "_ivf", lambda *a, **k: None)  # as on a corpus without clusters
    exact_dir, ann_dir = tmp_path / "exact", tmp_path / "ann"
    rag.build_index(docs, exact_dir, model="test-hash")
    rag.build_index(docs, ann_dir, model="test-hash", settings=IndexSettings(ann_min_chunks=100))
    manifest = Manifest.from_json(json.loads((current_version(ann_dir) / "manifest.json").read_text(encoding="utf-8")))
    assert manifest.ann is not None and manifest.ann.kind == "sq8-refine"
    exact, ann = load_index(exact_dir), load_index(ann_dir)
    assert type(ann.faiss_index).__name__ == "IndexRefineFlat"
    assert ann.faiss_index.k_factor == manifest.ann.k_factor
    assert np.array_equal(exact.vectors, ann.vectors)
    for question in ("第7号文件的第3句话", "编号4205的项目"):
        want = [h.chunk_id for h in rag.load(exact_dir).search(question, k=5, mode="dense")]
        assert [h.chunk_id for h in rag.load(ann_dir).search(question, k=5, mode="dense")] == want


@pytest.mark.parametrize("n", [0, 1])
def test_tiny_inputs(n: int) -> None:
    index, record = vectors.build(clustered(max(n, 1))[:n], 64, IndexSettings(ann_min_chunks=1))
    assert index.ntotal == n and (record is None or record.nlist >= 1)
