"""A published version in PostgreSQL as the answer path reads it (:class:`PgCollection`, a
:class:`rag.index.collection.Collection`): every question is a few queries, and nothing loads
the collection into memory.

Search (:class:`PgSearcher`), the same hybrid search as :class:`rag.index.retriever.Retriever`:

1. one round trip (a pipeline of statements): the question's terms with their ids and
   document frequencies and their postings' heads (``rag_postings``), and the dense side's
   candidates from the version's HNSW index (``ORDER BY embedding <#> q LIMIT n``, with
   ``hnsw.ef_search`` at the collection's ``ef_search`` (:data:`EF_SEARCH` unless given) or the
   candidate count if larger);
2. the lexical candidates are the chunks whose head impacts sum highest
   (:func:`rag.index.postings.head_scores`); with the dense ones, they are fetched in a second
   round trip (text, offsets, term ids, vector);
3. their BM25 scores are computed exactly from their term ids
   (:func:`rag.index.postings.exact_scores`), their cosines from their vectors, and the two are
   fused as the folder store fuses them (:func:`rag.index.retriever.fuse`).

Fusing in the client keeps one implementation of the arithmetic for both stores; the two round
trips move only the candidates (about 200 rows).

Documents are fetched by source when a reader needs one (and kept in a small cache); term
statistics come from ``rag_vocabulary``; a name in pinyin is looked for with a regular expression
over the documents' text (a sequential scan, only for English questions naming someone in pinyin).

Connections: up to :data:`POOL_SIZE`, one per request running at the same time.

A loaded collection reads its version's rows by id. Retention keeps the published version and
the one before it, so a collection loaded before a write keeps answering until a second write
removes its version; then a search says so (load the index again).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from rag.index import pg_rows as rows
from rag.index.collection import SAMPLE_CHARS
from rag.index.lexical import tokenize
from rag.index.pg_schema import IndexUnavailableError, connect, one_line, vectors_table
from rag.index.postings import LexicalStats, exact_scores, head_scores
from rag.index.retriever import QueryVector, checked_mode, dense_weight, fuse, query_vector
from rag.types import Document, Hit

if TYPE_CHECKING:
    from rag.index.embedding import Embedder
    from rag.index.loading import LoadWarning
    from rag.index.manifest import Manifest
    from rag.settings import IndexSettings

T = TypeVar("T")

#: ``hnsw.ef_search`` of the dense side's candidate query (at least the candidate count, since
#: pgvector returns at most ef_search rows). At 1M chunks with the shipped graph (m 48), over
#: 500 DRCD dev questions (``benchmarks/bench_pg.py scale``): recall@10 against an exact scan
#: 0.943 / 0.980 / 0.990 at 100 / 200 / 400, hybrid search p95 47.9 / 45.4 / 69.7 ms; 200 is
#: the least that reaches recall 0.98, and 400 is past the 50 ms budget. README "PostgreSQL at
#: scale".
EF_SEARCH = 200

#: documents kept in memory after a reader fetched them: at most this many, and this many
#: characters in all (a chat quotes the same few documents again and again)
_DOCUMENT_CACHE = 256
_DOCUMENT_CACHE_CHARS = 32_000_000
#: term statistics kept in memory
_TERM_CACHE = 50_000


#: connections a loaded index opens at most, one per request running at the same time (the
#: chat answers several users at once); a request beyond them waits for one to be free
POOL_SIZE = 4


class _Connections:
    """Autocommit connections to the read target: one per concurrent request (at most
    :data:`POOL_SIZE`), each opened when first needed and opened again once when the server
    dropped it."""

    def __init__(self, url: str, where: str, ef_search: int = EF_SEARCH, size: int = POOL_SIZE) -> None:
        self.url = url
        self.where = where
        self.ef_search = ef_search
        self._idle: list[Any] = []
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(size)

    def _open(self) -> Any:
        from pgvector.psycopg import register_vector

        conn = connect(self.url, self.where, autocommit=True)
        conn.execute(f"SET hnsw.ef_search = {int(self.ef_search)}")  # type: ignore[arg-type]
        register_vector(conn)
        return conn

    def run(self, body: Callable[[Any], T]) -> T:
        import psycopg

        with self._slots:
            with self._lock:
                conn = self._idle.pop() if self._idle else None
            try:
                for attempt in range(2):
                    if conn is None or conn.closed:
                        conn = self._open()
                    try:
                        return body(conn)
                    except psycopg.OperationalError as exc:
                        conn.close()
                        conn = None
                        if attempt == 1:
                            raise IndexUnavailableError(f"{self.where}: database error ({one_line(exc)})") from None
                    except psycopg.Error as exc:
                        # not back to the pool: its session may be left in a state the failure interrupted
                        conn.close()
                        conn = None
                        raise IndexUnavailableError(f"{self.where}: database error ({one_line(exc)})") from None
                raise AssertionError("unreachable")  # pragma: no cover
            finally:
                if conn is not None and not conn.closed:
                    with self._lock:
                        self._idle.append(conn)

    def close(self) -> None:
        """Close the idle connections (one in use goes back to the pool, and is reused)."""
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()


class _Documents(Mapping[str, Document]):
    """A version's documents by source, fetched on access."""

    def __init__(self, collection: "PgCollection") -> None:
        self._c = collection
        self._cache: OrderedDict[str, Document] = OrderedDict()
        self._chars = 0
        self._lock = threading.Lock()

    def __getitem__(self, source: str) -> Document:
        with self._lock:
            if source in self._cache:
                self._cache.move_to_end(source)
                return self._cache[source]
        vid = self._c.version_id
        row = self._c.conn.run(lambda conn: conn.execute(
            "SELECT sha256, encoding, text, report FROM rag_documents WHERE version_id = %s AND source = %s",
            (vid, source)).fetchone())
        if row is None:
            raise KeyError(source)
        doc = rows.document_of(source, *row)
        with self._lock:
            if source not in self._cache:
                self._chars += len(doc.text)
            self._cache[source] = doc
            while len(self._cache) > 1 and (len(self._cache) > _DOCUMENT_CACHE or self._chars > _DOCUMENT_CACHE_CHARS):
                _, gone = self._cache.popitem(last=False)
                self._chars -= len(gone.text)
        return doc

    def __contains__(self, source: object) -> bool:
        if not isinstance(source, str):
            return False
        if source in self._cache:
            return True
        vid = self._c.version_id
        return bool(self._c.conn.run(lambda conn: conn.execute(
            "SELECT EXISTS (SELECT 1 FROM rag_documents WHERE version_id = %s AND source = %s)",
            (vid, source)).fetchone()[0]))

    def __iter__(self) -> Iterator[str]:
        vid = self._c.version_id
        sources = self._c.conn.run(lambda conn: [s for (s,) in conn.execute(
            "SELECT source FROM rag_documents WHERE version_id = %s ORDER BY position", (vid,))])
        return iter(sources)

    def __len__(self) -> int:
        return self._c.document_count


