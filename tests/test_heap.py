"""Memory given back between build stages (rag.index.heap): the model keeps working after its
weight pages are dropped, and the maps parser finds only weight files."""

import numpy as np

from rag.index import heap

MAPS = """7f467e600000-7f469a6d6000 rw-p 00000000 fe:00 16039953   /cache/models/e5/model.safetensors
7f46bb89d000-7f46bb8d9000 r--p 00000000 fe:00 5375133    /venv/site-packages/safetensors/_safetensors_rust.abi3.so
7f46a8000000-7f46a8032000 rw-p 00000000 00:00 0
7ffd0e1c0000-7ffd0e1e1000 rw-p 00000000 00:00 0          [stack]
"""


def test_weight_mappings_are_the_weight_files_only() -> None:
    assert heap.weight_mappings(MAPS) == [(0x7F467E600000, 0x7F469A6D6000)]
    assert heap.weight_mappings("") == []


def test_release_calls_are_safe_anywhere() -> None:
    assert isinstance(heap.release_freed_memory(), bool)
    assert heap.release_model_pages() >= 0


def test_a_mapped_file_reads_the_same_after_its_pages_are_dropped(tmp_path, monkeypatch) -> None:
    path = tmp_path / "w.safetensors"
    data = np.arange(1 << 18, dtype=np.float32)
    data.tofile(path)
    mapped = np.memmap(path, dtype=np.float32, mode="c")  # private and writable, as safetensors maps
    assert float(mapped.sum()) == float(data.sum())
    assert heap.release_model_pages() >= 0
    assert np.array_equal(mapped, data)
    mapped[0] = -1.0  # a page this process changed is kept, not read back from the file
    heap.release_model_pages()
    assert mapped[0] == -1.0 and np.array_equal(mapped[1:], data[1:])


SMAPS = """7f467e600000-7f469a6d6000 rw-p 00000000 fe:00 16039953   /cache/models/e5/model.safetensors
Size:             462732 kB
Rss:              311000 kB
Anonymous:             0 kB
VmFlags: rd wr mr mw me ac sd
7f46a8000000-7f46a8032000 rw-p 00000000 00:00 0
Rss:                 200 kB
Anonymous:           200 kB
"""


def test_changed_pages_are_counted_per_mapping() -> None:
    assert heap.changed_pages(SMAPS) == {0x7F467E600000: 0, 0x7F46A8000000: 200 * 1024}
    assert heap.changed_pages("") == {}


def test_a_clean_mapping_leaves_the_resident_set(tmp_path) -> None:
    path = tmp_path / "big.safetensors"
    data = np.arange(1 << 22, dtype=np.float32)  # 16 MiB
    data.tofile(path)
    mapped = np.memmap(path, dtype=np.float32, mode="c")

    def resident_kib() -> int:
        with open("/proc/self/smaps", encoding="utf-8") as fh:
            text = fh.read()
        rss, inside = 0, False
        for line in text.splitlines():
            head = line.split(maxsplit=1)[0] if line.strip() else ""
            if "-" in head and not head.endswith(":"):
                inside = line.rstrip().endswith("big.safetensors")
            elif inside and head == "Rss:":
                rss += int(line.split()[1])
        return rss

    assert float(mapped.sum()) == float(data.sum())
    before = resident_kib()
    assert before >= 8 * 1024  # read in: resident
    heap.release_model_pages()
    assert resident_kib() < before // 4  # unmapped, though the page cache still holds the file
    assert np.array_equal(mapped, data)
