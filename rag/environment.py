"""Every environment variable rag reads or sets, in one place (the rest of rag asks this module).

Read, each at the moment it is asked for (so a change of the environment counts):

* ``RAG_CACHE_DIR``: where the materialised model folder lives (:func:`cache_dir`; else
  ``$XDG_CACHE_HOME/rag``, else ``~/.cache/rag``);
* ``RAG_PRECISION``: the encoder arithmetic when no caller chose one (:func:`precision`,
  checked by :mod:`rag.encoder.precision`);
* ``RAG_READER_DIR``: a span reader folder to load instead of the shipped one (:func:`reader_dir`);
* ``HF_HUB_OFFLINE``: ``0`` lets a sentence-transformers model by name be downloaded
  (:func:`hub_offline`; offline otherwise);
* ``GRADIO_SERVER_NAME`` / ``GRADIO_SERVER_PORT``: where the chat listens without ``--host`` /
  ``--port`` (read by :func:`rag.ui.app.resolve_address` from :func:`variables`).

Set, only where not set already: the Hugging Face libraries' offline and quiet flags before a
model loads (:func:`set_offline_defaults`), Gradio's analytics flag in the chat program
(:func:`set_app_defaults`), and oneDNN's kernel cache size before the encoders run
(``ONEDNN_PRIMITIVE_CACHE_CAPACITY``, :func:`set_kernel_cache_default`). Child processes get :func:`child_environment`.

Settings proper (chunking, retrieval, reader thresholds) are in :mod:`rag.settings`, never in
the environment.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

CACHE_DIR = "RAG_CACHE_DIR"
PRECISION = "RAG_PRECISION"
READER_DIR = "RAG_READER_DIR"
HUB_OFFLINE = "HF_HUB_OFFLINE"
SERVER_NAME = "GRADIO_SERVER_NAME"
SERVER_PORT = "GRADIO_SERVER_PORT"
KERNEL_CACHE = "ONEDNN_PRIMITIVE_CACHE_CAPACITY"

#: Set (where unset) before a Hugging Face library loads a model: offline, no telemetry, quiet.
OFFLINE_DEFAULTS: Mapping[str, str] = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
}

#: Set (where unset) by the chat program before anything else: no Gradio analytics, offline.
APP_DEFAULTS: Mapping[str, str] = {
    "GRADIO_ANALYTICS_ENABLED": "False",
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "TOKENIZERS_PARALLELISM": "false",
}


def variables() -> Mapping[str, str]:
    """The process's environment, to read (a live view: later changes show)."""
    return os.environ


def cache_dir() -> Path:
    """``$RAG_CACHE_DIR``, else ``$XDG_CACHE_HOME/rag``, else ``~/.cache/rag``."""
    explicit = os.environ.get(CACHE_DIR)
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "rag"


def precision() -> str | None:
    """``$RAG_PRECISION`` without surrounding spaces, or None when unset or blank (unchecked)."""
    value = os.environ.get(PRECISION, "").strip()
    return value or None


def reader_dir() -> Path | None:
    """``$RAG_READER_DIR`` as a path, or None when unset or empty (the shipped reader)."""
    value = os.environ.get(READER_DIR)
    return Path(value) if value else None


def hub_offline() -> bool:
    """Whether Hugging Face models load from local files only: unless ``HF_HUB_OFFLINE=0``."""
    return os.environ.get(HUB_OFFLINE, "1") != "0"


def _set_defaults(defaults: Mapping[str, str]) -> None:
    for name, value in defaults.items():
        os.environ.setdefault(name, value)


def set_offline_defaults() -> None:
    """:data:`OFFLINE_DEFAULTS`, where not set already (before a model library loads)."""
    _set_defaults(OFFLINE_DEFAULTS)


def set_app_defaults() -> None:
    """:data:`APP_DEFAULTS`, where not set already (the chat program, at its start)."""
    _set_defaults(APP_DEFAULTS)


def set_kernel_cache_default(entries: int) -> None:
    """``ONEDNN_PRIMITIVE_CACHE_CAPACITY=entries``, where not set already (oneDNN reads it once,
    when it first compiles a kernel: :data:`rag.encoder.torch_threads.KERNEL_CACHE_ENTRIES`)."""
    _set_defaults({KERNEL_CACHE: str(entries)})


def child_environment(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for a child process: this one's, with ``extra`` on top."""
    return {**os.environ, **(extra or {})}
