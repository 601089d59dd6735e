"""The index: models as embedders (``embedding``), BM25 terms (``lexical``), the crash-safe
versioned folder (``store``) behind the store protocol (``store_api``, ``folder_store``), the
one writer that builds and changes it (``writer``: from ``inputs``, reusing what it can:
``reuse``), how it compares with its files (``status``) and search over it (``retriever``)."""
