"""Limits on what a request may send the chat server, and how long Gradio keeps uploads.

Gradio's own upload route (``POST /gradio_api/upload``) takes any number of files (up to 1000
per request), each up to ``max_file_size``, and keeps them in its cache. :class:`RequestLimits`
is an ASGI middleware in front of it that refuses, with 413 and the reason in words,

* an upload request of more than :data:`MAX_UPLOAD_REQUEST_BYTES` or with more than
  :data:`MAX_FILES_PER_REQUEST` files;
* any other request with a body of more than :data:`MAX_OTHER_REQUEST_BYTES`.

The declared ``Content-Length`` is checked before anything is read, and the bytes actually
received are counted as they arrive (a chunked body has no length to check), so a request is
cut off as soon as it passes its limit: the upload route then fails as on a malformed form
(Gradio deletes the files it had begun to write), any other sees the client as gone.
:data:`UPLOAD_CACHE` is the cleanup schedule given to ``gr.Blocks(delete_cache=...)``.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from rag.ui.uploads import MAX_FILES_PER_BATCH, MAX_UPLOAD_BYTES

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

UPLOAD_CACHE_SECONDS = 3600
UPLOAD_CACHE: tuple[int, int] = (UPLOAD_CACHE_SECONDS, UPLOAD_CACHE_SECONDS)
"""Every hour, Gradio deletes the uploads it has held for more than an hour (and all of them
when the server stops). An upload that is added is saved elsewhere and its cached copy deleted
at once; this removes the ones never added."""

MAX_FILES_PER_REQUEST = MAX_FILES_PER_BATCH
"""Files one upload request may carry: as many as one add takes."""

MAX_UPLOAD_REQUEST_BYTES = MAX_FILES_PER_REQUEST * MAX_UPLOAD_BYTES + 1024 * 1024
"""Bytes one upload request may carry: that many files of the largest size, plus the form's
own headers."""

MAX_OTHER_REQUEST_BYTES = 16 * 1024 * 1024
"""Bytes any other request may carry (questions, the chat history, file references)."""

UPLOAD_PATH_SUFFIX = "/gradio_api/upload"
_MAX_PART_HEADER_BYTES = 16 * 1024
_BOUNDARY = re.compile(rb'boundary="?([^";,]+)"?', re.IGNORECASE)
_FILENAME = re.compile(rb"filename\*?=", re.IGNORECASE)


class RequestLimits:
    """ASGI middleware: the size limits above (see the module's docstring).

    Give it to Gradio as ``launch(app_kwargs={"middleware": [Middleware(RequestLimits)]})``.
    """

    def __init__(self, app: ASGIApp, *, max_upload_bytes: int = MAX_UPLOAD_REQUEST_BYTES,
                 max_files: int = MAX_FILES_PER_REQUEST, max_other_bytes: int = MAX_OTHER_REQUEST_BYTES) -> None:
        self.app = app
        self.max_upload_bytes = max_upload_bytes
        self.max_files = max_files
        self.max_other_bytes = max_other_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope.get("type") != "http":
            await self.app(scope, receive, send)
            return
        upload = str(scope.get("path", "")).rstrip("/").endswith(UPLOAD_PATH_SUFFIX)
        limit = self.max_upload_bytes if upload else self.max_other_bytes
        headers = {k.lower(): v for k, v in scope.get("headers", [])}
        declared = _int(headers.get(b"content-length"))
        if declared is not None and declared > limit:
            await _refuse(send, 413, _too_large(declared, limit, upload, declared=True))
            return
        parts = None
        if upload:
            m = _BOUNDARY.search(headers.get(b"content-type", b""))
            if m:
                parts = _FileCounter(m.group(1))
        state: dict[str, Any] = {"received": 0, "refused": None, "started": False}

        async def guarded_receive() -> Message:
            if state["refused"] is not None:
                return {"type": "http.disconnect"}
            message = await receive()
            if message.get("type") != "http.request":
                return message
            body = message.get("body", b"")
            state["received"] += len(body)
            problem = None
            if state["received"] > limit:
                problem = _too_large(state["received"], limit, upload, declared=False)
            elif parts is not None and parts.feed(body) > self.max_files:
                problem = (f"too many files in one upload: at most {self.max_files} can be sent at once "
                           "(add the others in another batch)")
            if problem is None:
                return message
            state["refused"] = problem
            if upload:
                # Gradio's form parser has written the files so far to its cache: this error is
                # the one on which it deletes them (on a plain disconnect it keeps them).
                raise _parse_error(problem)
            return {"type": "http.disconnect"}

        async def guarded_send(message: Message) -> None:
            if state["refused"] is not None:
                return  # the refusal is the answer: the application's own is dropped
            if message.get("type") == "http.response.start":
                state["started"] = True
            await send(message)

        try:
            await self.app(scope, guarded_receive, guarded_send)
        except Exception:
            if state["refused"] is None:
                raise
            # The application failed because the body was cut off: the refusal is the answer.
        # Sent once the application has finished (and cleaned up), not before.
        if state["refused"] is not None and not state["started"]:
            await _refuse(send, 413, state["refused"])


class _FileCounter:
    """Counts the file parts of a multipart/form-data body as its bytes arrive (a part whose
    headers name a ``filename``), keeping only the few bytes that may hold a split boundary."""

    def __init__(self, boundary: bytes) -> None:
        self.delimiter = b"\r\n--" + boundary
        self.buffer = b"\r\n"  # the body's first boundary has no CRLF before it
        self.in_headers = False
        self.done = False
        self.files = 0

    def feed(self, data: bytes) -> int:
        """Read ``data``; the number of file parts seen so far."""
        if self.done:
            return self.files
        self.buffer += data
        while True:
            if self.in_headers:
                end = self.buffer.find(b"\r\n\r\n")
                if end < 0:
                    if len(self.buffer) > _MAX_PART_HEADER_BYTES:
                        self.files += 1  # part headers this long are not a browser's: count it as a file
                        self.in_headers, self.buffer = False, self.buffer[-len(self.delimiter):]
                    return self.files
                if _FILENAME.search(self.buffer[:end]):
                    self.files += 1
                self.in_headers, self.buffer = False, self.buffer[end + 4:]
                continue
            at = self.buffer.find(self.delimiter)
            if at < 0:
                self.buffer = self.buffer[-(len(self.delimiter) - 1):]
                return self.files
            rest = self.buffer[at + len(self.delimiter):]
            if len(rest) < 2:
                self.buffer = self.buffer[at:]
                return self.files
            if rest.startswith(b"--"):  # the closing boundary
                self.done, self.buffer = True, b""
                return self.files
            self.in_headers, self.buffer = True, rest


def _parse_error(message: str) -> Exception:
    try:
        from gradio.route_utils import MultiPartException
    except ImportError:  # pragma: no cover - another Gradio: the body just ends here
        return ConnectionAbortedError(message)
    return MultiPartException(message)


def _int(value: bytes | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _mb(n: int) -> str:
    return f"{n / (1024 * 1024):.0f} MB" if n >= 1024 * 1024 else f"{n} bytes"


def _too_large(size: int, limit: int, upload: bool, *, declared: bool) -> str:
    what = "upload" if upload else "request"
    size_words = f"is {_mb(size)}" if declared else "goes on past that"
    return f"the {what} {size_words}, over the {_mb(limit)} a request may send"


async def _refuse(send: Send, status: int, text: str) -> None:
    body = (text + "\n").encode("utf-8")
    await send({
        "type": "http.response.start",
        "status": status,
        "headers": [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close")],
    })
    await send({"type": "http.response.body", "body": body})
