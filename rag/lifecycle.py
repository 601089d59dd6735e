"""The index against its sources: what is new, changed or gone since the last build."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .errors import IndexError_
from .loaders import collect_paths, source_name
from .store import current_version, read_manifest


@dataclass(frozen=True)
class IndexStatus:
    """How an index compares with the files it should hold.

    ``exists`` is False when there is no readable index; then every file counts as new.
    """

    index_dir: str
    exists: bool
    model: str | None
    documents: int
    chunks: int
    created: str | None
    new: tuple[str, ...]
    changed: tuple[str, ...]
    removed: tuple[str, ...]
    problem: str | None = None

    @property
    def stale(self) -> bool:
        return not self.exists or bool(self.new or self.changed or self.removed)


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def index_status(index_dir: str | os.PathLike[str], paths: Sequence[str | os.PathLike[str]]) -> IndexStatus:
    """Compare the index's manifest (sha256 per source) with the files under ``paths``."""
    files, _ = collect_paths(paths)
    on_disk = {source_name(f): f for f in files}
    try:
        manifest = read_manifest(current_version(Path(index_dir)))
    except IndexError_ as exc:
        return IndexStatus(str(index_dir), False, None, 0, 0, None, tuple(sorted(on_disk)), (), (), str(exc))
    indexed = {r.source: r.sha256 for r in manifest.documents}
    new = sorted(s for s in on_disk if s not in indexed)
    removed = sorted(s for s in indexed if s not in on_disk)
    changed = sorted(s for s in on_disk if s in indexed and _file_sha256(on_disk[s]) != indexed[s])
    return IndexStatus(
        str(index_dir), True, manifest.model, len(manifest.documents), manifest.chunks, manifest.created,
        tuple(new), tuple(changed), tuple(removed),
    )
