"""The index: models as embedders (``embedding``), BM25 terms (``lexical``), the crash-safe
versioned folder (``store``), the writers that build and update it (``lifecycle``) and search
over it (``retriever``)."""
