"""The build-memory benchmark's accounting (benchmarks/bench_build_memory.py)."""

from benchmarks.bench_build_memory import by_stage, resident_by_kind

SMAPS = """\
55d0c0000000-55d0c8000000 rw-p 00000000 00:00 0                          [heap]
Rss:              204800 kB
Anonymous:        204800 kB
7f0000000000-7f0010000000 rw-p 00000000 00:00 0
Rss:              102400 kB
7f0010000000-7f0030000000 rw-p 00000000 fd:01 1234                       /cache/model.safetensors
Rss:              307200 kB
Anonymous:             0 kB
7ffc00000000-7ffc00100000 rw-p 00000000 00:00 0                          [stack]
Rss:                1024 kB
"""


def test_resident_memory_is_split_into_heap_anonymous_and_file_pages() -> None:
    assert resident_by_kind(SMAPS) == {"heap": 200, "anon": 101, "file": 300}
    assert resident_by_kind("") == {"heap": 0, "anon": 0, "file": 0}


def test_each_stage_keeps_its_largest_sample_of_each_kind_in_order() -> None:
    samples = [
        {"stage": "embed", "total": 10, "heap": 5, "anon": 3, "file": 2},
        {"stage": "embed", "total": 12, "heap": 4, "anon": 3, "file": 5},
        {"stage": "bm25", "total": 8, "heap": 6, "anon": 1, "file": 1},
    ]
    got = by_stage(samples)
    assert list(got) == ["embed", "bm25"]
    assert got["embed"] == {"total": 12, "heap": 5, "anon": 3, "file": 5}
