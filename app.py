"""Gradio chat over the documents in docs/ (the full UI: see rag/ui)."""

from __future__ import annotations

import sys


def main() -> int:
    from rag.ui.app import run

    return run(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
