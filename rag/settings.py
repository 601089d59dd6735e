"""One home for every setting; stored in the index manifest, overridable per call."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any, Literal

Mode = Literal["hybrid", "bm25", "dense"]
MODES: tuple[str, ...] = ("hybrid", "bm25", "dense")


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
