"""The reader's training script end to end on a handful of questions (slow tier; CI never
trains the shipped reader, this only checks that the script and ``--init`` work)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from training_scripts import load_script

from rag import span_reader

pytestmark = pytest.mark.slow

ARTICLES = [
    ("工业", "前三季度规模以上工业增加值同比增长5.8%。高技术制造业增加值增长9.6%。",
     [("前三季度工业增加值增长多少？", "5.8%"), ("高技术制造业增加值增长多少？", "9.6%")]),
    ("bridge", "The Greywater Bridge opened in 1931. It is 310 metres long and carries two tracks.",
     [("When did the Greywater Bridge open?", "1931"), ("How long is the Greywater Bridge?", "310 metres")]),
    ("observatory", "The observatory was founded by Clara Hale. Its telescope has a 2.4 metre mirror.",
     [("Who founded the observatory?", "Clara Hale"), ("How wide is the mirror?", "2.4 metre")]),
]


def _squad(path: Path) -> Path:
    data = []
    for a_i, (title, ctx, qas) in enumerate(ARTICLES):
        data.append({"title": title, "paragraphs": [{"context": ctx, "qas": [
            {"id": f"{a_i}-{q_i}", "question": q, "answers": [{"text": a, "answer_start": ctx.index(a)}]}
            for q_i, (q, a) in enumerate(qas)]}]})
    path.write_text(json.dumps({"data": data}, ensure_ascii=False), encoding="utf-8")
    return path


def test_train_then_continue(tmp_path: Path) -> None:
    data = _squad(tmp_path / "tiny.json")
    train = load_script("train_reader")
    common = [str(data), "--epochs", "1", "--batch", "2", "--val-fraction", "0.34", "--threads", "1"]
    assert train.main(common + ["--out", str(tmp_path / "s1")]) == 0
    card1 = span_reader.read_card(tmp_path / "s1")
    assert card1["validation"]["questions"] == 2 and card1["history"] == []
    assert card1["data"][0]["file"] == "tiny.json" and len(card1["data"][0]["sha256"]) == 64
    assert span_reader.lower_precision(card1) == "float32"  # the default, recorded for query time
    split = json.loads((tmp_path / "s1" / "split.json").read_text(encoding="utf-8"))
    assert len(split["validation_ids"]) == 2

    assert train.main(common + ["--init", str(tmp_path / "s1"), "--out", str(tmp_path / "s2"), "--near-miss", "1",
                                "--lower", "int8"]) == 0
    card2 = span_reader.read_card(tmp_path / "s2")
    assert span_reader.lower_precision(card2) == "int8"
    assert card2["training"]["near_miss"] == 1.0
    near = card2["training"]["near_miss_questions"]
    assert isinstance(near, int) and 0 <= near <= card2["split"]["train_questions"]
    assert card2["training"]["windows"] >= card1["training"]["windows"]
    assert card2["training"]["continued"] is True
    assert card2["history"] == [card1["training"]]
    assert card2["weights"]["sha256"] != card1["weights"]["sha256"]
    head, _ = span_reader.load_head(tmp_path / "s2", span_reader.encoder_identity())
    assert sum(p.numel() for p in head.parameters()) == card2["weights"]["parameters"]
    assert card2["training"]["script"] == "simplified"

    # reader-only validation of both stages and of their weight average, on the same split
    evaluate = load_script("evaluate_reader")
    out = tmp_path / "val.json"
    assert evaluate.main([str(data), "--reader", str(tmp_path / "s1"), "--reader", str(tmp_path / "s2"),
                          "--average-out", str(tmp_path / "avg"), "--json", str(out), "--threads", "1"]) == 0
    scores = json.loads(out.read_text(encoding="utf-8"))
    names = {str(tmp_path / "s1"), str(tmp_path / "s2"), "average"}
    assert set(scores) == names | {f"{n}+edges" for n in names}
    assert all(r["questions"] == 2 and 0.0 <= r["em"] <= r["f1"] <= 1.0 for r in scores.values())
    avg = span_reader.read_card(tmp_path / "avg")
    assert [a["folder"] for a in avg["averaged_from"]] == [str(tmp_path / "s1"), str(tmp_path / "s2")]
    span_reader.load_head(tmp_path / "avg", span_reader.encoder_identity())  # checksum verified
