"""A BERT encoder written out in plain torch, loaded from a transformers ``BertModel`` folder.

Used for the packaged multilingual-e5-small at query time and by the span reader: importing
sentence-transformers (transformers' model zoo, scikit-learn, ...) costs several seconds on
every start, while this module needs only torch and safetensors. The arithmetic is BERT's:
post-LayerNorm layers, erf GELU, absolute positions from 0, token type 0. Parameter names
follow transformers' (``embeddings.*``; ``encoder.layer.N.<name>`` maps to ``layers.N.<ours>``
through :data:`HF_LAYER_NAMES`), so the same safetensors file loads into both.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Protocol

import torch
from torch import nn

from rag.errors import ModelConfigError

# transformers name inside ``encoder.layer.N.`` -> our name inside ``layers.N.``
HF_LAYER_NAMES = {
    "attention.self.query": "query",
    "attention.self.key": "key",
    "attention.self.value": "value",
    "attention.output.dense": "attn_out",
    "attention.output.LayerNorm": "attn_norm",
    "intermediate.dense": "intermediate",
    "output.dense": "output",
    "output.LayerNorm": "out_norm",
}

#: The Linear layers run in dynamic int8 on the fast path: the same selection as
#: ``rag.encoder.quantize.quantize_int8`` makes in a transformers model (the FFN output stays float32).
INT8_LAYERS = re.compile(r"layers\.\d+\.(query|key|value|attn_out|intermediate)$")


class CastLinear(nn.Module):
    """A Linear layer whose weight and bias are stored in ``dtype`` (cast once, at load): its
    input is cast to ``dtype`` and its output back to float32, so that layer norms, softmax,
    GELU and the residual sums around it stay in float32.

    Measured on the AMX CPU (``benchmarks/bench_precision.py``, one short query, 1 thread):
    a query's forward pass is bound by reading the weights (M = 16 rows per matmul), and bf16
    weights read once take 13.5 ms against 22.2 ms in float32 and 28.9 ms under bf16 autocast,
    which re-casts the float32 weights on every call; cosine to float32 0.99998 or more.
    """

    def __init__(self, linear: nn.Linear, dtype: torch.dtype) -> None:
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.dtype = dtype
        self.weight = nn.Parameter(linear.weight.detach().to(dtype), requires_grad=False)
        self.bias = nn.Parameter(linear.bias.detach().to(dtype), requires_grad=False) if linear.bias is not None else None
        self._packed = packed_weight(self.weight, self.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(self.dtype)
        if self._packed is not None and not (torch.is_grad_enabled() and x.requires_grad):
            return torch.ops.mkldnn._linear_pointwise(x, self._packed, self.bias, "none", [], "").float()
        return nn.functional.linear(x, self.weight, self.bias).float()


def packed_weight(weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor | None:
    """``weight`` reordered once into oneDNN's blocked layout for bf16 matrix units, or None where
    this torch or CPU cannot (then the plain ``linear`` runs).

    A plain bf16 ``linear`` reorders its weight on every call; for a question (M = 12-16 rows)
    that reorder is most of the call. Measured on the AMX CPU, one thread, ``[1536, 384]``
    weight: 187 against 46 us at 12 rows, 1,147 against 848 us at 512 rows, outputs bit-identical
    (``benchmarks/bench_precision.py`` measures the whole query). The packed copy adds the bf16
    weights once more (42 MB for multilingual-e5-small).
    """
    if weight.dtype != torch.bfloat16 or not torch.backends.mkldnn.is_available():
        return None
    try:
        packed = torch.ops.mkldnn._reorder_linear_weight(weight.detach(), None)
        probe = torch.linspace(-1, 1, 3 * weight.shape[1]).reshape(3, -1).to(weight.dtype)
        with torch.no_grad():
            got = torch.ops.mkldnn._linear_pointwise(probe, packed, bias, "none", [], "")
            want = nn.functional.linear(probe, weight, bias)
    except (RuntimeError, AttributeError, NotImplementedError):
        return None
    return packed if torch.equal(got, want) else None


def cast_linears(model: nn.Module, dtype: torch.dtype) -> int:
    """Store the weights of every ``nn.Linear`` inside ``model`` in ``dtype`` (:class:`CastLinear`),
    in place: this module's :class:`BertModel` and a transformers BERT inside sentence-transformers
    alike, so that index builds and questions compute the same. Embeddings and layer norms keep
    float32. Returns how many layers were cast."""
    found = [(parent, name, child) for parent in model.modules() for name, child in parent.named_children()
             if isinstance(child, nn.Linear)]
    for parent, name, child in found:
        setattr(parent, name, CastLinear(child, dtype))
    return len(found)


class LayerShape(Protocol):
    @property
    def hidden_size(self) -> int: ...
    @property
    def heads(self) -> int: ...
    @property
    def intermediate_size(self) -> int: ...
    @property
    def layer_norm_eps(self) -> float: ...
    @property
    def dropout(self) -> float: ...


@dataclass(frozen=True)
class BertShape:
    """Shape of a whole encoder, read from a transformers ``config.json``."""

    hidden_size: int
    heads: int
    intermediate_size: int
    layers: int
    vocab_size: int
    max_positions: int
    type_vocab_size: int
    layer_norm_eps: float
    pad_token_id: int
    dropout: float = 0.0

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> "BertShape":
        if config.get("model_type") != "bert" or config.get("hidden_act", "gelu") != "gelu" \
                or config.get("position_embedding_type", "absolute") != "absolute":
            raise ModelConfigError("not a plain BERT configuration (model_type bert, gelu, absolute positions)")
        return cls(hidden_size=int(config["hidden_size"]), heads=int(config["num_attention_heads"]),
                   intermediate_size=int(config["intermediate_size"]), layers=int(config["num_hidden_layers"]),
                   vocab_size=int(config["vocab_size"]), max_positions=int(config["max_position_embeddings"]),
                   type_vocab_size=int(config["type_vocab_size"]), layer_norm_eps=float(config["layer_norm_eps"]),
                   pad_token_id=int(config.get("pad_token_id", 0)))


class BertLayer(nn.Module):
    """One post-LayerNorm BERT layer (erf GELU)."""

    def __init__(self, shape: LayerShape, device: str | None = None) -> None:
        super().__init__()
        h = shape.hidden_size
        self.heads = shape.heads
        self.query = nn.Linear(h, h, device=device)
        self.key = nn.Linear(h, h, device=device)
        self.value = nn.Linear(h, h, device=device)
        self.attn_out = nn.Linear(h, h, device=device)
        self.attn_norm = nn.LayerNorm(h, eps=shape.layer_norm_eps, device=device)
        self.intermediate = nn.Linear(h, shape.intermediate_size, device=device)
        self.output = nn.Linear(shape.intermediate_size, h, device=device)
        self.out_norm = nn.LayerNorm(h, eps=shape.layer_norm_eps, device=device)
        self.dropout = nn.Dropout(shape.dropout)

    #: inference with packed bf16 weights takes :meth:`_fused_forward` (switched off only to measure it)
    fused = True

    def forward(self, x: torch.Tensor, additive_mask: torch.Tensor) -> torch.Tensor:
        """``additive_mask``: ``[batch, 1, 1, tokens]``, 0 for tokens, a large negative for padding."""
        if self.fused and not self.training and not torch.is_grad_enabled():
            packed = self._packed_parts()
            if packed is not None:
                return self._fused_forward(x, additive_mask, packed)
        b, n, h = x.shape
        d = h // self.heads

        def split(t: torch.Tensor) -> torch.Tensor:
            return t.view(b, n, self.heads, d).transpose(1, 2)

        q, k, v = split(self.query(x)), split(self.key(x)), split(self.value(x))
        ctx = nn.functional.scaled_dot_product_attention(
            q, k, v, attn_mask=additive_mask, dropout_p=self.dropout.p if self.training else 0.0)
        ctx = ctx.transpose(1, 2).reshape(b, n, h)
        x = self.attn_norm(x + self.dropout(self.attn_out(ctx)))
        y = self.output(nn.functional.gelu(self.intermediate(x)))
        return self.out_norm(x + self.dropout(y))

    def _packed_parts(self) -> "tuple[torch.Tensor, torch.Tensor | None] | None":
        """The query, key and value weights packed as one bf16 matrix (made once, 0.9 MB a layer
        for multilingual-e5-small), where the three are :class:`CastLinear` with packed weights;
        else None."""
        parts = (self.query, self.key, self.value)
        if not all(isinstance(p, CastLinear) and p._packed is not None for p in parts):
            return None
        qkv = getattr(self, "_qkv", None)
        if qkv is None:
            weight = torch.cat([self.query.weight, self.key.weight, self.value.weight]).detach()
            biases = [self.query.bias, self.key.bias, self.value.bias]
            bias = torch.cat([t for t in biases if t is not None]).detach() if all(t is not None for t in biases) else None
            packed = packed_weight(weight, bias)
            if packed is None:
                return None
            qkv = self._qkv = (packed, bias)
        return qkv

    def _fused_forward(self, x: torch.Tensor, additive_mask: torch.Tensor,
                       qkv: "tuple[torch.Tensor, torch.Tensor | None]") -> torch.Tensor:
        """The same layer with query, key and value computed by one matmul from one bf16 copy of
        ``x`` (two casts and two oneDNN calls fewer a layer), bit-identical to the plain path:
        each output is the same dot product, rounded to bf16 at the same point.

        Measured on the AMX CPU, the seed dev questions three times, one thread, alternating in
        one run: median 15.8 against 17.7 ms (0.89; the other core was busy), also reported by
        ``benchmarks/bench_precision.py`` as ``fused_over_unfused``. Fusing GELU into the FFN's
        first matmul as well was a further 6% but moved vectors by up to 6e-4 from what index
        builds compute (sentence-transformers rounds before GELU), so it is not done."""
        b, n, h = x.shape
        d = h // self.heads
        packed, bias = qkv
        fused = torch.ops.mkldnn._linear_pointwise(x.to(torch.bfloat16), packed, bias, "none", [], "").float()
        q, k, v = (t.view(b, n, self.heads, d).transpose(1, 2) for t in fused.split(h, dim=-1))
        ctx = nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=additive_mask)
        x = self.attn_norm(x + self.attn_out(ctx.transpose(1, 2).reshape(b, n, h)))
        return self.out_norm(x + self.output(nn.functional.gelu(self.intermediate(x))))


def additive_mask(attention_mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """``[batch, tokens]`` 1/0 mask -> ``[batch, 1, 1, tokens]`` additive mask."""
    return (1.0 - attention_mask[:, None, None, :].to(dtype)) * -1e4


class BertEmbeddings(nn.Module):
    def __init__(self, shape: BertShape, device: str | None = None) -> None:
        super().__init__()
        h = shape.hidden_size

        def table(rows: int, padding_idx: int | None = None) -> nn.Embedding:
            # an explicit empty weight: initialising one on the meta device imports torch._dynamo (~2 s)
            weight = torch.empty(rows, h, device=device) if device == "meta" else None
            return nn.Embedding(rows, h, padding_idx=padding_idx, _weight=weight, device=device)

        self.word_embeddings = table(shape.vocab_size, padding_idx=shape.pad_token_id)
        self.position_embeddings = table(shape.max_positions)
        self.token_type_embeddings = table(shape.type_vocab_size)
        self.LayerNorm = nn.LayerNorm(h, eps=shape.layer_norm_eps, device=device)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        n = input_ids.shape[1]
        positions = torch.arange(n, device=input_ids.device)
        x = self.word_embeddings(input_ids) + self.position_embeddings(positions)[None] + self.token_type_embeddings.weight[0]
        return self.LayerNorm(x)


class BertModel(nn.Module):
    """Embeddings and encoder layers (no pooler): ``forward`` gives the last hidden states."""

    def __init__(self, shape: BertShape, device: str | None = None) -> None:
        """``device="meta"`` builds it without weights (for :meth:`load`)."""
        super().__init__()
        self.shape = shape
        self.embeddings = BertEmbeddings(shape, device)
        self.layers = nn.ModuleList(BertLayer(shape, device) for _ in range(shape.layers))

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, upto: int | None = None) -> torch.Tensor:
        """Hidden states after the first ``upto`` layers (all of them by default)."""
        x = self.embeddings(input_ids)
        mask = additive_mask(attention_mask, x.dtype)
        for layer in self.layers[:upto]:
            x = layer(x, mask)
        return x

    @classmethod
    def load(cls, folder: Path) -> "BertModel":
        """Load ``config.json`` + ``model.safetensors`` of a transformers ``BertModel`` folder."""
        from safetensors.torch import load_file

        shape = BertShape.from_config(json.loads((folder / "config.json").read_text(encoding="utf-8")))
        model = cls(shape, device="meta")  # no random initialisation of weights about to be replaced
        model.load_state_dict(from_transformers(load_file(str(folder / "model.safetensors"))), assign=True)
        return model.eval()


def from_transformers(state: Mapping[str, torch.Tensor], prefix: str = "") -> dict[str, torch.Tensor]:
    """Rename a transformers ``BertModel`` state dict to this module's names (pooler dropped)."""
    out: dict[str, torch.Tensor] = {}
    layer = re.compile(r"encoder\.layer\.(\d+)\.(.+)\.(weight|bias)$")
    for key, value in state.items():
        name = key[len(prefix):] if key.startswith(prefix) else key
        if name.startswith("embeddings.") and "position_ids" not in name:
            out[name] = value
            continue
        m = layer.match(name)
        if m and m.group(2) in HF_LAYER_NAMES:
            out[f"layers.{m.group(1)}.{HF_LAYER_NAMES[m.group(2)]}.{m.group(3)}"] = value
    return out
