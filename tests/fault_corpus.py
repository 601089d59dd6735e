"""The small corpus the crash-safety tests write and rewrite (folder and PostgreSQL stores alike):
``BASE`` before a change, ``NEW`` after it (a file removed, one changed, one added). The texts
are ``benchmarks/bench_faults.py``'s, so the benchmark and the tests kill writers over the same
collection."""

from __future__ import annotations

import shutil
from pathlib import Path

from benchmarks.bench_faults import BASE, NEW

__all__ = ["BASE", "NEW", "fill"]


def fill(folder: Path, docs: dict[str, str]) -> Path:
    """``folder`` made to hold exactly ``docs`` (name -> text)."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    for name, text in docs.items():
        (folder / name).write_text(text, encoding="utf-8")
    return folder
