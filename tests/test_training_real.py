"""The reader's training script end to end on a handful of questions (slow tier; CI never
trains the shipped reader, this only checks that the script, ``--resume``, ``--export`` and
``--init`` work)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from safetensors.torch import load_file

from rag.answer import span_reader
from training import train_reader

pytestmark = pytest.mark.slow

ZH = [
    ("工业", "前三季度规模以上工业增加值同比增长5.8%。高技术制造业增加值增长9.6%。",
     [("前三季度工业增加值增长多少？", "5.8%"), ("高技术制造业增加值增长多少？", "9.6%")]),
    ("港口", "宁波舟山港去年完成货物吞吐量12.6亿吨，连续多年位居全球第一。",
     [("宁波舟山港去年的货物吞吐量是多少？", "12.6亿吨"), ("宁波舟山港吞吐量排名第几？", "全球第一")]),
    ("铁路", "京张高铁于2019年12月30日开通运营，全长174公里。",
     [("京张高铁什么时候开通？", "2019年12月30日"), ("京张高铁全长多少？", "174公里")]),
]
EN = [
    ("bridge", "The Greywater Bridge opened in 1931. It is 310 metres long and carries two tracks.",
     [("When did the Greywater Bridge open?", "1931"), ("How long is the Greywater Bridge?", "310 metres")]),
    ("observatory", "The observatory was founded by Clara Hale. Its telescope has a 2.4 metre mirror.",
     [("Who founded the observatory?", "Clara Hale"), ("How wide is the mirror?", "2.4 metre")]),
    ("canal", "The Orlin Canal links two rivers. Work on it began in 1802 under engineer Tomas Veld.",
     [("When did work on the Orlin Canal begin?", "1802"), ("Who was the canal's engineer?", "Tomas Veld")]),
]


def _squad(path: Path, articles: list, prefix: str) -> Path:
    data = []
    for a_i, (title, ctx, qas) in enumerate(articles):
        data.append({"title": title, "paragraphs": [{"context": ctx, "qas": [
            {"id": f"{prefix}{a_i}-{q_i}", "question": q, "answers": [{"text": a, "answer_start": ctx.index(a)}]}
            for q_i, (q, a) in enumerate(qas)]}]})
    path.write_text(json.dumps({"data": data}, ensure_ascii=False), encoding="utf-8")
    return path


def _weights(folder: Path) -> dict:
    return {k: v for k, v in load_file(str(folder / "checkpoint.safetensors")).items() if k.startswith("model.")}


def test_train_resume_export_continue(tmp_path: Path) -> None:
    zh = _squad(tmp_path / "cmrc_tiny.json", ZH, "zh")
    en = _squad(tmp_path / "squad_tiny.json", EN, "en")
    common = [str(zh), str(en), "--batch", "2", "--val-fraction", "0.34", "--cal-fraction", "0", "--threads", "1",
              "--eval-questions", "2", "--near-miss", "0", "--off-passage", "0", "--warmup", "0.5"]

    # one stage straight through, and the same stage stopped after 2 steps then resumed: same weights
    assert train_reader.main(common + ["--work", str(tmp_path / "straight")]) == 0
    assert train_reader.main(common + ["--work", str(tmp_path / "cut"), "--stop-after-steps", "2"]) == 0
    cut = json.loads((tmp_path / "cut" / "checkpoint.json").read_text(encoding="utf-8"))
    assert cut["step"] == 2 and not cut["final"] and not (tmp_path / "cut" / "reader").exists()
    assert train_reader.main([str(zh), str(en), "--work", str(tmp_path / "cut"), "--resume", "--threads", "1",
                              "--eval-questions", "2"]) == 0
    a, b = _weights(tmp_path / "straight"), _weights(tmp_path / "cut")
    assert a.keys() == b.keys() and all(bool((a[k] == b[k]).all()) for k in a)

    s1 = tmp_path / "straight" / "reader"
    card1 = span_reader.read_card(s1)
    assert card1["config"]["first_layer"] == 0 and card1["config"]["layers"] == 12
    assert card1["training"]["complete"] is True and card1["history"] == []
    assert set(card1["validation"]) == {"zh", "en"}
    assert {d["file"] for d in card1["data"]} == {"cmrc_tiny.json", "squad_tiny.json"}
    split = json.loads((s1 / "split.json").read_text(encoding="utf-8"))
    assert split["validation_ids"] and not set(split["validation_ids"]) & set(split["calibration_ids"])
    assert card1["weights"]["parameters"] < 25_000_000  # 12 layers + head; the embeddings are the encoder's

    # a stage cut short can be exported as it stands
    assert train_reader.main([str(zh), str(en), "--work", str(tmp_path / "early"), "--threads", "1",
                              "--stop-after-steps", "1", "--eval-questions", "1", "--batch", "2"]) == 0
    assert train_reader.main([str(zh), str(en), "--work", str(tmp_path / "early"), "--export", "--threads", "1"]) == 0
    early = span_reader.read_card(tmp_path / "early" / "reader")
    assert early["training"]["complete"] is False and early["training"]["step"] == 1

    # the next stage starts from the reader; the shipped runtime reads it
    assert train_reader.main(common + ["--work", str(tmp_path / "s2"), "--init", str(s1)]) == 0
    card2 = span_reader.read_card(tmp_path / "s2" / "reader")
    assert card2["history"] == [card1["training"]] and card2["training"]["continued"] is True
    reader = span_reader.SpanReader.load(folder=tmp_path / "s2" / "reader", threads=1)
    result = reader.read("When did the Greywater Bridge open?", [EN[0][1]])
    assert result.spans and all(0 <= g.start < g.end <= len(EN[0][1]) for g in result.spans)
