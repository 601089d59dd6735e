"""rag.encoder.e5_runtime.E5Tokenizer: the transformers-style calls rag makes, on a tiny tokenizer."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rag.encoder.e5_runtime import E5Tokenizer
from rag.errors import ModelError


def _tokenizer_json(path: Path, specials: bool = True) -> Path:
    from tokenizers import Tokenizer, models, pre_tokenizers, processors

    vocab = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3, "hello": 4, "world": 5, "again": 6}
    if not specials:
        vocab = {"<unk>": 0, "hello": 1}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    if specials:
        tok.post_processor = processors.TemplateProcessing(single="<s> $A </s>", special_tokens=[("<s>", 0), ("</s>", 2)])
    tok.save(str(path))
    return path


@pytest.fixture()
def tok(tmp_path: Path) -> E5Tokenizer:
    return E5Tokenizer(_tokenizer_json(tmp_path / "tokenizer.json"), max_length=4)


def test_ids_offsets_and_special_tokens(tok: E5Tokenizer) -> None:
    enc = tok("hello world zzz", add_special_tokens=False, return_offsets_mapping=True)
    assert enc["input_ids"] == [4, 5, 3]
    assert enc["offset_mapping"] == [(0, 5), (6, 11), (12, 15)]
    assert tok("hello")["input_ids"] == [0, 4, 2]
    assert (tok.cls_token_id, tok.sep_token_id, tok.pad_token_id, tok.unk_token_id) == (0, 2, 1, 3)


def test_truncation_keeps_the_closing_token(tok: E5Tokenizer) -> None:
    assert tok("hello world again hello", truncation=True)["input_ids"] == [0, 4, 5, 2]
    assert tok("hello world again", add_special_tokens=False, truncation=True, max_length=2)["input_ids"] == [4, 5]
    assert tok(["hello", "world again"])["input_ids"] == [[0, 4, 2], [0, 5, 6, 2]]


def test_batch_pads_and_masks(tok: E5Tokenizer) -> None:
    ids, mask = tok.batch(["hello", "hello world again"])
    assert ids.tolist() == [[0, 4, 2, 1], [0, 4, 5, 2]]
    assert mask.tolist() == [[1, 1, 1, 0], [1, 1, 1, 1]]
    assert ids.dtype == np.int64


def test_missing_special_tokens_are_a_model_error(tmp_path: Path) -> None:
    path = _tokenizer_json(tmp_path / "tokenizer.json", specials=False)
    with pytest.raises(ModelError, match="special tokens"):
        E5Tokenizer(path)


# --------------------------------------------------------------------------- weights checked on load


@pytest.fixture()
def tiny_model(tmp_path: Path) -> Path:
    from rag.encoder import model_folder
    from test_e5 import write_tiny_e5

    return model_folder.materialize(tmp_path / "cache", source=write_tiny_e5(tmp_path / "tiny-q4.bin").path)


def test_runtime_refuses_same_size_garbage_weights(tiny_model: Path) -> None:
    from rag.encoder.e5_runtime import E5Embedder
    from test_e5 import _garble_weights

    E5Embedder(tiny_model, precision="float32")  # intact: loads
    _garble_weights(tiny_model)
    with pytest.raises(ModelError, match="model.safetensors.*sha256"):
        E5Embedder(tiny_model, precision="float32")


@pytest.mark.parametrize("fast", [True, False], ids=["int8", "float32"])
def test_runtime_non_finite_weights_are_a_model_error(tiny_model: Path, fast: bool) -> None:
    """Today: a RuntimeError from the int8 quantiser, or NaN vectors in float32."""
    from rag.encoder.e5_runtime import E5Embedder
    from test_e5 import _set_weight

    _set_weight(tiny_model, "encoder.layer.1.intermediate.dense.weight", float("inf"), fix_manifest=True)
    with pytest.raises(ModelError, match=r"intermediate\.dense\.weight.*non-finite"):
        E5Embedder(tiny_model, precision="int8" if fast else "float32")


def test_runtime_loads_the_rebuilt_folder_after_tampering(tmp_path: Path) -> None:
    from rag.encoder import model_folder
    from rag.encoder.e5_runtime import E5Embedder
    from test_e5 import _garble_weights, write_tiny_e5

    source = write_tiny_e5(tmp_path / "tiny-q4.bin").path
    path = model_folder.materialize(tmp_path / "cache", source=source)
    before = E5Embedder(path, precision="float32").encode(["ab b"], kind="query")
    _garble_weights(path)
    path = model_folder.materialize(tmp_path / "cache", source=source)
    after = E5Embedder(path, precision="float32").encode(["ab b"], kind="query")
    assert np.array_equal(before, after)
