"""What Gradio's own routes accept: upload requests bounded in files and bytes, other requests
in bytes, uploads never added deleted from Gradio's cache, ``/monitoring`` off unless asked.

A live server (``python -m rag.ui`` on a free local port) with a 2-second upload cache."""

from __future__ import annotations

import shutil
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

import rag
from rag.ui.app import build_parser
from rag.ui.http_limits import MAX_FILES_PER_REQUEST, MAX_OTHER_REQUEST_BYTES, MAX_UPLOAD_REQUEST_BYTES

ROOT = Path(__file__).resolve().parent.parent
SEED = ROOT / "docs" / "000_7acc4ff99040d81b.txt"
CACHE_SECONDS = 2


class Server:
    def __init__(self, url: str, port: int, cache: Path) -> None:
        self.url, self.port, self.cache = url, port, cache

    def cached_files(self) -> list[Path]:
        return [p for p in self.cache.rglob("*") if p.is_file()]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    from rag.ui.launcher import ServerProcess

    base = tmp_path_factory.mktemp("ui_limits")
    (base / "docs").mkdir()
    shutil.copy(SEED, base / "docs" / SEED.name)
    rag.build_index([base / "docs"], index_dir=base / "index", model="test-hash")
    cache = base / "gradio-cache"
    args = ["--docs", str(base / "docs"), "--index", str(base / "index"), "--uploads", str(base / "uploads"),
            "--model", "test-hash", "--upload-cache-seconds", str(CACHE_SECONDS)]
    with ServerProcess(args, log_path=base / "server.log", cwd=ROOT, env={"GRADIO_TEMP_DIR": str(cache)}) as srv:
        yield Server(srv.url, srv.port, cache)


def raw_status(port: int, head: str, timeout: float = 10.0) -> int:
    """Send only a request's head (no body) and return the status the server answers with."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(head.encode("ascii"))
        data = b""
        while b"\r\n" not in data:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
    return int(data.split(b" ", 2)[1])


def test_monitoring_is_off_unless_asked(server: Server):
    with httpx.Client(base_url=server.url, timeout=30) as http:
        for path in ("/monitoring", "/monitoring/summary", "/monitoring/some-key"):
            r = http.get(path, follow_redirects=False)
            assert r.status_code in (403, 404), (path, r.status_code, r.text[:200])
    assert build_parser().parse_args([]).monitoring is False
    assert build_parser().parse_args(["--monitoring"]).monitoring is True


def test_upload_of_more_files_than_one_add_takes_is_refused(server: Server):
    files = [("files", (f"n{i}.txt", f"note {i} of many".encode(), "text/plain")) for i in range(MAX_FILES_PER_REQUEST + 1)]
    before = set(server.cached_files())
    with httpx.Client(base_url=server.url, timeout=60) as http:
        r = http.post("/gradio_api/upload", files=files)
        assert r.status_code == 413, (r.status_code, r.text[:300])
        assert f"at most {MAX_FILES_PER_REQUEST}" in r.text
        assert set(server.cached_files()) <= before, "nothing of the refused upload is kept"
        r = http.post("/gradio_api/upload", files=files[:MAX_FILES_PER_REQUEST])
        assert r.status_code == 200, r.text[:300]
        assert len(r.json()) == MAX_FILES_PER_REQUEST


def test_request_declaring_too_many_bytes_is_refused_before_its_body(server: Server):
    host = f"Host: 127.0.0.1:{server.port}\r\n"
    upload = (f"POST /gradio_api/upload HTTP/1.1\r\n{host}Content-Type: multipart/form-data; boundary=b0undary\r\n"
              f"Content-Length: {MAX_UPLOAD_REQUEST_BYTES + 1}\r\n\r\n")
    assert raw_status(server.port, upload) == 413
    other = (f"POST /gradio_api/queue/join HTTP/1.1\r\n{host}Content-Type: application/json\r\n"
             f"Content-Length: {MAX_OTHER_REQUEST_BYTES + 1}\r\n\r\n")
    assert raw_status(server.port, other) == 413


def test_upload_streaming_past_the_limit_is_cut_off(server: Server):
    """A chunked body has no length to check: its bytes are counted as they come."""
    boundary = b"limitboundary"
    chunk = b"a" * (1024 * 1024)
    sent = 0

    def body() -> Iterator[bytes]:
        nonlocal sent
        yield b"--" + boundary + b'\r\nContent-Disposition: form-data; name="padding"\r\n\r\n'
        for _ in range(MAX_UPLOAD_REQUEST_BYTES // len(chunk) + 8):
            sent += len(chunk)
            yield chunk
        yield b"\r\n--" + boundary + b"--\r\n"

    headers = {"Content-Type": f"multipart/form-data; boundary={boundary.decode()}"}
    before = set(server.cached_files())
    with httpx.Client(base_url=server.url, timeout=60) as http:
        try:
            r = http.post("/gradio_api/upload", content=body(), headers=headers)
            assert r.status_code == 413, (r.status_code, r.text[:300])
        except (httpx.WriteError, httpx.ReadError, httpx.RemoteProtocolError):
            pass  # the server closed the connection while the client was still sending
        assert sent <= MAX_UPLOAD_REQUEST_BYTES + 8 * len(chunk)
        assert http.get("/").status_code == 200, "the server still answers"
    assert set(server.cached_files()) <= before


def test_uploads_never_added_are_deleted_from_gradios_cache(server: Server):
    with httpx.Client(base_url=server.url, timeout=60) as http:
        r = http.post("/gradio_api/upload", files=[("files", ("stray.bin", b"\x00\x01 never added", "application/octet-stream"))])
        assert r.status_code == 200, r.text[:300]
        (path,) = r.json()
    cached = Path(path)
    assert cached.is_file() and server.cache in cached.parents
    deadline = time.monotonic() + 10 * CACHE_SECONDS + 10
    while cached.exists() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not cached.exists(), f"{cached} is still in Gradio's cache"


def test_upload_cache_seconds_must_be_positive(capsys: pytest.CaptureFixture[str]):
    from rag.ui.app import run

    assert run(["--upload-cache-seconds", "0"]) == 1
    assert "positive" in capsys.readouterr().err
