"""``python app.py``: make sure the index is ready, then serve the chat on 127.0.0.1.

Safe defaults: listens on 127.0.0.1 unless ``--host``/``GRADIO_SERVER_NAME`` say otherwise, no
share link, no extra served paths (the index, uploads and documents folders are blocked from
Gradio's file route), uploads capped at 5 MB a file and 20 files a request (other requests at
16 MB: :mod:`rag.ui.http_limits`), uploads never added deleted after an hour, Gradio's
``/monitoring`` off unless ``--monitoring``, one index write at a time.

``--index`` is a folder or a ``postgresql://`` (``postgres://``) URL; the terminal names a
database by its URL with any password masked (put the password in ``PGPASSWORD`` or
``~/.pgpass``: a command line is visible to other users of the machine).

This module is the program's front end, so it prints (progress while building, where the chat
is served, errors in one line); the modules it calls never do.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from rag import environment
from rag.errors import RagError
from rag.terminal import progress_printer

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 7860


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="app.py",
        description="Chat with your documents: extractive answers with citations (Gradio UI).",
    )
    p.add_argument("--docs", default="docs", help="folder of documents to index (default: docs)")
    p.add_argument("--index", default="index",
                   help="index folder, or a postgresql://user@host:port/db URL (password in PGPASSWORD or "
                        "~/.pgpass, not the URL) (default: index)")
    p.add_argument("--uploads", default="uploads", help="folder where uploaded documents are kept (default: uploads)")
    p.add_argument("--model", default=None,
                   help="embedding model for building the index (default: the index's, or multilingual-e5-small)")
    p.add_argument("--host", default=None,
                   help=f"address to listen on (default: $GRADIO_SERVER_NAME or {DEFAULT_HOST}; "
                        "0.0.0.0 exposes the chat to your network)")
    p.add_argument("--port", type=int, default=None,
                   help=f"port (default: $GRADIO_SERVER_PORT, or the first free one from {DEFAULT_PORT})")
    p.add_argument("--monitoring", action="store_true",
                   help="serve Gradio's traffic monitoring under /monitoring (off by default)")
    p.add_argument("--upload-cache-seconds", type=int, default=None, metavar="S",
                   help="delete uploads never added to the index after S seconds, checked every S seconds "
                        "(default 3600)")
    return p


def resolve_address(host: str | None, port: int | None, env: Mapping[str, str]) -> tuple[str, int | None]:
    """Where to listen: the flags, else ``GRADIO_SERVER_NAME``/``GRADIO_SERVER_PORT``, else
    127.0.0.1 and the first free port from 7860 (``None`` lets Gradio pick)."""
    host = host or env.get("GRADIO_SERVER_NAME") or DEFAULT_HOST
    if port is None and env.get("GRADIO_SERVER_PORT"):
        try:
            port = int(env["GRADIO_SERVER_PORT"])
        except ValueError:
            raise RagError(f"GRADIO_SERVER_PORT={env['GRADIO_SERVER_PORT']!r} is not a port number") from None
    if port is not None and not 0 < port < 65536:
        raise RagError(f"port {port} is out of range (1-65535)")
    return host, port


def run(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(list(argv) if argv is not None else None)
    if args.upload_cache_seconds is not None and args.upload_cache_seconds <= 0:
        print(f"error: --upload-cache-seconds {args.upload_cache_seconds}: must be a positive number of seconds",
              file=sys.stderr)
        return 1
    environment.set_app_defaults()
    try:
        host, port = resolve_address(args.host, args.port, environment.variables())
    except RagError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    docs, uploads = Path(args.docs), Path(args.uploads)
    if not docs.is_dir():
        print(f"error: {docs}: no such folder of documents (run from the project folder, or give --docs DIR)",
              file=sys.stderr)
        return 1
    t0 = time.perf_counter()
    try:
        from rag.index.folder_store import index_location
        from rag.ui.service import QAService
        from rag.ui.startup import ensure_index

        index = index_location(args.index)  # a folder, or a postgresql:// URL kept as given
        service = QAService(index, docs, uploads, model=args.model)
        sources = service.source_paths()
        # service.location: a database URL with its password masked
        print(f"Checking the index in {service.location} against {', '.join(str(s) for s in sources)} …",
              file=sys.stderr)
        result = ensure_index(index, sources, args.model, progress=progress_printer(sys.stderr, indent="  "))
        if result.plan.rebuild:
            print(f"Built the index ({result.plan.reason}): {result.documents} document(s), {result.chunks} "
                  f"passage(s) in {result.seconds:.1f}s", file=sys.stderr)
            for s in result.skipped:
                print(f"  skipped {s}", file=sys.stderr)
            _say_excluded(result.excluded)
            service.load(result.qa)
        else:
            print(f"The index is up to date: {result.documents} document(s), {result.chunks} passage(s)",
                  file=sys.stderr)
            _say_excluded(result.excluded)
            # Load the model and index while Gradio imports and the page is built: the two
            # overlap (much of each is native code), and questions wait for the load anyway.
            print("Loading the model and index in the background …", file=sys.stderr)
            service.load_in_background()
        from rag.ui.http_limits import UPLOAD_CACHE_SECONDS
        from rag.ui.layout import CSS, HEAD, JS, build_blocks, theme
        from rag.ui.uploads import MAX_TRANSFER_BYTES

        cache_seconds = args.upload_cache_seconds or UPLOAD_CACHE_SECONDS
        demo = build_blocks(service, default_mode=_default_mode(index), delete_cache=(cache_seconds, cache_seconds))
    except RagError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    from starlette.middleware import Middleware

    from rag.ui.http_limits import RequestLimits

    blocked = [str(p.resolve()) for p in (index, uploads, docs) if isinstance(p, Path)]  # a database: no folder
    demo.queue(max_size=256, default_concurrency_limit=1)
    try:
        _, local_url, _ = demo.launch(
            server_name=host,
            server_port=port,
            share=False,
            inbrowser=False,
            prevent_thread_lock=True,
            quiet=True,
            show_error=True,
            max_file_size=MAX_TRANSFER_BYTES,
            enable_monitoring=args.monitoring,
            app_kwargs={"middleware": [Middleware(RequestLimits)]},
            allowed_paths=[],
            blocked_paths=blocked,
            ssr_mode=False,
            mcp_server=False,
            pwa=False,
            footer_links=["api", "settings"],
            theme=theme(),
            css=CSS,
            js=JS,
            head=HEAD,
        )
    except OSError as exc:
        print(f"error: cannot start the server on {host}:{port or DEFAULT_PORT}: {exc}", file=sys.stderr)
        return 1
    print(f"Chat on {local_url} (server up after {time.perf_counter() - t0:.1f}s; Ctrl+C stops it)", file=sys.stderr)
    if not service.ready:
        # Still loading: the page shows "Loading…" and questions wait for it.
        _report_when_loaded(service, t0)
    if host not in ("127.0.0.1", "localhost", "::1"):
        print(f"warning: listening on {host}: anyone who can reach this machine can use the chat and add documents",
              file=sys.stderr)
    try:
        demo.block_thread()
    except KeyboardInterrupt:
        pass
    return 0


def _say_excluded(excluded: Sequence[str]) -> None:
    if excluded:
        print(f"  {len(excluded)} document(s) excluded, not indexed (restore them in the Documents tab): "
              + ", ".join(excluded[:5]) + (" …" if len(excluded) > 5 else ""), file=sys.stderr)


def _report_when_loaded(service: Any, t0: float) -> None:
    """Say on the terminal when the background load is done (or why it failed)."""
    import threading

    def watch() -> None:
        try:
            service.current(timeout=3600)
        except RagError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return
        print(f"Ready to answer ({time.perf_counter() - t0:.1f}s after start)", file=sys.stderr)

    threading.Thread(target=watch, name="rag-ui-load-report", daemon=True).start()


def _default_mode(index: Path | str) -> str:
    """The retrieval mode the index was built for (a folder or a database URL); hybrid when unreadable."""
    try:
        from rag.index.folder_store import open_store

        return open_store(index).manifest()[0].settings.mode
    except RagError:
        return "hybrid"
