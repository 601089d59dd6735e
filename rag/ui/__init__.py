"""The chat UI (Gradio 6) over a :mod:`rag` index.

* :mod:`rag.ui.render`   answers, sources, reports and the document viewer to escaped HTML (no Gradio import)
* :mod:`rag.ui.uploads`  checking and saving uploaded files safely
* :mod:`rag.ui.service`  the loaded QA object behind a lock; adding, removing (deleting an upload,
  excluding a documents-folder file) and restoring documents; index swap
* :mod:`rag.ui.startup`  making sure the index exists and matches the documents at start (excluded
  files left out)
* :mod:`rag.ui.handlers` what each UI event does, as plain functions over the service
* :mod:`rag.ui.layout`   the Blocks layout and the wiring of events and API endpoints
* :mod:`rag.ui.http_limits` request limits in front of Gradio's routes; the upload cache's cleanup
* :mod:`rag.ui.app`      command line options and launch (``python app.py``)

No retrieval logic lives here: every answer comes from :meth:`rag.QA.ask`.
"""

from __future__ import annotations

__all__ = ["run"]


def run(argv: list[str] | None = None) -> int:
    """Start the chat server (see ``python app.py --help``)."""
    from rag.ui.app import run as _run

    return _run(argv)
