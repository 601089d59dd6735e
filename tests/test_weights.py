"""rag.encoder.weights: weight files checked by sha256 and for non-finite values, once per file version."""

from __future__ import annotations

import builtins
import hashlib
import json
import os
import struct
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from rag.encoder import weights
from rag.errors import ModelWeightsError, RagError


def write_safetensors(path: Path, tensors: dict[str, np.ndarray]) -> str:
    """A minimal safetensors file (F32/F16/BF16 given as uint16 views); returns its sha256."""
    header: dict[str, Any] = {"__metadata__": {"format": "pt"}}
    blobs, offset = [], 0
    for name, array in tensors.items():
        dtype = {"float32": "F32", "float16": "F16", "uint16": "BF16", "int64": "I64"}[array.dtype.name]
        raw = np.ascontiguousarray(array).tobytes()
        header[name] = {"dtype": dtype, "shape": list(array.shape), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    head = json.dumps(header).encode()
    head += b" " * (-len(head) % 8)
    data = struct.pack("<Q", len(head)) + head + b"".join(blobs)
    path.write_bytes(data)
    return hashlib.sha256(data).hexdigest()


def count_opens(monkeypatch: pytest.MonkeyPatch, target: Path) -> list[str]:
    """Record every open() of ``target`` (hashing reads the file through open())."""
    opened: list[str] = []
    real_open = builtins.open

    def spy(file: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(file, (str, os.PathLike)) and Path(file) == target:
            opened.append(str(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", spy)
    return opened


@pytest.fixture
def model(tmp_path: Path) -> tuple[Path, str]:
    rng = np.random.default_rng(0)
    path = tmp_path / "model.safetensors"
    sha = write_safetensors(path, {"a.weight": rng.normal(size=(64, 32)).astype(np.float32),
                                   "b.bias": rng.normal(size=32).astype(np.float16),
                                   "ids": np.arange(4, dtype=np.int64)})
    return path, sha


def test_good_file_is_hashed_once_then_trusted(model: tuple[Path, str], tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    path, sha = model
    sidecar = tmp_path / "verified.json"
    opened = count_opens(monkeypatch, path)
    assert weights.check_weights(path, sha, sidecar=sidecar, key="model") == sha
    assert opened, "the first check must read the file"
    record = json.loads(sidecar.read_text())["files"]["model"]
    st = path.stat()
    assert record["sha256"] == sha and record["size"] == st.st_size and record["mtime_ns"] == st.st_mtime_ns
    assert record["ino"] == st.st_ino and record["finite"] is True
    opened.clear()
    for _ in range(3):
        weights.check_weights(path, sha, sidecar=sidecar, key="model")
    assert opened == [], "a file whose identity matches its verified record is not read again"
    weights.check_weights(path, sha, sidecar=sidecar, key="model", trust_record=False)
    assert opened, "trust_record=False always hashes"


def test_same_size_garbage_is_refused(model: tuple[Path, str], tmp_path: Path) -> None:
    path, sha = model
    sidecar = tmp_path / "verified.json"
    weights.check_weights(path, sha, sidecar=sidecar, key="model")
    size = path.stat().st_size
    path.write_bytes(os.urandom(size))
    with pytest.raises(ModelWeightsError, match="sha256 differs") as info:
        weights.check_weights(path, sha, sidecar=sidecar, key="model")
    assert isinstance(info.value, RagError) and str(path) in str(info.value)


def test_in_place_overwrite_with_restored_mtime_is_caught(model: tuple[Path, str], tmp_path: Path) -> None:
    """``cp --preserve=timestamps`` onto the file: same inode, size and mtime; only ctime moves."""
    path, sha = model
    sidecar = tmp_path / "verified.json"
    weights.check_weights(path, sha, sidecar=sidecar, key="model")
    st = path.stat()
    data = bytearray(path.read_bytes())
    data[-3] ^= 0x40
    with open(path, "r+b") as fh:  # in place: the inode stays
        fh.write(bytes(data))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    after = path.stat()
    assert (after.st_ino, after.st_size, after.st_mtime_ns) == (st.st_ino, st.st_size, st.st_mtime_ns)
    with pytest.raises(ModelWeightsError, match="sha256 differs"):
        weights.check_weights(path, sha, sidecar=sidecar, key="model")


def test_record_of_another_checksum_is_not_trusted(model: tuple[Path, str], tmp_path: Path) -> None:
    path, sha = model
    sidecar = tmp_path / "verified.json"
    weights.check_weights(path, sha, sidecar=sidecar, key="model")
    with pytest.raises(ModelWeightsError, match="sha256 differs"):
        weights.check_weights(path, "0" * 64, sidecar=sidecar, key="model")


@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_values_are_a_typed_error_naming_the_tensor(tmp_path: Path, dtype: str, bad: float) -> None:
    values = np.linspace(-1, 1, 48, dtype=np.float32)
    values[17] = bad
    if dtype == "bfloat16":
        array = (values.view(np.uint32) >> 16).astype(np.uint16)
    else:
        array = values.astype(dtype)
    path = tmp_path / "model.safetensors"
    sha = write_safetensors(path, {"ok": np.zeros(8, np.float32), "layer.3.weight": array.reshape(6, 8)})
    sidecar = tmp_path / "verified.json"
    with pytest.raises(ModelWeightsError, match=r"'layer\.3\.weight'.*non-finite") as info:
        weights.check_weights(path, sha, sidecar=sidecar, key="model")
    assert str(path) in str(info.value)
    assert not sidecar.exists() or "model" not in json.loads(sidecar.read_text()).get("files", {})
    assert weights.nonfinite_tensor(path) == "layer.3.weight"


def test_unknown_checksum_still_checks_finiteness(tmp_path: Path) -> None:
    path = tmp_path / "model.safetensors"
    write_safetensors(path, {"w": np.array([1.0, np.nan], np.float32)})
    with pytest.raises(ModelWeightsError, match="non-finite"):
        weights.check_weights(path, None, sidecar=tmp_path / "v.json", key="model")


def test_truncated_safetensors_header_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "model.safetensors"
    path.write_bytes(struct.pack("<Q", 10**9) + b"{}")
    with pytest.raises(ModelWeightsError, match="safetensors"):
        weights.check_weights(path, None, sidecar=tmp_path / "v.json", key="model")


def test_corrupt_or_unwritable_sidecar_never_blocks_a_good_file(model: tuple[Path, str], tmp_path: Path) -> None:
    path, sha = model
    sidecar = tmp_path / "verified.json"
    sidecar.write_text("{not json")
    assert weights.check_weights(path, sha, sidecar=sidecar, key="model") == sha
    assert json.loads(sidecar.read_text())["files"]["model"]["sha256"] == sha
    missing_dir = tmp_path / "no" / "such" / "dir" / "v.json"
    (tmp_path / "no").write_text("a file, so the sidecar's folder cannot be made")
    assert weights.check_weights(path, sha, sidecar=missing_dir, key="model") == sha


def test_recorded_file_changing_identity_is_hashed_again(model: tuple[Path, str], tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    path, sha = model
    sidecar = tmp_path / "verified.json"
    weights.check_weights(path, sha, sidecar=sidecar, key="model")
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))  # touched, same bytes
    opened = count_opens(monkeypatch, path)
    assert weights.check_weights(path, sha, sidecar=sidecar, key="model") == sha
    assert opened, "a touched file is hashed again"
    opened.clear()
    weights.check_weights(path, sha, sidecar=sidecar, key="model")
    assert opened == [], "and its new identity is recorded"
