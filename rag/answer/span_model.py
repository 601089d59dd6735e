"""The trainable part of the span reader: the top encoder layers plus a start/end head.

The reader runs the multilingual encoder's lower layers unchanged (``FROZEN_LAYERS`` of them,
the same weights the retriever uses) and then its own fine-tuned copies of the remaining
layers followed by a linear start/end classifier. Only this module's weights are trained
and shipped, in safetensors (no pickle). The layers are plain BERT layers written out in
:mod:`rag.encoder.bert` so that training and inference share one definition, independent of
transformers' internals.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import torch
from torch import nn

from rag.encoder.bert import HF_LAYER_NAMES, BertLayer, additive_mask

FROZEN_LAYERS = 8


@dataclass(frozen=True)
class SpanModelConfig:
    """Shape of the trainable head; recorded in the shipped model card."""

    hidden_size: int = 384
    heads: int = 12
    intermediate_size: int = 1536
    layers: int = 4
    first_layer: int = FROZEN_LAYERS
    layer_norm_eps: float = 1e-12
    dropout: float = 0.1

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "SpanModelConfig":
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


class SpanHead(nn.Module):
    """Top encoder layers + start/end logits over hidden states of the frozen lower layers."""

    def __init__(self, cfg: SpanModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.layers = nn.ModuleList(BertLayer(cfg) for _ in range(cfg.layers))
        self.qa = nn.Linear(cfg.hidden_size, 2)

    def forward(self, hidden: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return (start_logits, end_logits), each ``[batch, tokens]``; padding gets -inf-ish."""
        additive = additive_mask(attention_mask, hidden.dtype)
        x = hidden
        for layer in self.layers:
            x = layer(x, additive)
        logits = self.qa(x)
        pad = attention_mask == 0
        start = logits[..., 0].masked_fill(pad, -1e4)
        end = logits[..., 1].masked_fill(pad, -1e4)
        return start, end

    def init_from_encoder(self, encoder_state: Mapping[str, torch.Tensor], prefix: str = "encoder.layer.") -> None:
        """Copy the encoder's own top layers in as the starting point for fine-tuning."""
        own = self.state_dict()
        for i in range(self.cfg.layers):
            src = f"{prefix}{self.cfg.first_layer + i}."
            for hf_name, name in HF_LAYER_NAMES.items():
                for kind in ("weight", "bias"):
                    own[f"layers.{i}.{name}.{kind}"] = encoder_state[f"{src}{hf_name}.{kind}"].detach().clone()
        self.load_state_dict(own)
