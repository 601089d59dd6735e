"""A streaming writer of float32 safetensors files, hashing what it writes."""

from __future__ import annotations

import hashlib
import json
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from rag import fs
from rag.errors import ModelMaterializationError


class _HashingWriter:
    """Writes to a binary file while computing sha256 and size."""

    def __init__(self, fh: BinaryIO) -> None:
        self.fh = fh
        self.sha = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes | memoryview) -> None:
        self.sha.update(data)
        self.fh.write(data)
        self.size += len(data)


@dataclass(frozen=True)
class FileRecord:
    """Size and sha256 of one written file."""

    size: int
    sha256: str


def write_safetensors(
    path: Path,
    plan: Sequence[tuple[str, tuple[int, ...]]],
    produce: Callable[[int], np.ndarray],
) -> FileRecord:
    """Stream float32 tensors into a safetensors file; ``produce(i)`` returns tensor ``i``."""
    header: dict[str, Any] = {"__metadata__": {"format": "pt"}}
    offset = 0
    for name, shape in plan:
        nbytes = 4 * int(np.prod(shape))
        header[name] = {"dtype": "F32", "shape": list(shape), "data_offsets": [offset, offset + nbytes]}
        offset += nbytes
    header_bytes = json.dumps(header, separators=(",", ":")).encode("utf-8")
    header_bytes += b" " * (-len(header_bytes) % 8)
    with open(path, "wb") as fh:
        out = _HashingWriter(fh)
        out.write(struct.pack("<Q", len(header_bytes)))
        out.write(header_bytes)
        for i, (name, shape) in enumerate(plan):
            array = np.ascontiguousarray(produce(i), dtype="<f4")
            if array.shape != tuple(shape):
                raise ModelMaterializationError(path, f"tensor {name} has shape {array.shape}, expected {shape}")
            if not np.isfinite(array).all():
                raise ModelMaterializationError(path, f"tensor {name!r} holds non-finite values (NaN or infinity)")
            out.write(array.reshape(-1).view(np.uint8).data)
        fs.sync(fh)
    return FileRecord(out.size, out.sha.hexdigest())
