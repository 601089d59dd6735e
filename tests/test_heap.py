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
