"""The dense side of an index: which FAISS index holds the vectors, and how it is searched.

Small collections are scanned exactly (``IndexFlatIP``). From ``IndexSettings.ann_min_chunks``
chunks on, the exact scan is what a search costs, and one of two faster indexes is chosen when
the version is written, each only where a sample of chunk vectors (each one's own row left out)
finds at least ``IndexSettings.ann_recall`` of the exact top 10, counted by score (ties are
interchangeable):

1. an inverted-file index (``IndexIVFFlat``, inner product: the vectors are normalised) probing
   twice the smallest of :data:`NPROBES` lists that reaches the recall. Questions are not chunks:
   on DRCD dev (2,140 chunks, 54 lists) the sample reached 0.996 at 32 probes where 300 real
   questions got 0.991, and 1.0 at 64; the doubling is that margin. It is kept only if it probes
   at most :data:`IVF_MAX_SHARE` of its lists: beyond that it scans more than the next kind does.
2. else an 8-bit scalar-quantised scan whose best ``k_factor * k`` are rescored exactly
   (``IndexScalarQuantizer`` in ``IndexRefineFlat``), ``k_factor`` twice the smallest of
   :data:`K_FACTORS` that reaches the recall (the same margin). On the 100k benchmark's
   vectors (``benchmarks/README.md``), where IVF reached only 0.95 at 512 of 1,265 lists, it
   found 1.000 in 4.0 ms against 12.1 ms for the exact scan, one thread.
3. else the exact scan: never a worse answer.

The choice and the recall measured are recorded in the manifest (:class:`AnnRecord`); loading
applies them. Every kind is stored as ``vectors.faiss`` (row i is chunk i, and the vectors are
read back from it exactly: IVF stores them whole, the rescoring index keeps a full copy).

IVF rather than HNSW: a version is rebuilt whole on every add or remove, and at 100k chunks
IVF's k-means and assignment take seconds where HNSW's graph took 73 s here (and reached
0.985 at efSearch 512).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from rag.index.heap import release_freed_memory
from rag.settings import IndexSettings

#: probed lists tried, in order, until the sample's recall reaches the target
NPROBES: tuple[int, ...] = (4, 8, 16, 32, 64, 128, 256, 512)
#: IVF is kept only if it probes at most this share of its lists: the 8-bit scan with exact
#: rescoring costs a third to a half of the exact scan at 100k (4.0 against 12.1 ms on a quiet
#: core, 5.9 against 11.8 with the other core training), and an IVF search probing a share p
#: of its lists scans about p of the vectors, so beyond a quarter it is not clearly faster
IVF_MAX_SHARE = 0.25
#: rescoring factors tried for the 8-bit scan (candidates rescored exactly: k_factor * k)
K_FACTORS: tuple[int, ...] = (1, 2, 4, 8, 16)
#: chunk vectors whose neighbours are checked against the exact scan
RECALL_SAMPLE = 300
#: the k of recall@k
RECALL_K = 10
#: scores this close count as equal (float32 inner products of the same pair, summed in another order)
SCORE_TIE = 1e-5
_SEED = 20261201


@dataclass(frozen=True)
class AnnRecord:
    """How a version's approximate index was made and how well it finds the exact neighbours."""

    kind: str  # "ivf-flat" or "sq8-refine"
    nlist: int  # IVF lists (0 for the 8-bit scan)
    nprobe: int  # IVF lists probed (0 for the 8-bit scan)
    recall_at_10: float
    sample: int
    k_factor: int = 0  # the 8-bit scan's rescoring factor (0 for IVF)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Any) -> "AnnRecord | None":
        if not data:
            return None
        return cls(str(data["kind"]), int(data["nlist"]), int(data["nprobe"]), float(data["recall_at_10"]),
                   int(data["sample"]), int(data.get("k_factor", 0)))