class PgCollection:
    """Version ``name`` (id ``version_id``) of the index at ``url``, read on ``read_url``'s
    server when given. ``search``: the version's ``rag_versions.search`` (BM25 statistics,
    postings head size, HNSW index)."""

    def __init__(self, url: str, where: str, version_id: int, name: str, manifest: "Manifest", search: dict[str, Any],
                 document_count: int, warning: "LoadWarning | None" = None, *, ef_search: int = EF_SEARCH) -> None:
        if not 1 <= int(ef_search) <= 1000:  # pgvector's range
            raise ValueError(f"ef_search must be between 1 and 1000, not {ef_search}")
        #: ``hnsw.ef_search`` of the dense side's candidate query (its recall against its latency)
        self.ef_search = int(ef_search)
        self.conn = _Connections(url, where, ef_search)
        self.where = where
        self.version_id = version_id
        self.name = name
        self._manifest = manifest
        self._warning = warning
        self.stats = LexicalStats(int(search["chunks"]), float(search["mean_terms"]), float(search["k1"]),
                                  float(search["b"]))
        self.document_count = document_count
        self._documents = _Documents(self)
        self._df: dict[str, tuple[int, int]] = {}  # term -> (term id, df); absent terms are (-1, 0)
        self._df_lock = threading.Lock()
        self._cjk: float | None = None

    def __repr__(self) -> str:
        return f"PgCollection({self.where!r}, version {self.name})"

    @property
    def path(self) -> Path:
        return Path(self.name)

    @property
    def manifest(self) -> "Manifest":
        return self._manifest

    @property
    def warning(self) -> "LoadWarning | None":
        return self._warning

    @property
    def documents(self) -> Mapping[str, Document]:
        return self._documents

    @property
    def chunk_count(self) -> int:
        return self._manifest.chunks

    # ------------------------------------------------------------ term statistics

    def terms(self, terms: list[str], conn: Any | None = None) -> dict[str, tuple[int, int]]:
        """``term -> (term id, df)`` for ``terms`` (``(-1, 0)`` for those the version lacks)."""
        with self._df_lock:
            known = {t: self._df[t] for t in terms if t in self._df}
        missing = sorted(set(terms) - set(known))
        if missing:
            def query(c: Any) -> list[tuple[str, int, int]]:
                return c.execute('SELECT term, term_id, df FROM rag_vocabulary WHERE version_id = %s AND '
                                 'term COLLATE "C" = ANY(%s)', (self.version_id, missing)).fetchall()
            found = {t: (int(i), int(d)) for t, i, d in (query(conn) if conn is not None else self.conn.run(query))}
            fresh = {t: found.get(t, (-1, 0)) for t in missing}
            self.remember(fresh)
            known.update(fresh)
        return known

    def remember(self, stats: dict[str, tuple[int, int]]) -> None:
        with self._df_lock:
            if len(self._df) + len(stats) > _TERM_CACHE:
                self._df = {}
            self._df.update(stats)

    def document_frequency(self, term: str) -> int:
        return self.terms([term])[term][1]

    # ------------------------------------------------------------ corpus

    def mentions(self, han: str, written: str) -> bool:
        like = "%" + written.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        pattern = han
        return bool(self.conn.run(lambda conn: conn.execute(
            "SELECT EXISTS (SELECT 1 FROM rag_documents WHERE version_id = %s AND (text ~ %s OR text ILIKE %s))",
            (self.version_id, pattern, like)).fetchone()[0]))

    def cjk_share(self, sample_chars: int = SAMPLE_CHARS) -> float:
        """As :func:`rag.index.collection.corpus_cjk_share`: over the first ``sample_chars`` of the
        documents in the version's order (fetched a few documents at a time)."""
        if self._cjk is None:
            from rag.normalize import cjk_share

            def sample(conn: Any) -> str:
                parts: list[str] = []
                budget, position = sample_chars, 0
                while budget > 0 and position < self.document_count:
                    batch = conn.execute("SELECT left(text, %s) FROM rag_documents WHERE version_id = %s AND "
                                         "position >= %s AND position < %s ORDER BY position",
                                         (budget, self.version_id, position, position + 64)).fetchall()
                    position += 64
                    for (text,) in batch:
                        parts.append(text[:max(0, budget)])
                        budget -= len(parts[-1])
                return "".join(parts)
            self._cjk = cjk_share(self.conn.run(sample))
        return self._cjk

    def searcher(self, embedder: "Embedder", settings: "IndexSettings") -> "PgSearcher":
        return PgSearcher(self, embedder, settings)

    def close(self) -> None:
        self.conn.close()


