"""The dense side of an index: which FAISS index holds the vectors, and how it is searched.

Small collections are scanned exactly (``IndexFlatIP``). From ``IndexSettings.ann_min_chunks``
chunks on, the exact scan is what a search costs, and the vectors go into an inverted-file
index (``IndexIVFFlat``, inner product: the vectors are normalised) whose number of probed
lists is chosen when the version is written: twice the smallest of :data:`NPROBES` at which
the top 10 of sampled chunk vectors (each one's own row left out) agree with the exact top 10
on at least ``IndexSettings.ann_recall`` of their rows. Questions are not chunks: on DRCD dev
(2,140 chunks, 54 lists) the sample reached 0.996 at 32 probes where 300 real questions got
0.991, and 1.0 at 64; the doubling is that margin. The choice and the recall measured are
recorded in the manifest (:class:`AnnRecord`); loading applies them. Both kinds are stored as
``vectors.faiss`` (row i is chunk i either way, and the vectors are read back from it).

IVF rather than HNSW: a version is rebuilt whole on every add or remove, and at 100k chunks
IVF's k-means and assignment take seconds where HNSW's graph took 73 s here.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from rag.settings import IndexSettings

#: probed lists tried, in order, until the sample's recall reaches the target
NPROBES: tuple[int, ...] = (4, 8, 16, 32, 64, 128, 256, 512)
#: chunk vectors whose neighbours are checked against the exact scan
RECALL_SAMPLE = 300
#: the k of recall@k
RECALL_K = 10
_SEED = 20261201


@dataclass(frozen=True)
class AnnRecord:
    """How a version's approximate index was made and how well it finds the exact neighbours."""

    kind: str
    nlist: int
    nprobe: int
    recall_at_10: float
    sample: int

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Any) -> "AnnRecord | None":
        if not data:
            return None
        return cls(str(data["kind"]), int(data["nlist"]), int(data["nprobe"]), float(data["recall_at_10"]),
                   int(data["sample"]))


def lists_for(n: int) -> int:
    """IVF lists for ``n`` vectors: 4 sqrt(n), FAISS's usual rule, with at least 39 vectors a
    list to train on (FAISS warns below that)."""
    return max(1, min(int(round(4 * math.sqrt(n))), n // 39))


def build(vectors: np.ndarray, dimension: int, settings: IndexSettings) -> tuple[Any, AnnRecord | None]:
    """The FAISS index for ``vectors`` (float32, normalised rows) and its record (None: exact)."""
    import faiss

    x = np.ascontiguousarray(vectors, dtype=np.float32)
    flat = faiss.IndexFlatIP(dimension)
    if len(x):
        flat.add(x)
    if len(x) < max(settings.ann_min_chunks, 1) or settings.ann_min_chunks <= 0:
        return flat, None
    nlist = lists_for(len(x))
    quantizer = faiss.IndexFlatIP(dimension)
    ivf = faiss.IndexIVFFlat(quantizer, dimension, nlist, faiss.METRIC_INNER_PRODUCT)
    ivf.cp.seed = _SEED
    ivf.train(x)
    ivf.add(x)
    rng = np.random.default_rng(_SEED)
    sample = rng.choice(len(x), size=min(RECALL_SAMPLE, len(x)), replace=False)
    queries = x[sample]
    _, exact = flat.search(queries, RECALL_K + 1)
    truth = [_others(row, int(s)) for row, s in zip(exact, sample)]
    chosen, recall = NPROBES[-1], 0.0
    for nprobe in NPROBES:
        ivf.nprobe = min(nprobe, nlist)
        _, found = ivf.search(queries, RECALL_K + 1)
        recall = _recall(found, sample, truth)
        chosen = ivf.nprobe
        if recall >= settings.ann_recall or nprobe >= nlist:
            break
    if recall < settings.ann_recall:  # no setting reaches it: the exact scan, never a worse answer
        return flat, None
    ivf.nprobe = min(2 * chosen, nlist)  # the margin for questions (see the module's docstring)
    _, found = ivf.search(queries, RECALL_K + 1)
    return ivf, AnnRecord("ivf-flat", nlist, ivf.nprobe, round(_recall(found, sample, truth), 4), len(sample))


def _others(row: np.ndarray, own: int) -> set[int]:
    """The first :data:`RECALL_K` ids of a ranked row, the query's own row left out."""
    return set([int(i) for i in row.tolist() if i >= 0 and i != int(own)][:RECALL_K])


def _recall(found: np.ndarray, sample: np.ndarray, truth: list[set[int]]) -> float:
    hits = sum(len(_others(row, s) & want) for row, s, want in zip(found, sample, truth))
    total = sum(len(want) for want in truth)
    return hits / total if total else 1.0


def prepare(index: Any, record: AnnRecord | None) -> Any:
    """A loaded ``vectors.faiss`` made ready to search and to read vectors back from."""
    import faiss

    if record is not None:
        ivf = faiss.extract_index_ivf(index)
        ivf.nprobe = record.nprobe
        ivf.make_direct_map()
    return index
