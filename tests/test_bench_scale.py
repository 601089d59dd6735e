"""The scale benchmark runs end to end (a small size, the test embedder): its build and query
phases, the JSON result and the plot, so that it cannot rot between the runs it is made for."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests" / "fixtures"


def test_bench_scale_small(tmp_path: Path) -> None:
    data = sorted(FIXTURE.glob("*squad*.json")) or sorted(FIXTURE.glob("*.json"))
    if not data:
        pytest.fail("no SQuAD-format fixture in tests/fixtures")
    out, png = tmp_path / "scale.json", tmp_path / "scale.png"
    subprocess.run([sys.executable, "-m", "benchmarks.bench_scale", "--sizes", "60,200", "--queries", "4",
                    "--model", "test-hash", "--data", str(data[0]), "--out", str(out), "--plot", str(png)],
                   cwd=ROOT, check=True, capture_output=True, text=True, timeout=600)
    result = json.loads(out.read_text(encoding="utf-8"))
    sizes = result["sizes"]
    assert [s["build"]["size_target"] for s in sizes] == [60, 200]
    for s in sizes:
        b, q = s["build"], s["query"]
        assert b["chunks"] >= b["size_target"] and b["peak_rss_mib"] > 0 and set(b["stages_s"]) >= {"embed_stage", "write"}
        assert q["search"]["hybrid"]["n"] == 4 and q["encode_query"]["n"] == 4 and q["ask"]["p95_ms"] > 0
    assert png.stat().st_size > 0
