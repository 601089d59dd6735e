from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SEED = ROOT / "docs" / "000_7acc4ff99040d81b.txt"

os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def seed_path() -> Path:
    return SEED


@pytest.fixture(scope="session")
def seed_text() -> str:
    return SEED.read_text(encoding="utf-8")


@pytest.fixture(scope="session")
def hash_index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The seed article plus a small English note, indexed with the deterministic test embedder."""
    import rag

    docs = tmp_path_factory.mktemp("docs")
    shutil.copy(SEED, docs / SEED.name)
    (docs / "note.md").write_text(
        "# Library hours\n\nThe city library opens at 9 am and closes at 6 pm on weekdays. "
        "It was founded in 1921 by Mary Smith.\n\nOn Sundays the library is closed.\n",
        encoding="utf-8",
    )
    index = tmp_path_factory.mktemp("index")
    rag.build_index([docs], index_dir=index, model="test-hash")
    return index


@pytest.fixture(scope="session")
def hash_qa(hash_index: Path):
    import rag

    return rag.load(hash_index)


@pytest.fixture(scope="session")
def pg_server():
    """A PostgreSQL 18 + pgvector server on 127.0.0.1 for the session (tests/pg_server.py).
    When it cannot start the PostgreSQL tests are skipped, with the reason; with ``CI=true``
    they fail instead."""
    try:
        from pg_server import PgServer

        server = PgServer.start()
    except Exception as exc:  # noqa: BLE001 - any reason the server is not there is reported
        reason = f"PostgreSQL test server could not start: {exc.__class__.__name__}: {exc}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    try:
        yield server
    finally:
        server.stop()
        server.remove_all()
