import numpy as np
import pytest

from rag.index.embedding import HashEmbedder
from rag.errors import QueryError
from rag.index.lexical import BM25Index
from rag.index.retriever import Retriever, dense_gate
from rag.settings import IndexSettings
from rag.types import Chunk

TEXTS = ["工业增加值同比增长5.8%", "科技服务业发展意见", "The library opens at 9 am", "金融支持新型工业化"]


class BlindEmbedder(HashEmbedder):
    """Sees almost nothing: like all-MiniLM-L6-v2 reading Chinese as [UNK]."""

    def visibility(self, texts):
        return np.full(len(texts), 0.2, dtype=np.float32)

    def encode(self, texts, *, kind, progress=False):
        rng = np.random.default_rng(0)
        v = rng.normal(size=(len(texts), self.dimension)).astype(np.float32)
        return v / np.linalg.norm(v, axis=1, keepdims=True)


def make(embedder, visibility=1.0):
    import faiss

    chunks = tuple(Chunk(i, f"d{i}", 0, len(t), t) for i, t in enumerate(TEXTS))
    vecs = embedder.encode(TEXTS, kind="passage")
    index = faiss.IndexFlatIP(embedder.dimension)
    index.add(vecs)
    return Retriever(chunks, vecs, index, BM25Index.fit(TEXTS), embedder, IndexSettings(), visibility)


@pytest.mark.parametrize("mode", ["hybrid", "bm25", "dense"])
def test_modes_find_the_right_chunk(mode):
    r = make(HashEmbedder())
    hits = r.search("工業增加值增長多少", k=2, mode=mode)
    assert hits[0].source == "d0"
    assert [h.rank for h in hits] == [1, 2]


def test_gate():
    s = IndexSettings(visibility_floor=0.8, visibility_full=0.9)
    assert dense_gate(0.5, s) == 0.0 and dense_gate(0.95, s) == 1.0
    assert 0 < dense_gate(0.85, s) < 1


def test_blind_model_never_drags_hybrid_below_bm25():
    r = make(BlindEmbedder(), visibility=0.2)
    for q in ["工业增加值", "科技服务业", "金融支持工业化"]:
        assert [h.chunk_id for h in r.search(q, k=3, mode="hybrid")] == [h.chunk_id for h in r.search(q, k=3, mode="bm25")]


def test_bad_arguments():
    r = make(HashEmbedder())
    with pytest.raises(QueryError):
        r.search("x", mode="fuzzy")
    with pytest.raises(QueryError):
        r.search("x", k=0)
    with pytest.raises(QueryError):
        r.search("   ")
