"""The confidence fit of ``training.calibrate_reader``, refitted from stored feature rows."""

from __future__ import annotations

import json
import random
from pathlib import Path

from training import calibrate_reader as cal


def _rows(n_articles: int = 40) -> list[cal.Row]:
    """Answerable questions have a wide reader margin and a well-covered sentence; removed-passage
    ones a narrow margin; near misses a wide margin but a word of the question missing."""
    from rag.answer.span_answer import FEATURES

    rng = random.Random(0)
    rows = []

    def feats(margin: float, cover: float, missing: float) -> tuple[float, ...]:
        f = dict.fromkeys(FEATURES, 0.0)
        f.update(margin=margin + rng.gauss(0, 1), cover_sentence=cover + rng.gauss(0, 0.05),
                 missing_word=missing + rng.gauss(0, 0.05), sentence_found=1.0)
        return tuple(f[k] for k in FEATURES)

    for a in range(n_articles):
        for q in range(3):
            qid = f"a{a}-{q}"
            rows.append(cal.Row(qid, f"a{a}", "answerable", 1, feats(8, 0.7, 0.05), 0.8, True, True, True, 1.0))
            rows.append(cal.Row(qid, f"a{a}", "removed", 0, feats(1, 0.3, 0.3), 0.0, False, False, True, 1.0))
            rows.append(cal.Row(qid + "~near", f"a{a}", "near", 0, feats(8, 0.4, 0.4), 0.0, False, False, True, 1.0))
    rows.append(cal.Row("s1", "seed", "seed", 1, feats(8, 0.7, 0.0), 1.0, True, True, True, 5.0))
    rows.append(cal.Row("s2", "seed", "seed", 0, feats(0, 0.2, 0.5), 0.0, False, False, False, 5.0))
    return rows


def test_refit_from_rows_writes_a_calibration_that_refuses_near_misses(tmp_path: Path) -> None:
    rows = _rows()
    (tmp_path / "rows.json").write_text(json.dumps({"rows": [r.__dict__ for r in rows]}), encoding="utf-8")
    data = {"data": [{"title": "t", "paragraphs": [{"context": "甲乙丙。", "qas": [
        {"id": "a0-0", "question": "甲是什么？", "answers": [{"text": "乙", "answer_start": 1}]}]}]}]}
    (tmp_path / "set.json").write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    (tmp_path / "split.json").write_text(json.dumps({"validation_ids": ["a0-0"]}), encoding="utf-8")
    reader = tmp_path / "reader"
    reader.mkdir()
    (reader / "reader.json").write_text(json.dumps({"name": "test"}), encoding="utf-8")
    out = tmp_path / "result.json"
    assert cal.main([str(tmp_path / "set.json"), "--split", str(tmp_path / "split.json"),
                     "--full-index", str(tmp_path / "no-index"), "--rows", str(tmp_path / "rows.json"),
                     "--reader", str(reader), "--write", "--json", str(out), "--fit-near-miss"]) == 0
    assert not (tmp_path / "no-index-minus-val").exists()  # a refit touches no index
    result = json.loads(out.read_text(encoding="utf-8"))
    cross = result["cross_fitted"]
    assert cross["answerable"] == 120 and cross["near_miss"] == 120 and cross["unanswerable"] == 120
    assert cross["wrongly_refused"] <= 0.1
    assert cross["near_miss_refused"] > 0.8 and cross["unanswerable_refused"] > 0.8
    assert result["seed"] == {"questions": 2, "decided_right": 2}
    card = json.loads((reader / "reader.json").read_text(encoding="utf-8"))
    assert card["name"] == "test" and card["calibration"]["data"]["near_miss"] == 120
    assert card["calibration"]["data"]["near_miss_fitted"] is True
    from rag.answer.span_answer import FEATURES, Calibration

    written = Calibration.from_dict(card["calibration"])
    assert len(written.weights) == len(FEATURES) and 0 < written.answer_at <= written.span_at < 1
    # the near misses are told apart by coverage, not by the reader's margin
    assert written.weights[FEATURES.index("cover_sentence")] > 0

    # by default near misses are only measured (and without --write the card stays as it was)
    out2 = tmp_path / "result2.json"
    assert cal.main([str(tmp_path / "set.json"), "--split", str(tmp_path / "split.json"),
                     "--full-index", str(tmp_path / "no-index"), "--rows", str(tmp_path / "rows.json"),
                     "--reader", str(reader), "--json", str(out2)]) == 0
    measured = json.loads(out2.read_text(encoding="utf-8"))["cross_fitted"]
    assert measured["near_miss"] == 120 and 0.0 <= measured["near_miss_refused"] <= 1.0
    assert json.loads((reader / "reader.json").read_text(encoding="utf-8")) == card


def test_the_threshold_keeps_a_margin_below_the_least_confident_seed_question() -> None:
    """A seed dev question decides the threshold with room to spare: placed at its confidence,
    the precision's rounding decided it (answered in bf16, refused in float32)."""
    import numpy as np

    from rag.answer.span_answer import FEATURES

    zero = tuple(0.0 for _ in FEATURES)
    rows = [cal.Row(f"q{i}", "a", "answerable", 1, zero, 0.8, True, True, True, 1.0) for i in range(20)]
    rows.append(cal.Row("s", "seed", "seed", 1, zero, 1.0, True, True, True, 5.0))
    conf = np.array([0.5 + 0.02 * i for i in range(20)] + [0.0896])
    answer_at, _ = cal.choose_thresholds(rows, conf, 0.05)
    assert answer_at < 0.0896
    logit = lambda p: np.log(p / (1 - p))  # noqa: E731
    assert logit(0.0896) - logit(answer_at) >= cal.SEED_MARGIN - 1e-6
    # without seed questions the threshold is the answerable questions' own
    answer_at, _ = cal.choose_thresholds(rows[:-1], conf[:-1], 0.05)
    assert abs(answer_at - 0.52) < 1e-5
