"""The misses file: every question a mode got wrong (:attr:`QuestionResult.miss`), one JSON
line each (:func:`write_report`)."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

from rag.errors import RagError
from rag.evaluation.results import EvalResult

__all__ = ["write_report"]


def write_report(result: EvalResult, path: str | Path) -> int:
    """Write every miss (see :attr:`QuestionResult.miss`) as one JSON line; returns the count."""
    p = Path(path)
    n = 0
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        with open(p, "w", encoding="utf-8") as f:
            for run in result.runs:
                for r in run.questions:
                    if not r.miss:
                        continue
                    row = asdict(r)
                    row["answerable"] = r.answerable
                    f.write(json.dumps(row, ensure_ascii=False) + "\n")
                    n += 1
    except OSError as e:
        raise RagError(f"{p}: cannot write the report ({e.strerror or e})") from e
    return n
