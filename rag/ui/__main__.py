"""``python -m rag.ui``: the same as ``python app.py``."""

from __future__ import annotations

import sys

from rag.ui.app import run

if __name__ == "__main__":
    sys.exit(run(sys.argv[1:]))
