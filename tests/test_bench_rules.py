"""The rule ablation harness: every variant names real settings, and a QA gets its own back."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import rag
from benchmarks import bench_rules
from rag.settings import ReaderSettings, SpanAnswerSettings


def test_every_variant_turns_off_settings_that_exist() -> None:
    parts = {"reader": ReaderSettings(), "span": SpanAnswerSettings()}
    for name, changes in bench_rules.VARIANTS.items():
        assert changes and set(changes) <= set(parts), name
        for part, values in changes.items():
            changed = dataclasses.replace(parts[part], **values)  # TypeError on a name that is not a setting
            assert changed != parts[part], f"{name}: turning it off changes nothing"


def test_configure_applies_a_variant_and_gives_the_loaded_settings_back(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.txt").write_text("前三季度，全国规模以上工业增加值同比增长5.8%。", encoding="utf-8")
    rag.build_index(docs, tmp_path / "index", model="test-hash")
    qa = rag.load(tmp_path / "index")
    loaded = qa.reader.settings
    bench_rules.configure(qa, bench_rules.VARIANTS["typed_spans"])
    assert qa.reader.settings == dataclasses.replace(loaded, typed_kinds=())
    assert qa.ask("前三季度工业增加值同比增长多少？").span is None
    bench_rules.configure(qa, {})
    assert qa.reader.settings == loaded and qa.ask("前三季度工业增加值同比增长多少？").span == "5.8%"


def test_the_table_has_a_row_a_variant() -> None:
    row = {"drcd_val": {"f1": 0.74, "answer_hit_rate": 0.89, "wrong_refusal_rate": 0.025}, "who_is": {"questions": 16, "right": 13}}
    table = bench_rules.render({"all rules": row, "no kind_bonus": {}}).splitlines()
    assert len(table) == 4 and "| all rules | 0.740 | 0.890 | 2.5% |" in table[2] and "13/16" in table[2]
    assert table[3].startswith("| no kind_bonus | - |")
