"""Thread counts for encoding (rag.encoder.torch_threads): a batch uses the cores this process may
run on, not every core of the machine."""

import os

import pytest

from rag.encoder import torch_threads


def test_a_batch_uses_the_cores_the_process_may_run_on(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {3}, raising=False)
    assert torch_threads.usable_cores() == 1
    assert torch_threads.threads_for(100) == 1
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2}, raising=False)
    assert torch_threads.threads_for(100) == 3
    assert torch_threads.threads_for(1) == 1  # a question: one thread


def test_without_affinity_every_core_counts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(os, "sched_getaffinity", raising=False)
    assert torch_threads.usable_cores() == max(1, os.cpu_count() or 1)
