"""One precision choice: what the CPU can do, the environment, an explicit value (fast tier)."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from rag.encoder import precision
from rag.errors import RagError


def _support(monkeypatch: pytest.MonkeyPatch, flags: set[str], mkldnn: bool = True) -> None:
    monkeypatch.setattr(precision, "cpu_support", lambda: precision.CpuSupport(frozenset(flags), mkldnn))


@pytest.mark.parametrize(("flags", "mkldnn", "want"), [
    ({"avx2", "amx_bf16", "amx_tile"}, True, "bf16"),
    ({"avx512f", "avx512_bf16"}, True, "bf16"),
    ({"avx2", "fma"}, True, "float32"),  # no bf16 units: emulated bf16 is slower than float32
    ({"amx_bf16"}, False, "float32"),  # torch's oneDNN cannot use them
])
def test_detect_reads_the_cpu(monkeypatch: pytest.MonkeyPatch, flags: set[str], mkldnn: bool, want: str) -> None:
    _support(monkeypatch, flags, mkldnn)
    monkeypatch.delenv(precision.ENV, raising=False)
    assert precision.detect() == want
    assert precision.choose() == want


def test_environment_and_explicit_choice_override(monkeypatch: pytest.MonkeyPatch) -> None:
    _support(monkeypatch, {"amx_bf16"})
    monkeypatch.setenv(precision.ENV, "float32")
    assert precision.choose() == "float32"
    assert precision.choose("bf16") == "bf16"  # a flag beats the environment
    monkeypatch.setenv(precision.ENV, "fp8")
    with pytest.raises(RagError, match="RAG_PRECISION: unknown precision 'fp8'"):
        precision.choose()
    with pytest.raises(precision.PrecisionError, match="float32, bf16, int8"):
        precision.choose("half")


def test_autocast_runs_linear_layers_in_bf16_only_when_asked() -> None:
    layer = torch.nn.Linear(8, 4)
    x = torch.randn(2, 8)
    with precision.autocast("bf16"):
        assert layer(x).dtype == torch.bfloat16
    for p in ("float32", "int8"):
        with precision.autocast(p):
            assert layer(x).dtype == torch.float32


def test_this_machines_support_is_described() -> None:
    support = precision.cpu_support()
    assert isinstance(support.describe(), str) and support.describe()
    assert precision.detect() in ("bf16", "float32")


def test_cast_linear_packed_weights_give_the_plain_linears_output() -> None:
    import torch

    from rag.encoder.bert import CastLinear, packed_weight

    torch.manual_seed(0)
    plain = torch.nn.Linear(64, 96)
    layer = CastLinear(plain, torch.bfloat16)
    if layer._packed is None:  # this torch or CPU has no oneDNN bf16 path: the plain one runs
        assert packed_weight(layer.weight, layer.bias) is None
    for shape in ((1, 64), (13, 64), (2, 7, 64)):
        x = torch.randn(*shape)
        with torch.inference_mode():
            got = layer(x)
            want = torch.nn.functional.linear(x.to(torch.bfloat16), layer.weight, layer.bias).float()
        assert got.dtype == torch.float32 and got.shape == want.shape
        assert torch.equal(got, want)
    assert packed_weight(plain.weight, plain.bias) is None  # float32 weights are not packed


def test_the_fused_bf16_layer_computes_what_the_plain_one_does() -> None:
    """Inference through ``BertLayer._fused_forward`` (query, key and value in one matmul) gives
    the plain path's output bit for bit; gradients (training) always take the plain path."""
    import torch

    from rag.encoder.bert import BertLayer, additive_mask, cast_linears

    @dataclasses.dataclass(frozen=True)
    class Shape:
        hidden_size: int = 64
        heads: int = 4
        intermediate_size: int = 128
        layer_norm_eps: float = 1e-12
        dropout: float = 0.0

    torch.manual_seed(0)
    layer = BertLayer(Shape()).eval()
    cast_linears(layer, torch.bfloat16)
    x = torch.randn(2, 9, 64)
    mask = additive_mask(torch.tensor([[1] * 9, [1] * 5 + [0] * 4]), x.dtype)
    with torch.inference_mode():
        BertLayer.fused = False
        try:
            plain = layer(x, mask)
        finally:
            BertLayer.fused = True
        fused = layer(x, mask)
    assert fused.dtype == torch.float32 and torch.equal(fused, plain)
    if layer.query._packed is not None:  # where oneDNN packs bf16 weights, the fused path is the one taken
        assert layer._packed_parts() is not None
    with torch.enable_grad():
        assert torch.allclose(layer(x, mask).detach(), plain, atol=1e-5)
