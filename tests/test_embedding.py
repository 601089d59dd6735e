import numpy as np
import pytest

from rag.embedding import DEFAULT_MODEL, HashEmbedder, canonical_name, load_embedder
from rag.errors import ModelError


def test_hash_embedder_is_deterministic_and_normalised():
    e = HashEmbedder()
    a = e.encode(["前三季度增长", "hello"], kind="passage")
    b = e.encode(["前三季度增长", "hello"], kind="query")
    assert a.shape == (2, e.dimension) and a.dtype == np.float32
    np.testing.assert_allclose(a, b)
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1.0, rtol=1e-5)


def test_hash_embedder_matches_traditional_and_simplified():
    e = HashEmbedder()
    a, b = e.encode(["國家技術", "国家技术"], kind="passage")
    assert float(a @ b) == pytest.approx(1.0)


def test_canonical_names():
    assert canonical_name(None) == DEFAULT_MODEL
    assert canonical_name("sentence-transformers/all-MiniLM-L6-v2") == "all-MiniLM-L6-v2"
    assert canonical_name("intfloat/multilingual-e5-small") == "multilingual-e5-small"
    assert canonical_name("/some/path") == "/some/path"


def test_unknown_model_is_a_clear_error(tmp_path):
    with pytest.raises(ModelError, match="cannot load embedding model"):
        load_embedder(str(tmp_path / "no-such-model"))
