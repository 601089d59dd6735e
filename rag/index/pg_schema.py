"""The PostgreSQL side of a database index (:mod:`rag.index.pg_store`): URLs and how messages
name them, connections, the writer's advisory lock, and the schema with its versioned migrations.

Schema (created by the first writer, under the writer lock; ``rag_schema_migrations`` records
each migration applied)::

    rag_schema_migrations (version, description, applied)
    rag_versions      one row a version: id (sequence), name, format_version, model, dimension,
                      precision, settings (jsonb), documents, chunks, terms (total BM25 terms),
                      checksums (jsonb, sha256 per part), manifest (jsonb, with its own digest)
    rag_published     one row: the published version (and the one it was made from)
    rag_documents     version_id, position, source, sha256, encoding, text, report (json),
                      signature (MinHash, bytea)
    rag_chunks        version_id, chunk_id, source, start_char, end_char, text, visibility,
                      term_ids (bytea: the chunk's BM25 term ids, int32 big-endian, in order)
    rag_vocabulary    version_id, term_id, term, df (in how many chunks the term occurs)
    rag_postings      version_id, term_id, chunk_ids, impacts (bytea, int32 / float32
                      big-endian): the lexical side's inverted index, each term's chunks with
                      their BM25 contribution, highest first, at most the version's head size
    rag_vectors_<d>   version_id, chunk_id, embedding halfvec(d), one table per model dimension,
                      created with its first version; an HNSW index (halfvec_ip_ops) per
                      version, partial (``WHERE version_id = N``), built after its rows are
                      loaded (``rag_vectors_<d>_v<N>``)

``rag_versions.search`` (jsonb) holds what queries need besides rows: the BM25 statistics
(chunks, mean terms per chunk, k1, b), the postings' head size and the HNSW index's name.

Every row of a version hangs off ``rag_versions`` (``ON DELETE CASCADE``): a version is
written in one transaction and removed with one ``DELETE`` (its HNSW index dropped with it).
The sparse side is never indexed with HNSW: lexical candidates come from the postings, and
their scores are then computed exactly from the chunks' term ids
(:mod:`rag.index.pg_collection`).

Schema 1 (the first slice) kept the term ids as ``int4[]`` with a GIN index and one HNSW
index over every version's vectors; migration 2 converts the term ids in place and drops
those indexes. Versions written before it have no postings: queries on them load the version
into memory (with a warning) until the next build, add or remove writes a new one.
"""

from __future__ import annotations

import math
import os
import re
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from rag.errors import IndexError_, IndexIncompatibleError, IndexLockedError, NotAnIndexError

if TYPE_CHECKING:
    import psycopg

#: URL schemes that name a PostgreSQL database (libpq takes both)
SCHEMES = ("postgresql://", "postgres://")

#: the advisory lock writers hold (two int4 keys: "rag\0", 1); advisory locks are per database
LOCK_KEYS = (0x72616700, 1)

#: seconds to wait for a connection before giving up
CONNECT_TIMEOUT = 10


class IndexUnavailableError(IndexError_):
    """The database server cannot be reached, refuses the connection, or fails a query that is
    not about the index's content (the message names the URL, password masked, and the reason)."""


def is_database_url(index: object) -> bool:
    """Whether ``index`` is a ``postgresql://`` / ``postgres://`` URL."""
    return isinstance(index, str) and index.lower().startswith(SCHEMES)


