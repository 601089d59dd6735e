"""Making sure the index exists and matches the documents before the chat serves.

Library code: it reports through the ``progress`` callback and returns what it did; the
caller (the app's command line) decides what to print.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from rag.index.embedding import canonical_name
from rag.index.status import IndexStatus, index_status
from rag.index.writer import IndexWriter
from rag.pipeline import QA, load
from rag.types import Progress


@dataclass(frozen=True)
class StartupPlan:
    """Whether the index must be (re)built before serving, with which model, and why."""

    rebuild: bool
    model: str | None
    reason: str
    status: IndexStatus


@dataclass(frozen=True)
class StartupResult:
    plan: StartupPlan
    qa: QA | None
    documents: int
    chunks: int
    seconds: float
    skipped: tuple[str, ...]


def plan_startup(index_dir: Path, sources: Sequence[Path], model: str | None) -> StartupPlan:
    """Rebuild when the index is missing, stale against ``sources``, or built with another
    model than the one asked for. Without ``model``, a rebuild keeps the index's model."""
    status = index_status(index_dir, list(sources))
    wanted = canonical_name(model) if model else None
    if not status.exists:
        return StartupPlan(True, wanted, "no index yet", status)
    if wanted is not None and status.model != wanted:
        return StartupPlan(True, wanted, f"the index was built with {status.model}, {wanted} was asked for", status)
    if status.stale:
        parts = []
        for label, names in (("new", status.new), ("changed", status.changed), ("removed", status.removed)):
            if names:
                parts.append(f"{len(names)} {label}")
        return StartupPlan(True, status.model, "documents changed since the last build: " + ", ".join(parts), status)
    return StartupPlan(False, status.model, "the index is up to date", status)


def ensure_index(
    index_dir: Path, sources: Sequence[Path], model: str | None, progress: Progress | None = None
) -> StartupResult:
    """Bring the index in step with ``sources`` when :func:`plan_startup` says so (only new or
    changed documents are embedded; another model means a full rebuild). When it builds, the loaded QA object
    is returned too, so that nothing loads twice."""
    plan = plan_startup(index_dir, sources, model)
    if not plan.rebuild:
        return StartupResult(plan, None, plan.status.documents, plan.status.chunks, 0.0, ())
    from rag.index.embedding import E5_SMALL, load_embedder

    embedder = load_embedder(plan.model)
    report = IndexWriter(index_dir, model=plan.model, embedder=embedder, progress=progress).sync(list(sources))
    # the packaged e5 answers on its plain-torch runtime, which the span reader shares; any
    # other model keeps answering with the one it built with
    qa = load(index_dir, embedder=None if canonical_name(plan.model) == E5_SMALL else embedder)
    info = report.info
    return StartupResult(plan, qa, info.documents, info.chunks, info.seconds, tuple(str(e) for e in report.errors))
