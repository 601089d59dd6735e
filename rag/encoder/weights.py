"""Weight files checked by SHA-256 and for NaN/inf values, once per version of the file.

Hashing multilingual-e5-small's 470 MB of float32 weights takes ~0.3 s and scanning them for
non-finite values ~0.07 s (2-core x86); a start should not pay that every time. After a file
passes, its identity (size, mtime_ns, ctime_ns, inode, device) and sha256 are recorded in a
small JSON sidecar; a later check of a file that still has that identity trusts the record. Any
write to a file changes its ctime, which unlike its mtime cannot be set back, so an overwrite
with same-size bytes is hashed again and caught even when its mtime was restored (``cp -p``).

The sidecar is a cache: unreadable, malformed or unwritable, it only costs a rehash.
"""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rag.errors import ModelWeightsError
from rag.fs import atomic_write_text
from rag.hashing import sha256_file

SIDECAR_FORMAT = 1

#: safetensors float dtypes: (unsigned view, exponent mask). All exponent bits set means NaN or
#: infinity, so one integer test covers both without converting to float.
_FLOAT_BITS: dict[str, tuple[str, int]] = {
    "F16": ("<u2", 0x7C00),
    "BF16": ("<u2", 0x7F80),
    "F32": ("<u4", 0x7F800000),
    "F64": ("<u8", 0x7FF0000000000000),
}
_SCAN_CHUNK = 1 << 22  # elements per isfinite step: bounded temporary memory
_MAX_HEADER = 100 * 1024 * 1024  # the limit the safetensors library itself enforces


@dataclass(frozen=True)
class FileIdentity:
    """What changes whenever a file's content may have: a file with the same identity as a
    verified one is taken to hold the same bytes."""

    size: int
    mtime_ns: int
    ctime_ns: int
    ino: int
    dev: int

    @classmethod
    def of(cls, st: os.stat_result) -> FileIdentity:
        return cls(st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev)


def check_weights(
    path: Path, expected_sha256: str | None, *, sidecar: Path, key: str, trust_record: bool = True
) -> str:
    """Raise :class:`ModelWeightsError` unless ``path`` has sha256 ``expected_sha256`` (``None``:
    no reference, finiteness only) and, for a safetensors file, no NaN/inf in its float tensors.

    ``key`` names the file in ``sidecar``. With ``trust_record`` a file whose identity matches a
    verified record for that checksum is not read. Returns the file's sha256.
    """
    path = Path(path)
    before = _identity(path)
    if trust_record:
        record = _read_records(sidecar).get(key)
        if _trusted(record, before, expected_sha256):
            return str(record["sha256"])  # type: ignore[index]
    try:
        sha = sha256_file(path)
    except OSError as exc:
        raise ModelWeightsError(path, f"cannot read: {exc.strerror or exc}") from exc
    if expected_sha256 is not None and sha != expected_sha256:
        raise ModelWeightsError(path, "sha256 differs from the recorded one (file corrupt or modified)")
    if path.suffix == ".safetensors":
        bad = nonfinite_tensor(path)
        if bad is not None:
            raise ModelWeightsError(path, f"tensor {bad!r} holds non-finite values (NaN or infinity)")
    if _identity(path) == before:  # not changed while being read
        record_verified(path, sha, sidecar=sidecar, key=key, identity=before)
    return sha


def record_verified(path: Path, sha256: str, *, sidecar: Path, key: str, identity: FileIdentity | None = None) -> None:
    """Record ``path`` (with ``identity``, else its current one) as verified: content ``sha256``,
    finite. For a writer that knows both, having just written the file. Best effort."""
    ident = identity or _identity(Path(path))
    records = _read_records(sidecar)
    records[key] = {**asdict(ident), "sha256": sha256, "finite": True}
    _write_records(sidecar, records)


def nonfinite_tensor(path: Path) -> str | None:
    """Name of the first float tensor of a safetensors file holding NaN or infinity, or None."""
    path = Path(path)
    try:
        size = path.stat().st_size
        with open(path, "rb") as fh:
            head = fh.read(8)
            (n,) = struct.unpack("<Q", head) if len(head) == 8 else (-1,)
            if not 0 < n <= min(_MAX_HEADER, size - 8):
                raise ModelWeightsError(path, "not a safetensors file (bad header length)")
            header = json.loads(fh.read(n))
    except OSError as exc:
        raise ModelWeightsError(path, f"cannot read: {exc.strerror or exc}") from exc
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelWeightsError(path, f"not a safetensors file (header unreadable: {exc})") from exc
    if not isinstance(header, dict):
        raise ModelWeightsError(path, "not a safetensors file (header is not a JSON object)")
    base = 8 + n
    spans: list[tuple[int, str, str, int]] = []
    for name, info in header.items():
        if name == "__metadata__" or not isinstance(info, Mapping) or info.get("dtype") not in _FLOAT_BITS:
            continue
        offsets = info.get("data_offsets")
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(isinstance(o, int) for o in offsets)
                and 0 <= offsets[0] <= offsets[1] and base + offsets[1] <= size):
            raise ModelWeightsError(path, f"not a safetensors file (tensor {name!r} lies outside the file)")
        view, mask = _FLOAT_BITS[info["dtype"]]
        spans.append((base + offsets[0], name, view, mask))
        if (offsets[1] - offsets[0]) % np.dtype(view).itemsize:
            raise ModelWeightsError(path, f"not a safetensors file (tensor {name!r} has a partial element)")
    if not spans:
        return None
    data = np.memmap(path, dtype=np.uint8, mode="r")
    try:
        for start, name, view, mask in sorted(spans):
            info = header[name]
            count = (info["data_offsets"][1] - info["data_offsets"][0]) // np.dtype(view).itemsize
            bits = np.frombuffer(data, dtype=view, count=count, offset=start)
            m = np.asarray(mask, dtype=view)
            for i in range(0, count, _SCAN_CHUNK):
                if np.any(np.bitwise_and(bits[i : i + _SCAN_CHUNK], m) == m):
                    return name
    finally:
        del data
    return None


def _identity(path: Path) -> FileIdentity:
    try:
        return FileIdentity.of(path.stat())
    except OSError as exc:
        raise ModelWeightsError(path, f"missing or unreadable: {exc.strerror or exc}") from exc


def _trusted(record: object, identity: FileIdentity, expected: str | None) -> bool:
    if not isinstance(record, dict) or record.get("finite") is not True:
        return False
    if expected is not None and record.get("sha256") != expected:
        return False
    return isinstance(record.get("sha256"), str) and all(
        record.get(field) == value for field, value in asdict(identity).items()
    )


def _read_records(sidecar: Path) -> dict[str, Any]:
    try:
        data = json.loads(Path(sidecar).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return {}
    if not isinstance(data, dict) or data.get("format") != SIDECAR_FORMAT or not isinstance(data.get("files"), dict):
        return {}
    return dict(data["files"])


def _write_records(sidecar: Path, records: Mapping[str, Any]) -> None:
    """Atomic replace (concurrent writers: the last one wins, the others' entries are rehashed
    once later); failures are ignored, the next check just hashes again."""
    sidecar = Path(sidecar)
    try:
        sidecar.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(sidecar, json.dumps({"format": SIDECAR_FORMAT, "files": dict(records)}, indent=1,
                                              sort_keys=True), durable=False)
    except OSError:
        pass