def masked(url: str) -> str:
    """``url`` as messages show it: any password (in the authority or as ``?password=``) is ``***``."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, host = netloc.rsplit("@", 1)
        if ":" in userinfo:
            userinfo = userinfo.split(":", 1)[0] + ":***"
        netloc = f"{userinfo}@{host}"
    query = parts.query
    if query:
        pairs = [(k, "***" if k.lower() == "password" else v) for k, v in parse_qsl(query, keep_blank_values=True)]
        query = urlencode(pairs, safe="*")
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def one_line(text: object) -> str:
    """A server's or libpq's message on one line."""
    return re.sub(r"\s+", " ", str(text)).strip()


def connect(url: str, location: str, *, autocommit: bool = False) -> "psycopg.Connection[Any]":
    """A connection to ``url``; :class:`IndexUnavailableError` (naming ``location``) when there is none.
    Passwords come from the URL, ``PGPASSWORD`` or ``~/.pgpass`` (libpq reads them)."""
    try:
        import psycopg
    except ImportError as exc:
        raise IndexUnavailableError(
            f"{location}: a database index needs psycopg and pgvector (pip install 'rag[pg]')"
        ) from exc
    kwargs: dict[str, Any] = {"autocommit": autocommit, "application_name": f"rag pid {os.getpid()} on "
                              f"{socket.gethostname()}"[:63]}
    if "connect_timeout" not in url:
        kwargs["connect_timeout"] = CONNECT_TIMEOUT
    try:
        return psycopg.connect(url, **kwargs)
    except psycopg.Error as exc:
        raise IndexUnavailableError(f"{location}: cannot connect to the database ({one_line(exc)})") from None


def table_exists(conn: "psycopg.Connection[Any]", name: str) -> bool:
    row = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (name,)).fetchone()
    return bool(row and row[0])


# ---------------------------------------------------------------- migrations

_INITIAL = (
    "CREATE EXTENSION IF NOT EXISTS vector",
    """CREATE TABLE rag_versions (
        id bigint PRIMARY KEY,
        name text NOT NULL UNIQUE,
        created timestamptz NOT NULL DEFAULT now(),
        format_version integer NOT NULL,
        model text NOT NULL,
        dimension integer NOT NULL,
        precision text NOT NULL,
        settings jsonb NOT NULL,
        documents integer NOT NULL,
        chunks integer NOT NULL,
        terms bigint NOT NULL,
        checksums jsonb NOT NULL,
        manifest jsonb NOT NULL)""",
    """CREATE TABLE rag_published (
        only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
        version_id bigint NOT NULL REFERENCES rag_versions (id),
        based_on bigint,
        published timestamptz NOT NULL DEFAULT now())""",
    """CREATE TABLE rag_documents (
        version_id bigint NOT NULL REFERENCES rag_versions (id) ON DELETE CASCADE,
        position integer NOT NULL,
        source text NOT NULL,
        sha256 text NOT NULL,
        encoding text NOT NULL,
        text text NOT NULL,
        report json NOT NULL,
        signature bytea,
        PRIMARY KEY (version_id, position),
        UNIQUE (version_id, source))""",
    """CREATE TABLE rag_chunks (
        version_id bigint NOT NULL REFERENCES rag_versions (id) ON DELETE CASCADE,
        chunk_id integer NOT NULL,
        source text NOT NULL,
        start_char integer NOT NULL,
        end_char integer NOT NULL,
        text text NOT NULL,
        visibility double precision,
        terms integer[] NOT NULL,
        PRIMARY KEY (version_id, chunk_id))""",
    "CREATE INDEX rag_chunks_terms ON rag_chunks USING gin (terms)",
    """CREATE TABLE rag_vocabulary (
        version_id bigint NOT NULL REFERENCES rag_versions (id) ON DELETE CASCADE,
        term_id integer NOT NULL,
        term text NOT NULL,
        df integer NOT NULL,
        PRIMARY KEY (version_id, term_id))""",
    "CREATE INDEX rag_vocabulary_term ON rag_vocabulary (version_id, term)",
)

_SEARCH_IN_DATABASE = (
    "ALTER TABLE rag_versions ADD COLUMN search jsonb",
    "ALTER TABLE rag_chunks ADD COLUMN term_ids bytea",
    """UPDATE rag_chunks SET term_ids = coalesce(
        (SELECT string_agg(int4send(t), ''::bytea ORDER BY o) FROM unnest(terms) WITH ORDINALITY AS u(t, o)),
        ''::bytea)""",
    "ALTER TABLE rag_chunks ALTER COLUMN term_ids SET NOT NULL",
    "DROP INDEX rag_chunks_terms",
    "ALTER TABLE rag_chunks DROP COLUMN terms",
    """CREATE TABLE rag_postings (
        version_id bigint NOT NULL REFERENCES rag_versions (id) ON DELETE CASCADE,
        term_id integer NOT NULL,
        chunk_ids bytea NOT NULL,
        impacts bytea NOT NULL,
        PRIMARY KEY (version_id, term_id))""",
    # terms are only looked up by equality: the "C" collation compares bytes, not by a locale's rules
    # (which cost more per comparison on a server whose default collation is not C)
    "DROP INDEX rag_vocabulary_term",
    'CREATE INDEX rag_vocabulary_term ON rag_vocabulary (version_id, term COLLATE "C")',
    # the HNSW index over every version's vectors: each version gets its own from now on
    """DO $$ DECLARE r record; BEGIN
        FOR r IN SELECT indexname FROM pg_indexes WHERE schemaname = current_schema()
                 AND indexname ~ '^rag_vectors_[0-9]+_hnsw$' LOOP
            EXECUTE format('DROP INDEX %I', r.indexname);
        END LOOP; END $$""",
)

#: (schema version, what it does, its statements), applied in order, each in one transaction
MIGRATIONS: tuple[tuple[int, str, tuple[str, ...]], ...] = (
    (1, "versions, published pointer, documents, chunks with GIN-indexed term ids, vocabulary", _INITIAL),
    (2, "search in the database: term ids as bytea, postings with BM25 impacts, an HNSW index per version",
     _SEARCH_IN_DATABASE),
)

SCHEMA_VERSION = MIGRATIONS[-1][0]


def schema_version(conn: "psycopg.Connection[Any]", location: str) -> int:
    """The schema version applied (0: no rag schema here); a newer one than this rag knows is
    refused, and so are rag-named tables without the migrations table (not rag's)."""
    if not table_exists(conn, "rag_schema_migrations"):
        if table_exists(conn, "rag_versions"):
            raise NotAnIndexError(f"{location}: holds a rag_versions table that rag did not create "
                                  "(no rag_schema_migrations); refused")
        return 0
    row = conn.execute("SELECT coalesce(max(version), 0) FROM rag_schema_migrations").fetchone()
    found = int(row[0]) if row else 0
    if found > SCHEMA_VERSION:
        raise IndexIncompatibleError(
            f"{location}: database schema version {found}, this rag knows up to {SCHEMA_VERSION}: upgrade rag"
        )
    return found


def migrate(conn: "psycopg.Connection[Any]", location: str) -> int:
    """Apply the migrations not applied yet (call with the writer lock held); returns the schema version."""
    current = schema_version(conn, location)
    for version, description, statements in MIGRATIONS:
        if version <= current:
            continue
        with conn.transaction():
            if version == 1:
                conn.execute("""CREATE TABLE rag_schema_migrations (
                    version integer PRIMARY KEY, description text NOT NULL,
                    applied timestamptz NOT NULL DEFAULT now())""")
            for statement in statements:
                conn.execute(statement)  # type: ignore[arg-type]
            conn.execute("INSERT INTO rag_schema_migrations (version, description) VALUES (%s, %s)",
                         (version, description))
        current = version
    return current


def vectors_table(dimension: int) -> str:
    """The table holding vectors of ``dimension`` (one per dimension: ``halfvec(d)`` is typed)."""
    return f"rag_vectors_{int(dimension)}"


def ensure_vectors_table(conn: "psycopg.Connection[Any]", dimension: int) -> str:
    """Create the vectors table of ``dimension`` when missing (inside the caller's transaction:
    DDL is transactional in PostgreSQL). Its HNSW indexes are per version (:func:`hnsw_index`)."""
    name = vectors_table(dimension)
    if not table_exists(conn, name):
        conn.execute(f"""CREATE TABLE {name} (
            version_id bigint NOT NULL REFERENCES rag_versions (id) ON DELETE CASCADE,
            chunk_id integer NOT NULL,
            embedding halfvec({int(dimension)}) NOT NULL,
            PRIMARY KEY (version_id, chunk_id))""")  # type: ignore[arg-type]
    return name


def hnsw_index(dimension: int, version_id: int) -> str:
    """The name of version ``version_id``'s HNSW index over its vectors of ``dimension``."""
    return f"{vectors_table(dimension)}_v{int(version_id)}"


#: the most ``maintenance_work_mem`` a version's HNSW build asks for (MiB). A build whose graph
#: does not fit in it goes on inserting into pages, several times slower.
HNSW_BUILD_MAX_MB = 8192


def hnsw_build_mb(rows: int, dimension: int, m: int) -> int:
    """``maintenance_work_mem`` (MiB) for building an HNSW graph of ``rows`` ``halfvec(dimension)``
    rows in memory: what pgvector allocates per element, reckoned from its build (the element
    with its heap pointers, one neighbour list per level, ``2m`` entries of 16 bytes at level 0
    and ``m`` above, levels averaging ``1 / (m - 1)``, and the vector) with a quarter more, at
    least 64 MiB and at most :data:`HNSW_BUILD_MAX_MB`. At 1M rows of 384 dimensions: about 1.7
    GiB for m = 16 and 3.0 GiB for m = 48. A serial build takes only what its graph needs; a
    parallel one reserves the whole amount in shared memory, which the server's ``/dev/shm``
    must hold. :func:`build_hnsw` says whether a build fitted."""
    levels = 1.0 / (m - 1)  # pgvector draws level = floor(-ln(U) / ln(m)): mean 1 / (m - 1)
    element = 120 + 24 * (levels + 1) + 16 * m * (levels + 2) + 8 + (8 + 2 * dimension)
    return int(min(HNSW_BUILD_MAX_MB, max(64, math.ceil(1.25 * rows * element / 2 ** 20))))


def build_hnsw(conn: "psycopg.Connection[Any]", dimension: int, version_id: int, *, m: int, ef_construction: int,
               memory_mb: int) -> tuple[str, bool]:
    """Build version ``version_id``'s partial HNSW index (inside the caller's transaction, after
    its vectors are loaded: a bulk build is many times faster than inserting into a live graph),
    with ``memory_mb`` of ``maintenance_work_mem`` so that the graph is built in memory. Gives
    the index's name and whether the graph fitted in memory (pgvector says when it did not)."""
    from psycopg import pq

    if conn.info.transaction_status != pq.TransactionStatus.INTRANS:
        raise ValueError("build_hnsw runs inside a transaction (its settings are SET LOCAL)")
    name = hnsw_index(dimension, version_id)
    spilled: list[str] = []

    def notice(diag: Any) -> None:
        if "no longer fits" in (diag.message_primary or ""):
            spilled.append(diag.message_primary)

    conn.add_notice_handler(notice)
    try:
        conn.execute(f"SET LOCAL maintenance_work_mem = '{int(memory_mb)}MB'")  # type: ignore[arg-type]
        conn.execute("SET LOCAL client_min_messages = notice")  # the notice must reach us
        conn.execute(f"CREATE INDEX {name} ON {vectors_table(dimension)} USING hnsw (embedding halfvec_ip_ops) "  # type: ignore[arg-type]
                     f"WITH (m = {int(m)}, ef_construction = {int(ef_construction)}) WHERE version_id = {int(version_id)}")
    finally:
        conn.remove_notice_handler(notice)
    return name, not spilled


def drop_hnsw(conn: "psycopg.Connection[Any]", version_ids: "list[int]") -> None:
    """Drop the HNSW indexes of ``version_ids`` (versions being removed), whatever their dimension."""
    for vid in version_ids:
        for (name,) in conn.execute(
                "SELECT indexname FROM pg_indexes WHERE schemaname = current_schema() AND indexname ~ %s",
                (f"^rag_vectors_[0-9]+_v{int(vid)}$",)).fetchall():
            conn.execute(f'DROP INDEX IF EXISTS "{name}"')  # type: ignore[arg-type]


# ---------------------------------------------------------------- the writer lock


@contextmanager
def advisory_lock(conn: "psycopg.Connection[Any]", location: str, timeout: float) -> Iterator[None]:
    """Hold the index's advisory lock on ``conn`` (autocommit), waiting up to ``timeout``
    seconds; :class:`IndexLockedError` names the holder when the wait runs out. A writer that
    dies loses its connection, and the server releases its lock."""
    deadline = time.monotonic() + timeout
    while True:
        row = conn.execute("SELECT pg_try_advisory_lock(%s, %s)", LOCK_KEYS).fetchone()
        if row and row[0]:
            break
        if time.monotonic() >= deadline:
            raise IndexLockedError(
                f"{location}: another process is writing this index{_holder(conn)}; gave up after waiting "
                f"{timeout:g}s (try again when it has finished)"
            )
        time.sleep(0.05)
    try:
        yield
    finally:
        try:
            conn.execute("SELECT pg_advisory_unlock(%s, %s)", LOCK_KEYS)
        except Exception:  # noqa: BLE001 - a lost connection has released the lock already
            pass


def _holder(conn: "psycopg.Connection[Any]") -> str:
    """Who holds the advisory lock, as the server knows them."""
    try:
        row = conn.execute(
            """SELECT a.pid, a.application_name, a.client_addr::text, a.backend_start
               FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
               WHERE l.locktype = 'advisory' AND l.granted AND l.classid = %s AND l.objid = %s
                 AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())""",
            LOCK_KEYS,
        ).fetchone()
    except Exception:  # noqa: BLE001 - the holder is a courtesy in the message
        return ""
    if not row:
        return ""
    pid, app, addr, since = row
    where = f" from {addr}" if addr else ""
    return f" (server process {pid}, {app or 'unnamed client'}{where}, connected since {since:%Y-%m-%dT%H:%M:%S})"


__all__ = [
    "CONNECT_TIMEOUT", "LOCK_KEYS", "MIGRATIONS", "SCHEMA_VERSION", "SCHEMES", "IndexUnavailableError",
    "HNSW_BUILD_MAX_MB", "advisory_lock", "build_hnsw", "connect", "drop_hnsw", "ensure_vectors_table",
    "hnsw_build_mb", "hnsw_index", "is_database_url", "masked", "migrate", "one_line",
    "schema_version", "table_exists", "vectors_table",
]
