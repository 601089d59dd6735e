"""The index in PostgreSQL with pgvector: :class:`PgStore`, a :class:`rag.index.store_api.Store`
over the schema of :mod:`rag.index.pg_schema` (rows and checksums: :mod:`rag.index.pg_rows`).

It keeps versions as the folder store does and gives the same types: :meth:`PgStore.read`
returns a :class:`~rag.index.loading.StoredIndex` (vectors read back from ``halfvec`` as float32,
an exact FAISS index built from them in memory, BM25 fitted from the stored term ids), so
everything above the store works unchanged.

* **Publishing** writes a whole version (its manifest row, documents, chunks with their term
  ids, vocabulary with document frequencies, vectors) and switches ``rag_published`` to it in
  ONE transaction: a reader sees the version before or the one after, never a mix; a writer
  killed at any moment leaves nothing (the server rolls its transaction back). Retention then
  keeps the published version and the one before it (and the one the new one was made from).
* **Reading** runs in one read-only ``REPEATABLE READ`` transaction (one snapshot), on
  ``read_url`` (a streaming replica) when one is given and no writer lock is held here: a
  writer always reads what it builds on from the primary. Checksums are verified as the folder
  store verifies its files; a corrupt published version gives the intact one before it, with
  a warning.
* **Writers** are serialised by a PostgreSQL advisory lock (:func:`rag.index.pg_schema.advisory_lock`),
  held on its own connection: a writer that dies releases it with its connection.

* **Answering** does not load the collection: :meth:`PgStore.collection` gives a
  :class:`~rag.index.pg_collection.PgCollection`, which searches in the database (postings,
  HNSW) and fetches documents by source. :meth:`PgStore.read` (every row, checksums verified)
  is for writers, which build a new version from the old one, and for ``rag status --verify``.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from rag.errors import IndexCorruptError, IndexError_, IndexNotFoundError, IndexWriteError
from rag.index import pg_rows as rows
from rag.index.collection import MemoryCollection
from rag.index.lexical import BM25Index
from rag.index.loading import LoadWarning, StoredIndex
from rag.index.lock import DEFAULT_LOCK_TIMEOUT
from rag.index.manifest import FORMAT_VERSION, Manifest, SourceRecord, library_versions
from rag.index.pg_collection import EF_SEARCH, PgCollection
from rag.index.pg_schema import (
    IndexUnavailableError,
    advisory_lock,
    build_hnsw,
    connect,
    drop_hnsw,
    ensure_vectors_table,
    hnsw_build_mb,
    masked,
    migrate,
    one_line,
    schema_version,
    table_exists,
    vectors_table,
)
from rag.index.postings import corpus_stats, impact_heads, impacts
from rag.index.store import IndexContent, fault_point
from rag.types import Chunk, Document

if TYPE_CHECKING:
    import psycopg

    from rag.index.collection import Collection

T = TypeVar("T")

#: chunks kept per term in ``rag_postings`` (highest BM25 impact first). Searches propose
#: lexical candidates from these heads and score them exactly; measured on the DRCD dev
#: questions (``benchmarks/bench_pg.py``), see README "PostgreSQL at scale".
POSTINGS_HEAD = 2000

#: HNSW graph parameters of each version's index. pgvector's defaults (16, 64) reached recall@10
#: 0.81 at 100k and 0.79 at 1M chunks against exact search (``hnsw.ef_search`` 200, DRCD dev
#: questions); (48, 256) reached 0.983 at 100k and 0.980 at 1M at the same ef_search, for a
#: build 9x (100k) to 12x (1M: 70 min on 2 cores) as long (``python -m benchmarks.bench_pg
#: hnsw`` and ``scale``: README "PostgreSQL at scale").
HNSW_M = 48
HNSW_EF_CONSTRUCTION = 256

_NO_INDEX = "no index here (build one with: python -m rag build)"


class PgStore:
    """An index in the PostgreSQL database at ``url`` (``postgresql://user@host:port/db``);
    reads go to ``read_url`` (a read replica) when it is given. Passwords come from the
    environment (``PGPASSWORD``) or ``~/.pgpass``; messages never show one."""

    def __init__(self, url: str, *, read_url: str | None = None) -> None:
        self.url = url
        self.read_url = read_url
        self._location = masked(url)
        self._read_location = masked(read_url) if read_url else self._location
        self._locked = 0
        #: seconds the last publish spent writing rows ("rows") and building the HNSW index ("hnsw")
        self.timings: dict[str, float] = {}
        #: whether the last publish's HNSW graph was built in memory (see :func:`hnsw_build_mb`)
        self.hnsw_in_memory: bool | None = None

    def __repr__(self) -> str:
        extra = f", read_url={self._read_location!r}" if self.read_url else ""
        return f"PgStore({self._location!r}{extra})"

    @property
    def location(self) -> str:
        return self._location

    # ------------------------------------------------------------ reading

    def _reading(self, body: Callable[["psycopg.Connection[Any]", str], T]) -> T:
        """Run ``body(conn, where)`` in one read-only snapshot on the read target (the replica
        unless this store holds the writer lock), retried when a replica cancels it."""
        import psycopg

        url, where = (self.read_url, self._read_location) if self.read_url and not self._locked \
            else (self.url, self._location)
        for attempt in range(3):
            conn = connect(url, where, autocommit=True)
            try:
                with conn.transaction():
                    conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
                    return body(conn, where)
            except (psycopg.errors.SerializationFailure, psycopg.errors.DeadlockDetected):
                # a conflict with recovery on a replica cancelled the snapshot: take a new one
                if attempt == 2:
                    raise IndexUnavailableError(f"{where}: reads keep being cancelled by the replica's "
                                                "recovery; try again") from None
            except psycopg.Error as exc:
                raise IndexUnavailableError(f"{where}: database error ({one_line(exc)})") from None
            finally:
                conn.close()
        raise AssertionError("unreachable")  # pragma: no cover

    def exists(self) -> bool:
        return self._reading(lambda conn, where: table_exists(conn, "rag_versions"))

    def read(self, *, verify: bool = True, fallback: bool = True, tokens: bool = False) -> StoredIndex:
        return self._reading(lambda conn, where: self._read(conn, where, verify, fallback, tokens))

    def manifest(self) -> tuple[Manifest, str, str | None]:
        return self._reading(self._manifest)

    def collection(self, *, verify: bool = True, ef_search: int = EF_SEARCH) -> "Collection":
        """The published version, queried in the database per question
        (:class:`~rag.index.pg_collection.PgCollection`): only its manifest is read here (its
        digest checked; the parts' checksums are checked by :meth:`read`, which writers and
        ``rag status`` use). ``ef_search``: the breadth of its HNSW search (recall against
        latency). A version written before the database could search (schema 1: no postings) is
        loaded into memory instead, with a warning, and searched exactly."""
        picked = self._reading(self._published_search)
        vid, name, manifest, search, documents, warning = picked
        if search is None:
            stored = self.read(verify=verify)
            if stored.warning is None:
                stored = replace(stored, warning=LoadWarning(
                    f"{self._read_location}: version {name} was written by an earlier rag, which did not index it for "
                    "searching in the database: it is loaded into memory (the next build, add or remove writes one "
                    "that is searched in the database)", refused=f"{self._read_location}#{name}",
                    loaded=f"{self._read_location}#{name}"))
            return MemoryCollection(stored)
        url = self.read_url if self.read_url else self.url
        return PgCollection(url, self._read_location, vid, name, manifest, search, documents, warning,
                            ef_search=ef_search)

    def _published_search(self, conn: Any, where: str) -> tuple[int, str, Manifest, Any, int, LoadWarning | None]:
        """The version a collection serves: the published one, or (with none marked as
        published) the newest whose manifest reads; an unreadable published manifest gives the
        one before it."""
        versions, published = self._versions(conn, where)
        names = dict(versions)
        order = [v for v, _ in versions if published is None or v <= published]
        first: IndexError_ | None = None
        for vid in order:
            try:
                manifest = self._manifest_of(conn, where, vid, names[vid])
            except IndexCorruptError as exc:
                first = first or exc
                continue
            # a schema-1 database (not migrated yet: no writer has run since the upgrade) has no search column
            row = conn.execute("SELECT search, documents FROM rag_versions WHERE id = %s", (vid,)).fetchone() \
                if schema_version(conn, where) >= 2 else \
                conn.execute("SELECT NULL, documents FROM rag_versions WHERE id = %s", (vid,)).fetchone()
            warning = None
            if published is None:
                warning = LoadWarning(f"{_unpublished(where)}; serving the newest readable version {names[vid]} (the "
                                      "next build, add or remove publishes it again)", refused=f"{where} rag_published",
                                      loaded=f"{where}#{names[vid]}")
            elif vid != published:
                warning = LoadWarning(f"{first}; serving the previous version {names[vid]} instead (rebuild to repair)",
                                      refused=f"{where}#{names[published]}", loaded=f"{where}#{names[vid]}")
            return vid, names[vid], manifest, row[0], int(row[1]), warning
        raise first if published is not None and first is not None else _nothing_intact(where, first)

    def _versions(self, conn: Any, where: str) -> tuple[list[tuple[int, str]], int | None]:
        """Every version (newest first) and the published one's id; no index raises."""
        if schema_version(conn, where) == 0:
            raise IndexNotFoundError(f"{where}: {_NO_INDEX}")
        versions = [(int(i), str(n)) for i, n in conn.execute("SELECT id, name FROM rag_versions ORDER BY id DESC")]
        if not versions:
            raise IndexNotFoundError(f"{where}: {_NO_INDEX}")
        row = conn.execute("SELECT version_id FROM rag_published").fetchone()
        return versions, (int(row[0]) if row else None)

    def _manifest(self, conn: Any, where: str) -> tuple[Manifest, str, str | None]:
        versions, published = self._versions(conn, where)
        names = dict(versions)
        if published is not None:
            return self._manifest_of(conn, where, published, names[published]), names[published], None
        first: IndexError_ | None = None
        for vid, name in versions:
            try:
                manifest = self._manifest_of(conn, where, vid, name)
            except IndexError_ as exc:
                first = first or exc
                continue
            return manifest, name, (f"{_unpublished(where)}; this is the newest version, {name} "
                                    "(the next build, add or remove publishes it again)")
        raise _nothing_intact(where, first)

    def _manifest_of(self, conn: Any, where: str, vid: int, name: str) -> Manifest:
        row = conn.execute("SELECT manifest FROM rag_versions WHERE id = %s", (vid,)).fetchone()
        return rows.manifest_from_row(row[0], f"{where} version {name}")

    def _read(self, conn: Any, where: str, verify: bool, fallback: bool, tokens: bool) -> StoredIndex:
        versions, published = self._versions(conn, where)
        names = dict(versions)
        if published is None:
            if not fallback:
                raise IndexCorruptError(f"{_unpublished(where)} (with fallback the newest intact version is loaded; "
                                        "a build, add or remove publishes it again)")
            first: IndexError_ | None = None
            for vid, name in versions:
                try:
                    stored = self._load_version(conn, where, vid, name, verify, tokens)
                except IndexError_ as exc:
                    first = first or exc
                    continue
                return replace(stored, warning=LoadWarning(
                    f"{_unpublished(where)}; loaded the newest intact version {name} instead (the next build, add "
                    "or remove publishes it again)", refused=f"{where} rag_published", loaded=f"{where}#{name}"))
            raise _nothing_intact(where, first)
        try:
            return self._load_version(conn, where, published, names[published], verify, tokens)
        except IndexCorruptError as failure:
            if not fallback:
                raise
            for vid, name in versions:
                if vid >= published:
                    continue
                try:
                    stored = self._load_version(conn, where, vid, name, verify, tokens)
                except IndexError_:
                    continue
                return replace(stored, warning=LoadWarning(
                    f"{failure}; loaded the previous version {name} instead (rebuild to repair)",
                    refused=f"{where}#{names[published]}", loaded=f"{where}#{name}"))
            raise

    def _load_version(self, conn: Any, where: str, vid: int, name: str, verify: bool, tokens: bool) -> StoredIndex:
        import faiss
        from pgvector.psycopg import register_vector

        label = f"{where} version {name}"
        manifest = self._manifest_of(conn, where, vid, name)
        table = vectors_table(manifest.dimension)
        if not table_exists(conn, table):
            raise IndexCorruptError(f"{label}: the vectors table {table} is missing (rebuild needed)")
        register_vector(conn)
        try:
            documents: dict[str, Document] = {}
            signatures: list[np.ndarray | None] = []
            for source, sha, encoding, text, report, sig in conn.execute(
                    "SELECT source, sha256, encoding, text, report, signature FROM rag_documents "
                    "WHERE version_id = %s ORDER BY position", (vid,)):
                documents[source] = rows.document_of(source, sha, encoding, text, report)
                signatures.append(None if sig is None else np.frombuffer(bytes(sig), dtype="<u8"))
            chunks: list[Chunk] = []
            visibility: list[float | None] = []
            term_rows: list[bytes] = []
            column = "term_ids" if schema_version(conn, where) >= 2 else "terms"  # schema 1: int4[]
            for cid, source, start, end, text, vis, terms in conn.execute(
                    f"SELECT chunk_id, source, start_char, end_char, text, visibility, {column} FROM rag_chunks "  # type: ignore[arg-type]
                    "WHERE version_id = %s ORDER BY chunk_id", (vid,)):
                chunks.append(Chunk(int(cid), source, int(start), int(end), text))
                visibility.append(None if vis is None else float(vis))
                term_rows.append(bytes(terms) if column == "term_ids" else rows.term_bytes(np.asarray(terms, np.int64)))
            vocabulary = [t for (t,) in conn.execute(
                "SELECT term FROM rag_vocabulary WHERE version_id = %s ORDER BY term_id", (vid,))]
            with conn.cursor(binary=True) as cur:
                cur.execute(f"SELECT embedding FROM {table} WHERE version_id = %s ORDER BY chunk_id", (vid,))
                halves = [v.to_numpy() for (v,) in cur]
            terms = rows.terms_from_rows(term_rows, vocabulary)
        except (ValueError, KeyError, TypeError) as exc:
            raise IndexCorruptError(f"{label}: cannot read the index ({exc}); rebuild needed") from exc
        d = manifest.dimension
        if len(chunks) != manifest.chunks or len(halves) != len(chunks) or any(len(v) != d for v in halves):
            raise IndexCorruptError(f"{label}: {len(halves)} vectors for {len(chunks)} chunks of dimension {d} "
                                    f"(the manifest says {manifest.chunks} chunks); rebuild needed")
        if any(c.chunk_id != i for i, c in enumerate(chunks)):
            raise IndexCorruptError(f"{label}: chunk ids are not their row numbers; rebuild needed")
        matrix = np.vstack(halves) if halves else np.zeros((0, d), dtype=np.float16)
        vis = None if any(v is None for v in visibility) else np.asarray(visibility, dtype=np.float64)
        sigs = None if not signatures or any(s is None for s in signatures) or \
            len({len(s) for s in signatures if s is not None}) != 1 else np.vstack(signatures)  # type: ignore[arg-type]
        if verify:
            rows.verify(label, manifest, {
                "documents": rows.documents_digest(documents.values()),
                "chunks": rows.chunks_digest(chunks, vis),
                "vocabulary": rows.vocabulary_digest(vocabulary),
                "terms": rows.terms_digest(terms),
                "vectors": rows.vectors_digest(matrix),
                "signatures": rows.signatures_digest(sigs),
            })
        vectors = matrix.astype(np.float32)
        flat = faiss.IndexFlatIP(d)
        if len(vectors):
            flat.add(vectors)
        return StoredIndex(Path(name), manifest, tuple(chunks), documents, vectors, flat, BM25Index.fit_terms(terms),
                           vis, sigs, None, terms if tokens else None)

    # ------------------------------------------------------------ writing

    def lock(self, timeout: float | None = None) -> AbstractContextManager[None]:
        return self._lock(DEFAULT_LOCK_TIMEOUT if timeout is None else timeout)

    @contextmanager
    def _lock(self, timeout: float) -> Iterator[None]:
        import psycopg

        conn = connect(self.url, self._location, autocommit=True)
        try:
            try:
                schema_version(conn, self._location)  # refuses tables that are not rag's, before any write
                held = advisory_lock(conn, self._location, timeout)
                held.__enter__()
            except psycopg.Error as exc:
                raise IndexUnavailableError(f"{self._location}: database error ({one_line(exc)})") from None
            try:
                try:
                    migrate(conn, self._location)
                except psycopg.Error as exc:
                    raise IndexWriteError(self._location, f"cannot create the schema ({one_line(exc)})") from None
                self._locked += 1
                try:
                    yield
                finally:
                    self._locked -= 1
            finally:
                held.__exit__(None, None, None)
        finally:
            conn.close()

    def _writing(self, body: Callable[[Any], T]) -> T:
        """Run ``body(conn)`` on a connection to the primary; database errors become
        :class:`IndexWriteError` (nothing published: the transaction was rolled back)."""
        import psycopg

        conn = connect(self.url, self._location, autocommit=True)
        try:
            return body(conn)
        except psycopg.Error as exc:
            raise IndexWriteError(self._location, one_line(exc)) from None
        finally:
            conn.close()

    def tidy(self) -> list[str]:
        """Versions newer than the published one (never published) are removed."""
        def body(conn: Any) -> list[str]:
            if schema_version(conn, self._location) == 0:
                return []
            with conn.transaction():
                drop_hnsw(conn, [int(i) for (i,) in conn.execute(
                    "SELECT id FROM rag_versions WHERE id > (SELECT version_id FROM rag_published)")])
                gone = conn.execute("DELETE FROM rag_versions WHERE id > (SELECT version_id FROM rag_published) "
                                    "RETURNING name").fetchall()
            return [n for (n,) in gone]
        return self._writing(body)

    def retain(self, current: StoredIndex) -> None:
        def body(conn: Any) -> None:
            row = conn.execute("SELECT p.version_id FROM rag_published p JOIN rag_versions v ON v.id = p.version_id "
                               "WHERE v.name = %s", (current.path.name,)).fetchone()
            if row is not None:
                _prune(conn, int(row[0]), ())
        self._writing(body)

    def publish(self, content: IndexContent, *, based_on: StoredIndex | None = None) -> str:
        _check_storable(self._location, content)
        return self._writing(lambda conn: self._publish(conn, content, based_on))

    def _publish(self, conn: Any, content: IndexContent, based_on: StoredIndex | None) -> str:
        from pgvector import HalfVector
        from pgvector.psycopg import register_vector

        fault_point("start")
        self.timings, self.hnsw_in_memory = {}, None
        started = time.perf_counter()
        migrate(conn, self._location)
        register_vector(conn)
        halves = rows.half(content.vectors).reshape(len(content.chunks), content.dimension)
        vis = np.asarray(content.chunk_visibility, dtype=np.float64)
        sigs = np.ascontiguousarray(content.signatures, dtype="<u8") if content.signatures is not None else None
        with conn.transaction():
            previous = conn.execute("SELECT version_id FROM rag_published").fetchone()
            seq = int(conn.execute("SELECT coalesce(max(id), 0) + 1 FROM rag_versions").fetchone()[0])
            name = f"v-{seq:06d}-{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:8]}"
            files = {
                "documents": rows.documents_digest(content.documents),
                "chunks": rows.chunks_digest(content.chunks, vis),
                "vocabulary": rows.vocabulary_digest(content.tokens.vocabulary),
                "terms": rows.terms_digest(content.tokens),
                "vectors": rows.vectors_digest(halves),
                "signatures": rows.signatures_digest(sigs),
            }
            manifest = _manifest(content, files, vis)
            table = ensure_vectors_table(conn, content.dimension)
            conn.execute(
                "INSERT INTO rag_versions (id, name, format_version, model, dimension, precision, settings, documents, "
                "chunks, terms, checksums, manifest) VALUES (%s, %s, %s, %s, %s, %s, %s::jsonb, %s, %s, %s, "
                "%s::jsonb, %s::jsonb)",
                (seq, name, FORMAT_VERSION, content.model, content.dimension, content.precision,
                 _json(content.settings.to_dict()), len(content.documents), len(content.chunks),
                 len(content.tokens.ids), _json(files), _json(manifest.to_json())))
            with conn.cursor() as cur:
                with cur.copy("COPY rag_documents (version_id, position, source, sha256, encoding, text, report, "
                              "signature) FROM STDIN") as copy:
                    for i, d in enumerate(content.documents):
                        copy.write_row((seq, i, d.source, d.sha256, d.encoding, d.text, rows.report_json(d),
                                        None if sigs is None else sigs[i].tobytes()))
                fault_point("after-documents")
                with cur.copy("COPY rag_chunks (version_id, chunk_id, source, start_char, end_char, text, visibility, "
                              "term_ids) FROM STDIN (FORMAT BINARY)") as copy:
                    copy.set_types(["int8", "int4", "text", "int4", "int4", "text", "float8", "bytea"])
                    ids = np.ascontiguousarray(content.tokens.ids, dtype=">i4")  # as bytea holds them, converted once
                    bounds = content.tokens.offsets.tolist()
                    for i, c in enumerate(content.chunks):
                        copy.write_row((seq, c.chunk_id, c.source, c.start, c.end, c.text, round(float(vis[i]), 6),
                                        ids[bounds[i]:bounds[i + 1]].tobytes()))
                    del ids
                fault_point("after-chunks")
                stats = corpus_stats(content.tokens)
                lexical = impacts(content.tokens, stats)
                with cur.copy("COPY rag_vocabulary (version_id, term_id, term, df) FROM STDIN (FORMAT BINARY)") as copy:
                    copy.set_types(["int8", "int4", "text", "int4"])
                    for i, (term, df) in enumerate(zip(content.tokens.vocabulary, lexical.df.tolist())):
                        copy.write_row((seq, i, term, df))
                with cur.copy("COPY rag_postings (version_id, term_id, chunk_ids, impacts) FROM STDIN (FORMAT BINARY)") \
                        as copy:
                    copy.set_types(["int8", "int4", "bytea", "bytea"])
                    for term_id, chunk_ids, impact in impact_heads(lexical, POSTINGS_HEAD, big_endian=True):
                        copy.write_row((seq, term_id, chunk_ids.tobytes(), impact.tobytes()))
                del lexical
                fault_point("after-tokens")
                with cur.copy(f"COPY {table} (version_id, chunk_id, embedding) FROM STDIN (FORMAT BINARY)") as copy:
                    copy.set_types(["int8", "int4", "halfvec"])
                    for i in range(len(halves)):
                        copy.write_row((seq, i, HalfVector(halves[i])))
                fault_point("after-faiss")
            rows_done = time.perf_counter()
            hnsw, in_memory = build_hnsw(conn, content.dimension, seq, m=HNSW_M, ef_construction=HNSW_EF_CONSTRUCTION,
                                         memory_mb=hnsw_build_mb(len(halves), content.dimension, HNSW_M))
            # the planner's statistics for the new rows (the candidates' lookups must use the primary keys)
            conn.execute(f"ANALYZE rag_documents, rag_chunks, rag_vocabulary, rag_postings, {table}")  # type: ignore[arg-type]
            self.timings = {"rows": rows_done - started, "hnsw": time.perf_counter() - rows_done}
            self.hnsw_in_memory = in_memory
            conn.execute("UPDATE rag_versions SET search = %s::jsonb WHERE id = %s", (_json({
                "chunks": stats.chunks, "mean_terms": stats.mean_terms, "k1": stats.k1, "b": stats.b,
                "postings_head": POSTINGS_HEAD, "hnsw": hnsw, "hnsw_m": HNSW_M,
                "hnsw_ef_construction": HNSW_EF_CONSTRUCTION, "hnsw_in_memory": in_memory}), seq))
            fault_point("after-manifest")
            based = conn.execute("SELECT id FROM rag_versions WHERE name = %s",
                                 (based_on.path.name if based_on is not None else "",)).fetchone()
            conn.execute(
                "INSERT INTO rag_published (only_row, version_id, based_on, published) VALUES (true, %s, %s, now()) "
                "ON CONFLICT (only_row) DO UPDATE SET version_id = EXCLUDED.version_id, based_on = EXCLUDED.based_on, "
                "published = EXCLUDED.published", (seq, based[0] if based else None))
            fault_point("after-pointer-temp")
        fault_point("after-publish")
        if previous is not None:  # with no version marked as published before, every version is kept
            _prune(conn, seq, (int(previous[0]), based[0] if based else None))
        return f"{self._location}#{name}"


def _prune(conn: Any, published: int, also_keep: tuple[int | None, ...]) -> list[str]:
    """Retention once ``published`` is published: keep it and ``also_keep`` (those that exist),
    or, when none of those is another version, it and the newest version before it; remove the rest."""
    ids = {int(i) for (i,) in conn.execute("SELECT id FROM rag_versions")}
    keep = {published} | {i for i in also_keep if i is not None and i in ids}
    if len(keep) == 1:
        older = [i for i in ids if i < published]
        if older:
            keep.add(max(older))
    if not ids - keep:
        return []
    fault_point("during-prune")
    with conn.transaction():
        drop_hnsw(conn, sorted(ids - keep))
        gone = conn.execute("DELETE FROM rag_versions WHERE NOT (id = ANY(%s)) RETURNING name",
                            (sorted(keep),)).fetchall()
    return [n for (n,) in gone]


def _manifest(content: IndexContent, files: dict[str, str], vis: np.ndarray) -> Manifest:
    """The new version's manifest, as the folder store makes it (``files``: the parts' checksums)."""
    per_doc: dict[str, int] = {}
    for c in content.chunks:
        per_doc[c.source] = per_doc.get(c.source, 0) + 1
    records = [SourceRecord(d.source, d.sha256, per_doc.get(d.source, 0), d.encoding) for d in content.documents]
    records.extend(content.duplicates)
    return Manifest(
        format_version=FORMAT_VERSION, model=content.model, dimension=content.dimension, settings=content.settings,
        documents=tuple(sorted(records, key=lambda r: r.source)), chunks=len(content.chunks),
        visibility=round(float(np.mean(vis)), 6) if len(vis) else 1.0, created=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        build_seconds=round(content.build_seconds, 3), files=files, versions=library_versions(),
        near_duplicates=content.near_duplicates, fingerprint=content.fingerprint, precision=content.precision,
        ann=None)


def _check_storable(location: str, content: IndexContent) -> None:
    """PostgreSQL text cannot hold NUL characters: say which document has one before writing."""
    for d in content.documents:
        if "\x00" in d.text or "\x00" in d.source:
            raise IndexWriteError(location, f"{d.source!r} holds a NUL character, which PostgreSQL text cannot store")


def _json(data: Any) -> str:
    import json

    return json.dumps(data, ensure_ascii=False)


def _unpublished(where: str) -> str:
    return f"{where}: no version is marked as published (rag_published is empty)"


def _nothing_intact(where: str, first: IndexError_ | None) -> IndexError_:
    return IndexCorruptError(f"{_unpublished(where)}, and no version is intact ({first}); rebuild needed")


__all__ = ["PgStore"]
