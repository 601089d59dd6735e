"""Running the chat server as a child process on a free local port, for tests and benchmarks.

Nothing is printed: the server's output goes to a log file that :class:`ServerProcess` names.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

from rag import environment


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def http_status(url: str, timeout: float = 5.0) -> int | None:
    """The HTTP status of a GET, or None when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:  # noqa: S310 - local URL
            return int(r.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except (urllib.error.URLError, OSError):
        return None


class ServerProcess:
    """``python -m rag.ui ARGS --host 127.0.0.1 --port P`` in a child process.

    Use as a context manager; :attr:`url` is the base URL once :meth:`start` returns.
    """

    def __init__(self, args: Sequence[str], *, log_path: Path, cwd: Path | None = None,
                 env: dict[str, str] | None = None, host: str = "127.0.0.1", port: int | None = None) -> None:
        self.args = list(args)
        self.log_path = Path(log_path)
        self.cwd = cwd
        self.env = environment.child_environment(env)
        self.env.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
        self.env.setdefault("PYTHONUNBUFFERED", "1")
        self.host = host
        self.port = port or free_port(host)
        self.url = f"http://{host}:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.started_in: float | None = None

    def start(self, timeout: float = 240.0) -> "ServerProcess":
        """Start the server and wait until it answers HTTP; raises RuntimeError with the log
        tail when it exits or does not answer in time."""
        cmd = [sys.executable, "-m", "rag.ui", *self.args, "--host", self.host, "--port", str(self.port)]
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "wb")  # noqa: SIM115 - closed with the process
        t0 = time.perf_counter()
        self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=self.cwd, env=self.env,
                                     stdin=subprocess.DEVNULL)
        log.close()
        deadline = t0 + timeout
        while time.perf_counter() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the server exited with {self.proc.returncode}:\n{self.log_tail()}")
            if http_status(self.url + "/", timeout=2.0) == 200:
                self.started_in = time.perf_counter() - t0
                return self
            time.sleep(0.25)
        self.stop()
        raise RuntimeError(f"the server did not answer within {timeout:.0f}s:\n{self.log_tail()}")

    def log_tail(self, chars: int = 4000) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")[-chars:]
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=15)

    def __enter__(self) -> "ServerProcess":
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