class PgSearcher:
    """Hybrid search of a :class:`PgCollection` (see the module's docstring)."""

    def __init__(self, collection: PgCollection, embedder: "Embedder", settings: "IndexSettings") -> None:
        self.collection = collection
        self.embedder = embedder
        self.settings = settings
        self._vectors = vectors_table(collection.manifest.dimension)

    def search(self, query: str, k: int = 5, mode: str | None = None,
               settings: "IndexSettings | None" = None) -> list[Hit]:
        settings = settings or self.settings
        mode = checked_mode(query, k, mode or settings.mode)
        c = self.collection
        n = c.chunk_count
        if n == 0:
            return []
        k = min(k, n)
        n_cand = min(n, max(settings.candidates, 4 * k))
        terms = tokenize(query) if mode in ("hybrid", "bm25") else []
        qv = query_vector(self.embedder, query, c.manifest.visibility, settings, force=mode == "dense") \
            if mode in ("hybrid", "dense") else None
        w = dense_weight(qv, c.manifest.visibility, settings)
        lexical = mode == "bm25" or (mode == "hybrid" and w <= 0.0)
        dense_only = mode == "dense"
        want_dense = qv is not None and not lexical
        return c.conn.run(lambda conn: self._search(conn, terms, qv, w, k, n_cand, lexical, dense_only, want_dense))

    def _search(self, conn: Any, terms: list[str], qv: QueryVector | None, w: float, k: int, n_cand: int,
                lexical: bool, dense_only: bool, want_dense: bool) -> list[Hit]:
        from pgvector import HalfVector

        c = self.collection
        vid = c.version_id
        unique = sorted(set(terms))
        with conn.pipeline():
            alive = conn.execute("SELECT EXISTS (SELECT 1 FROM rag_versions WHERE id = %s)", (vid,))
            lex = conn.execute(
                "SELECT v.term, v.term_id, v.df, p.chunk_ids, p.impacts FROM rag_vocabulary v "
                "LEFT JOIN rag_postings p ON p.version_id = v.version_id AND p.term_id = v.term_id "
                'WHERE v.version_id = %s AND v.term COLLATE "C" = ANY(%s)', (vid, unique), binary=True) \
                if unique and not dense_only else None
            dense = None
            if want_dense:
                assert qv is not None
                ef = max(c.ef_search, n_cand if not dense_only else k)
                if ef != c.ef_search:
                    conn.execute(f"SET hnsw.ef_search = {int(ef)}")  # type: ignore[arg-type]
                # the version id is a literal so that the planner uses the version's partial index
                dense = conn.execute(
                    f"SELECT chunk_id FROM {self._vectors} WHERE version_id = {int(vid)} "  # type: ignore[arg-type]
                    "ORDER BY embedding <#> %s LIMIT %s",
                    (HalfVector(np.asarray(qv.vector, dtype=np.float32)), k if dense_only else n_cand))
                if ef != c.ef_search:
                    conn.execute(f"SET hnsw.ef_search = {int(c.ef_search)}")  # type: ignore[arg-type]
            alive_row = alive.fetchone()
            lex_rows = lex.fetchall() if lex is not None else []
            dense_ids = [int(i) for (i,) in dense.fetchall()] if dense is not None else []
        if not (alive_row and alive_row[0]):
            raise IndexUnavailableError(f"{c.where}: version {c.name} was removed by a newer write; load the index "
                                        "again")
        stats = {str(t): (int(i), int(d)) for t, i, d, _, _ in lex_rows}
        c.remember({t: stats.get(t, (-1, 0)) for t in unique})
        heads = {int(i): (rows.ids_of(ids), rows.impacts_of(imp)) for _, i, _, ids, imp in lex_rows if ids is not None}
        query_ids = [stats[t][0] for t in terms if t in stats and stats[t][1] > 0]
        lex_ids = head_scores(query_ids, heads, n_cand if not lexical else max(n_cand, k))[0].tolist()
        if dense_only:
            cand = sorted(dense_ids)
        elif lexical:
            cand = sorted(lex_ids)
        else:
            cand = sorted(set(lex_ids) | set(dense_ids))
        if not cand:
            return []
        # one primary-key lookup per candidate in each table (a join on version_id alone would scan the version)
        fetched = {int(r[0]): r for r in conn.execute(
            "SELECT c.chunk_id, c.source, c.start_char, c.end_char, c.text, c.term_ids, v.embedding "
            "FROM unnest(%s::int4[]) AS u(id) "
            "JOIN rag_chunks c ON c.version_id = %s::int8 AND c.chunk_id = u.id "
            f"JOIN {self._vectors} v ON v.version_id = %s::int8 AND v.chunk_id = u.id",  # type: ignore[arg-type]
            (cand, vid, vid), binary=True)}
        cand = [i for i in cand if i in fetched]
        df = {stats[t][0]: stats[t][1] for t in stats}
        bm25 = exact_scores(query_ids, [rows.ids_of(fetched[i][5]) for i in cand], df, c.stats) if query_ids \
            else np.zeros(len(cand), dtype=np.float32)
        if qv is not None:
            matrix = np.vstack([np.asarray(fetched[i][6].to_numpy(), dtype=np.float32) for i in cand])
            cosine = matrix @ np.asarray(qv.vector, dtype=np.float32)
        else:
            cosine = np.zeros(len(cand), dtype=np.float32)
        if dense_only:
            score = cosine
        elif lexical:
            score = bm25
        else:
            score = fuse(bm25, cosine, w)
        order = np.argsort(-score, kind="stable")[:k]
        out: list[Hit] = []
        for r, j in enumerate(order):
            cid, source, start, end, text = fetched[cand[j]][:5]
            out.append(Hit(int(cid), source, text, int(start), int(end), float(score[j]), float(bm25[j]),
                           float(cosine[j]) if not lexical else 0.0, r + 1))
        return out


__all__ = ["EF_SEARCH", "POOL_SIZE", "PgCollection", "PgSearcher"]
