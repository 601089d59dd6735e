"""The packaged embedding models' names, as the index manifest and ``--model`` spell them.

They live in the encoder layer so that the encoder names its own model without importing the
index layer (:mod:`rag.index.embedding` re-exports them).
"""

from __future__ import annotations

MINILM = "all-MiniLM-L6-v2"
E5_SMALL = "multilingual-e5-small"
