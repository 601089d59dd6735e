"""One choice of arithmetic precision for every place the encoder runs, made once per process.

Measured on this project's machine (2 cores with AMX and AVX-512 BF16, torch 2.13,
multilingual-e5-small, ``benchmarks/bench_precision.py``): float32 weights under
``torch.autocast("cpu", dtype=torch.bfloat16)`` embed passages about 2.4x faster than float32
with cosine 0.99999 to the float32 vectors, while the dynamic int8 path that the project used
before is slower than bf16 and less exact (cosine 0.96-0.97 to float32). Autocast keeps layer
norms, softmax and the residual sums in float32 (pure bf16 weights measured cosine 0.998).
A CPU without native bf16 support emulates it slowly, so there the choice is float32.

The choice, in order: an explicit value passed by the caller (a CLI flag), the ``RAG_PRECISION``
environment variable, then what the CPU supports (:func:`detect`). ``"int8"`` is kept only as an
explicit choice for indexes built with it before; it is never picked automatically.
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import ContextManager, Literal

from rag import environment
from rag.errors import RagError

Precision = Literal["float32", "bf16", "int8"]
PRECISIONS: tuple[str, ...] = ("float32", "bf16", "int8")
ENV = environment.PRECISION  # "RAG_PRECISION"

#: CPU flags (Linux ``/proc/cpuinfo``) that mean native bf16 matrix arithmetic.
BF16_FLAGS: tuple[str, ...] = ("amx_bf16", "avx512_bf16")


class PrecisionError(RagError):
    """An unknown precision was asked for."""

    def __init__(self, value: object, where: str) -> None:
        super().__init__(f"{where}: unknown precision {value!r} (known: {', '.join(PRECISIONS)})")


@dataclass(frozen=True)
class CpuSupport:
    """What the CPU offers for bf16, and where that was read from."""

    flags: frozenset[str]
    mkldnn_bf16: bool

    @property
    def bf16(self) -> bool:
        return self.mkldnn_bf16 and any(f in self.flags for f in BF16_FLAGS)

    def describe(self) -> str:
        found = [f for f in BF16_FLAGS if f in self.flags]
        return ", ".join(found) if found else "no bf16 units"


def _cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> frozenset[str]:
    try:
        text = cpuinfo.read_text(encoding="ascii", errors="replace")
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith("flags"):
            return frozenset(line.partition(":")[2].split())
    return frozenset()


@lru_cache(maxsize=1)
def cpu_support() -> CpuSupport:
    """The CPU's bf16 support: its flags and whether torch's oneDNN can use them."""
    import torch

    try:
        mkldnn = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        mkldnn = False
    return CpuSupport(_cpu_flags(), mkldnn)


def detect() -> str:
    """"bf16" where the CPU has native bf16 units, "float32" elsewhere."""
    return "bf16" if cpu_support().bf16 else "float32"


def check(value: object, where: str = "precision") -> str:
    """``value`` if it names a precision, else a :class:`PrecisionError` naming ``where``."""
    if value not in PRECISIONS:
        raise PrecisionError(value, where)
    return str(value)


def requested(value: str | None = None) -> str | None:
    """What was asked for: ``value``, else ``RAG_PRECISION``, else None (checked)."""
    if value is not None:
        return check(value)
    env = environment.precision()
    return check(env, ENV) if env else None


def choose(value: str | None = None) -> str:
    """The precision to run at: ``value``, else ``RAG_PRECISION``, else :func:`detect`."""
    return requested(value) or detect()


def autocast(precision: str) -> ContextManager[object]:
    """The context every encoder forward pass runs in: bf16 autocast for "bf16", else nothing
    (float32 and the int8 path compute in float32)."""
    if check(precision) != "bf16":
        return nullcontext()
    import torch

    return torch.autocast("cpu", dtype=torch.bfloat16)
