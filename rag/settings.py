"""One home for every setting; stored in the index manifest, overridable per call."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any, Literal

from rag.errors import QueryError

Mode = Literal["hybrid", "bm25", "dense"]
MODES: tuple[str, ...] = ("hybrid", "bm25", "dense")

K_MIN, K_MAX, K_DEFAULT = 1, 50, 5
"""How many passages a question may retrieve: the one range of the API, the CLI and the UI."""


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def check_k(k: object, name: str = "k") -> int:
    """``k`` as an int when it is a whole number from :data:`K_MIN` to :data:`K_MAX` (a float
    such as the UI slider's ``5.0`` counts); anything else raises :class:`QueryError`."""
    value: int | None = None
    if isinstance(k, int) and not isinstance(k, bool):
        value = k
    elif isinstance(k, float) and k.is_integer():  # False for inf and nan
        value = int(k)
    if value is None or not K_MIN <= value <= K_MAX:
        raise QueryError(f"{name} must be a whole number from {K_MIN} to {K_MAX}, got {_shown(k)}")
    return value


def check_mode(mode: object) -> str | None:
    """``mode`` when it is one of :data:`MODES`, ``None`` (the index's default) when it is None;
    anything else raises :class:`QueryError`."""
    if mode is None or (isinstance(mode, str) and mode in MODES):
        return mode
    raise QueryError(f"unknown retrieval mode {_shown(mode)}; choose one of {', '.join(MODES)}")


@dataclass(frozen=True)
class Settings:
    """Index and query settings.

    chunk_chars / chunk_overlap: target chunk size and overlap, in characters.
    max_file_bytes: files larger than this are refused before they are read.
    mode: default retrieval mode. dense_weight: weight of the dense side in hybrid fusion,
    before it is gated by how much of the text the model can see (its known-token rate).
    visibility_floor / visibility_full: known-token rates at which the dense side starts to
    count and counts fully. candidates: how many hits each side proposes before fusion.
    """

    chunk_chars: int = 300
    chunk_overlap: int = 60
    max_file_bytes: int = 20 * 1024 * 1024
    mode: str = "hybrid"
    dense_weight: float = 0.5
    visibility_floor: float = 0.80
    visibility_full: float = 0.97
    candidates: int = 100
    batch_size: int = 32

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Settings":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def with_overrides(self, **overrides: Any) -> "Settings":
        return replace(self, **{k: v for k, v in overrides.items() if v is not None})
