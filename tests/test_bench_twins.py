"""The twin benchmark: each kind is asked through the shipped answer path, only of calibration
articles, and the real unanswerables are counted apart."""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks import bench_twins


def _squad(path: Path, articles: list[tuple[str, list[tuple[str, list[tuple[str, str | None]]]]]]) -> Path:
    data = []
    for title, paragraphs in articles:
        paras = []
        for p_i, (ctx, qas) in enumerate(paragraphs):
            items = []
            for q_i, (q, a) in enumerate(qas):
                qid = f"{title}-{p_i}-{q_i}"
                if a is None:
                    items.append({"id": qid, "question": q, "answers": [], "is_impossible": True})
                else:
                    items.append({"id": qid, "question": q, "answers": [{"text": a, "answer_start": ctx.index(a)}]})
            paras.append({"context": ctx, "qas": items})
        data.append({"title": title, "paragraphs": paras})
    path.write_text(json.dumps({"version": "v2.0", "data": data}, ensure_ascii=False), encoding="utf-8")
    return path


def test_asks_every_kind_of_the_calibration_articles_only(tmp_path: Path) -> None:
    zh = _squad(tmp_path / "zh.json", [
        ("长江", [("长江全长约6300公里，流经青海、四川、湖北等省份。", [("长江全长多少公里？", "6300公里")]),
                 ("黄河全长约5464公里，流经甘肃、宁夏、河南等省份。", [("黄河流经哪些省份？", "甘肃、宁夏、河南")])]),
        ("北京", [("北京市的人口超过两千万，面积一万六千平方公里。", [("北京市的人口有多少？", "两千万")])]),
    ])
    en = _squad(tmp_path / "en.json", [
        ("film", [("Spectre was directed by Sam Mendes. It was released on 26 October 2015.",
                   [("Who directed Spectre?", "Sam Mendes"), ("Who produced Spectre in 2015?", None)]),
                  ("The screenplay was written by John Logan and Neal Purvis. Filming began in Rome in 2014.",
                   [("Where did filming of Spectre begin?", "Rome")])]),
    ])
    ids = [f"长江-{p}-0" for p in (0, 1)] + ["film-0-0", "film-0-1", "film-1-0"]
    split = tmp_path / "split.json"
    split.write_text(json.dumps({"calibration_ids": ids, "validation_ids": ["北京-0-0"]}), encoding="utf-8")
    out = tmp_path / "twins.json"
    assert bench_twins.main(["--drcd", str(zh), "--drcd-index", str(tmp_path / "izh"), "--squad", str(en),
                             "--squad-index", str(tmp_path / "ien"), "--ids", str(split), "--model", "test-hash",
                             "--json", str(out)]) == 0
    result = json.loads(out.read_text(encoding="utf-8"))
    assert result["zh"]["answerable"]["questions"] == 2  # the validation article's question is not asked
    assert result["en"]["answerable"]["questions"] == 2 and result["en"]["real"]["questions"] == 1
    assert set(result["zh"]) == {"answerable", "twin", "inside"}
    for lang in ("zh", "en"):
        for kind in result[lang].values():
            assert 0.0 <= kind["refused"] <= 1.0 and len(kind["samples"]) == min(kind["questions"], bench_twins.SAMPLES)
    assert result["en"]["inside"]["questions"] >= 1 and result["zh"]["inside"]["questions"] >= 1
    asked = [s["question"] for s in result["en"]["inside"]["samples"]]
    assert all(q not in ("Who directed Spectre?", "Where did filming of Spectre begin?") for q in asked)