def lists_for(n: int) -> int:
    """IVF lists for ``n`` vectors: 4 sqrt(n), FAISS's usual rule, with at least 39 vectors a
    list to train on (FAISS warns below that)."""
    return max(1, min(int(round(4 * math.sqrt(n))), n // 39))


def build(vectors: np.ndarray, dimension: int, settings: IndexSettings) -> tuple[Any, AnnRecord | None]:
    """The FAISS index for ``vectors`` (float32, normalised rows) and its record (None: exact)."""
    x = np.ascontiguousarray(vectors, dtype=np.float32)
    if len(x) < max(settings.ann_min_chunks, 1) or settings.ann_min_chunks <= 0:
        return _flat(x, dimension), None
    rng = np.random.default_rng(_SEED)
    sample = rng.choice(len(x), size=min(RECALL_SAMPLE, len(x)), replace=False)
    queries = x[sample]
    # the exact neighbours of the sample, by blocks of rows (no second full copy of the vectors)
    exact_scores, exact_ids = _exact_top(x, queries, RECALL_K + 1)
    bar = [_kth_score(scores, ids, int(own)) for scores, ids, own in zip(exact_scores, exact_ids, sample)]
    for attempt in (_ivf, _sq8_refine):
        found = attempt(x, dimension, settings, queries, sample, bar)
        if found is not None:
            return found
        release_freed_memory()  # the failed attempt's copy of the vectors, before the next (rag.index.heap)
    return _flat(x, dimension), None


def _ivf(x: np.ndarray, dimension: int, settings: IndexSettings, queries: np.ndarray, sample: np.ndarray,
         bar: list[float]) -> tuple[Any, AnnRecord] | None:
    """An IVF index reaching the recall while probing at most :data:`IVF_MAX_SHARE` of its lists."""
    import faiss

    nlist = lists_for(len(x))
    quantizer = faiss.IndexFlatIP(dimension)
    ivf = faiss.IndexIVFFlat(quantizer, dimension, nlist, faiss.METRIC_INNER_PRODUCT)
    ivf.cp.seed = _SEED
    ivf.train(x)
    ivf.add(x)
    for nprobe in NPROBES:
        probe = min(2 * nprobe, nlist)  # the margin for questions (see the module's docstring)
        if probe > max(1, int(IVF_MAX_SHARE * nlist)):
            break
        ivf.nprobe = min(nprobe, nlist)
        if _recall(*ivf.search(queries, RECALL_K + 1), sample, bar) >= settings.ann_recall:
            ivf.nprobe = probe
            recall = _recall(*ivf.search(queries, RECALL_K + 1), sample, bar)
            return ivf, AnnRecord("ivf-flat", nlist, ivf.nprobe, round(recall, 4), len(sample))
    del ivf, quantizer
    return None


def _sq8_refine(x: np.ndarray, dimension: int, settings: IndexSettings, queries: np.ndarray,
                sample: np.ndarray, bar: list[float]) -> tuple[Any, AnnRecord] | None:
    """An 8-bit scan rescoring its best ``k_factor * k`` exactly, reaching the recall."""
    import faiss

    base = faiss.IndexScalarQuantizer(dimension, faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT)
    index = faiss.IndexRefineFlat(base)
    index.train(x)
    index.add(x)
    for k_factor in K_FACTORS:
        index.k_factor = float(k_factor)
        if _recall(*index.search(queries, RECALL_K + 1), sample, bar) >= settings.ann_recall:
            index.k_factor = float(2 * k_factor)
            recall = _recall(*index.search(queries, RECALL_K + 1), sample, bar)
            return index, AnnRecord("sq8-refine", 0, 0, round(recall, 4), len(sample), 2 * k_factor)
    del index, base
    return None


def _flat(x: np.ndarray, dimension: int) -> Any:
    import faiss

    flat = faiss.IndexFlatIP(dimension)
    if len(x):
        flat.add(x)
    return flat


def _exact_top(x: np.ndarray, queries: np.ndarray, k: int, block: int = 16384) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` best inner products of each query over the rows of ``x`` (scores, ids; best
    first), computed block by block."""
    best_scores = np.full((len(queries), 0), -np.inf, dtype=np.float32)
    best_ids = np.zeros((len(queries), 0), dtype=np.int64)
    for s in range(0, len(x), block):
        scores = queries @ x[s:s + block].T
        ids = np.broadcast_to(np.arange(s, s + scores.shape[1], dtype=np.int64), scores.shape)
        scores = np.concatenate([best_scores, scores], axis=1)
        ids = np.concatenate([best_ids, ids], axis=1)
        keep = np.argsort(-scores, axis=1, kind="stable")[:, :k]
        best_scores = np.take_along_axis(scores, keep, axis=1)
        best_ids = np.take_along_axis(ids, keep, axis=1)
    return best_scores, best_ids


def _kth_score(scores: np.ndarray, ids: np.ndarray, own: int) -> float:
    """The exact :data:`RECALL_K`-th best score of a query, its own row left out."""
    kept = [float(s) for s, i in zip(scores.tolist(), ids.tolist()) if i >= 0 and i != own][:RECALL_K]
    return kept[-1] if len(kept) == RECALL_K else -math.inf


def _recall(scores: np.ndarray, ids: np.ndarray, sample: np.ndarray, bar: list[float]) -> float:
    """Share of the exact top :data:`RECALL_K` that the approximate search found, counted by
    score: a found row (not the query's own) scoring at least the exact k-th best score
    (less :data:`SCORE_TIE`) is a hit. Rows with equal scores are interchangeable: counted by
    id, a collection with repeated passages (the synthetic 100k corpus of
    ``benchmarks/bench_scale.py``, real collections with boilerplate) never reached 0.99 at any
    number of probes, because which of several identical rows FAISS returns is arbitrary."""
    hits = 0
    for row_scores, row_ids, own, kth in zip(scores, ids, sample, bar):
        found = [float(s) for s, i in zip(row_scores.tolist(), row_ids.tolist()) if i >= 0 and i != int(own)]
        hits += sum(1 for s in found[:RECALL_K] if s >= kth - SCORE_TIE)
    return hits / (RECALL_K * len(sample)) if len(sample) else 1.0


def prepare(index: Any, record: AnnRecord | None) -> Any:
    """A loaded ``vectors.faiss`` made ready to search and to read vectors back from."""
    import faiss

    if record is not None and record.kind == "ivf-flat":
        ivf = faiss.extract_index_ivf(index)
        ivf.nprobe = record.nprobe
        ivf.make_direct_map()
    elif record is not None and record.kind == "sq8-refine":
        index.k_factor = float(record.k_factor)
    return index
