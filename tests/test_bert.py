"""rag.encoder.bert: the plain-torch BERT computes what transformers' BertModel computes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from rag.encoder.bert import BertModel, BertShape, from_transformers
from rag.errors import ModelError


@pytest.fixture(scope="module")
def tiny_hf(tmp_path_factory: pytest.TempPathFactory) -> tuple[object, Path]:
    from transformers import BertConfig
    from transformers import BertModel as HFBert

    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=60, hidden_size=32, num_hidden_layers=3, num_attention_heads=4,
                     intermediate_size=64, max_position_embeddings=40, pad_token_id=1)
    model = HFBert(cfg).eval()
    folder = tmp_path_factory.mktemp("tiny-bert")
    model.save_pretrained(folder, safe_serialization=True)
    return model, folder


def test_hidden_states_match_transformers(tiny_hf) -> None:
    hf, folder = tiny_hf
    ours = BertModel.load(folder)
    ids = torch.tensor([[0, 5, 9, 17, 2, 1, 1], [0, 33, 2, 1, 1, 1, 1]])
    mask = (ids != 1).long()
    with torch.no_grad():
        want = hf(ids, attention_mask=mask, output_hidden_states=True).hidden_states
        last = ours(ids, mask)
        first = ours(ids, mask, upto=1)
    m = mask.bool()
    assert (want[-1] - last)[m].abs().max() < 1e-5
    assert (want[1] - first)[m].abs().max() < 1e-5


def test_load_builds_no_random_weights_and_has_no_pooler(tiny_hf) -> None:
    _, folder = tiny_hf
    ours = BertModel.load(folder)
    assert not any(p.is_meta for p in ours.parameters())
    assert not any(k.startswith("pooler") for k in ours.state_dict())


def test_renaming_maps_every_layer_tensor() -> None:
    state = {"encoder.layer.3.attention.self.query.weight": torch.zeros(1),
             "encoder.layer.3.output.LayerNorm.bias": torch.zeros(1),
             "embeddings.position_ids": torch.zeros(1),
             "pooler.dense.weight": torch.zeros(1)}
    assert set(from_transformers(state)) == {"layers.3.query.weight", "layers.3.out_norm.bias"}


@pytest.mark.parametrize("change", [{"model_type": "roberta"}, {"hidden_act": "relu"},
                                    {"position_embedding_type": "relative_key"}])
def test_other_architectures_are_refused(tiny_hf, change: dict) -> None:
    _, folder = tiny_hf
    cfg = json.loads((folder / "config.json").read_text()) | change
    with pytest.raises(ValueError) as info:  # a ValueError, as before it was typed
        BertShape.from_config(cfg)
    assert isinstance(info.value, ModelError)
