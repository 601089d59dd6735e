"""Making sure the index exists and matches the documents before the chat serves.

Library code: it reports through the ``progress`` callback and returns what it did; the
caller (the app's command line) decides what to print.

Files the index's record of excluded documents names (:mod:`rag.index.exclusions`, removed in
the Documents tab) are neither "new" nor a reason to build: the sync leaves them out. One
that the index still holds (a removal cut short) is a reason to sync, which drops it. An
unreadable record raises :class:`rag.index.exclusions.ExclusionRecordError` (naming the file)
before anything is written.

The index is a folder or a ``postgresql://`` (``postgres://``) URL (:func:`rag.index.folder_store.index_location`);
the check and the sync are the same on both, except that a database index keeps no record of
excluded documents (the record is a file beside a folder index, and the writer's sync reads it
from a folder only): there every file of the documents folder is synced, and a file leaves the
index when it leaves the folder (the chat offers only uploads for removal there).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from rag.errors import IndexError_
from rag.index.embedding import canonical_name
from rag.index.exclusions import excluded_sources
from rag.index.folder_store import FolderStore
from rag.index.status import IndexStatus, index_status
from rag.index.writer import IndexWriter
from rag.pipeline import QA, load
from rag.types import Progress
from rag.index.folder_store import index_location


@dataclass(frozen=True)
class StartupPlan:
    """Whether the index must be (re)built before serving, with which model, and why."""

    rebuild: bool
    model: str | None
    reason: str
    status: IndexStatus
    excluded: tuple[str, ...] = ()
    """Sources the record of excluded documents names (left out of the index)."""


@dataclass(frozen=True)
class StartupResult:
    plan: StartupPlan
    qa: QA | None
    documents: int
    chunks: int
    seconds: float
    skipped: tuple[str, ...]
    excluded: tuple[str, ...] = ()


def plan_startup(index_dir: str | os.PathLike[str], sources: Sequence[Path], model: str | None) -> StartupPlan:
    """Rebuild when the index (a folder or a database URL) is missing, stale against
    ``sources``, or built with another model than the one asked for. Without ``model``, a
    rebuild keeps the index's model. Excluded files (a folder index's record) are not counted
    as new or changed; one still indexed counts as a change."""
    index = index_location(index_dir)
    status = index_status(index, list(sources))
    excluded = excluded_sources(index) if isinstance(index, Path) and index.is_dir() else frozenset()
    still: list[str] = []
    if excluded:
        status = replace(status, new=tuple(s for s in status.new if s not in excluded),
                         changed=tuple(s for s in status.changed if s not in excluded))
        if status.exists:
            try:
                indexed = {r.source for r in FolderStore(index).manifest()[0].documents}
            except IndexError_:
                indexed = set()
            still = sorted(excluded & indexed)
    left_out = tuple(sorted(excluded))
    wanted = canonical_name(model) if model else None
    if not status.exists:
        return StartupPlan(True, wanted, "no index yet", status, left_out)
    if wanted is not None and status.model != wanted:
        return StartupPlan(True, wanted, f"the index was built with {status.model}, {wanted} was asked for", status,
                           left_out)
    if status.stale or still:
        parts = []
        for label, names in (("new", status.new), ("changed", status.changed), ("removed", status.removed),
                             ("excluded but still indexed", still)):
            if names:
                parts.append(f"{len(names)} {label}")
        return StartupPlan(True, status.model, "documents changed since the last build: " + ", ".join(parts), status,
                           left_out)
    return StartupPlan(False, status.model, "the index is up to date", status, left_out)


def ensure_index(
    index_dir: str | os.PathLike[str], sources: Sequence[Path], model: str | None, progress: Progress | None = None
) -> StartupResult:
    """Bring the index (a folder or a database URL) in step with ``sources`` when
    :func:`plan_startup` says so (only new or changed documents are embedded; another model
    means a full rebuild). When it builds, the loaded QA object is returned too, so that
    nothing loads twice."""
    index = index_location(index_dir)
    plan = plan_startup(index, sources, model)
    if not plan.rebuild:
        return StartupResult(plan, None, plan.status.documents, plan.status.chunks, 0.0, (), plan.excluded)
    from rag.index.embedding import E5_SMALL, load_embedder

    embedder = load_embedder(plan.model)
    report = IndexWriter(index, model=plan.model, embedder=embedder, progress=progress).sync(list(sources))
    # the packaged e5 answers on its plain-torch runtime, which the span reader shares; any
    # other model keeps answering with the one it built with
    qa = load(index, embedder=None if canonical_name(plan.model) == E5_SMALL else embedder)
    info = report.info
    return StartupResult(plan, qa, info.documents, info.chunks, info.seconds, tuple(str(e) for e in report.errors),
                         plan.excluded)
