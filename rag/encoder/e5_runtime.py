"""multilingual-e5-small for questions, without importing sentence-transformers.

Index builds embed passages with sentence-transformers (:func:`rag.index.embedding.load_embedder`).
Answering questions needs the same model for one short text at a time, and importing
sentence-transformers (transformers' model registry, scikit-learn, ...) is most of a start's
cost. :class:`E5Embedder` reads the same materialised model folder (:mod:`rag.encoder.model_folder`) with the
``tokenizers`` library and the plain-torch encoder of :mod:`rag.encoder.bert`, and reproduces what
sentence-transformers computes for it: the e5 prompt (``"query: "``/``"passage: "``), the
tokenizer with truncation at the model's ``max_seq_length``, mean pooling over the tokens
(prompt included), L2 normalisation, and the same precision (:mod:`rag.encoder.precision`: bf16
where the CPU has bf16 units, the index's own precision when answering it). In bf16 the Linear
weights are cast once at load (:func:`rag.encoder.bert.cast_linears`) rather than by autocast on
every call: a query is bound by reading the weights, so this is 1.6x faster than float32, where
autocast was slower than float32 (:class:`rag.encoder.bert.CastLinear` has the numbers).
``tests/test_e5_runtime_real.py`` checks that the two agree.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rag.encoder import precision as rag_precision
from rag.errors import ModelError
from rag.encoder.torch_threads import threads_for, torch_threads
from rag.encoder.batching import TOKEN_BUDGET, token_batches


class E5Tokenizer:
    """A ``tokenizer.json`` run by the ``tokenizers`` library, called like the part of a
    transformers fast tokenizer that rag uses (ids, offsets, special-token ids)."""

    def __init__(self, path: Path, *, max_length: int = 512) -> None:
        from tokenizers import Tokenizer

        try:
            tok = Tokenizer.from_file(str(path))
        except Exception as exc:  # noqa: BLE001 - tokenizers raises plain Exceptions
            raise ModelError(f"{path}: unreadable tokenizer ({exc})") from exc
        tok.no_truncation()  # as transformers does: truncation only where a call asks for it
        tok.no_padding()
        self._tok = tok
        self.max_length = max_length
        ids = {name: tok.token_to_id(token) for name, token in
               (("cls", "<s>"), ("sep", "</s>"), ("pad", "<pad>"), ("unk", "<unk>"))}
        cls, sep, pad, unk = ids["cls"], ids["sep"], ids["pad"], ids["unk"]
        if cls is None or sep is None or pad is None or unk is None:
            raise ModelError(f"{path}: tokenizer lacks the special tokens {[k for k, v in ids.items() if v is None]}")
        self.cls_token_id: int = cls
        self.sep_token_id: int = sep
        self.pad_token_id: int = pad
        self.unk_token_id: int = unk
        # truncation below keeps the last token: right for the e5 template "<s> $A </s>" only
        probe = tok.encode("a").ids
        if len(probe) < 2 or probe[0] != cls or probe[-1] != sep:
            raise ModelError(f"{path}: tokenizer does not wrap texts as <s> ... </s>")

    def __call__(self, text: str | Sequence[str], *, add_special_tokens: bool = True,
                 return_offsets_mapping: bool = False, truncation: bool = False,
                 max_length: int | None = None, verbose: bool = True) -> dict[str, Any]:
        single = isinstance(text, str)
        texts = [text] if single else list(text)
        encs = self._tok.encode_batch(texts, add_special_tokens=add_special_tokens)
        limit = (self.max_length if max_length is None else max_length) if truncation else None
        ids = [list(e.ids) for e in encs]
        offsets = [list(e.offsets) for e in encs]
        if limit is not None:
            ids = [self._truncate(x, limit, add_special_tokens) for x in ids]
            offsets = [self._truncate(o, limit, add_special_tokens) for o in offsets]
        out: dict[str, Any] = {"input_ids": ids[0] if single else ids}
        if return_offsets_mapping:
            out["offset_mapping"] = offsets[0] if single else offsets
        return out

    @staticmethod
    def _truncate(seq: list[Any], limit: int, specials: bool) -> list[Any]:
        if len(seq) <= limit:
            return seq
        return seq[: limit - 1] + seq[-1:] if specials else seq[:limit]

    def batch(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Padded ``input_ids`` and ``attention_mask`` with special tokens, truncated as
        sentence-transformers does (the closing ``</s>`` kept)."""
        rows = self(list(texts), truncation=True)["input_ids"]
        width = max(len(r) for r in rows)
        ids = np.full((len(rows), width), self.pad_token_id, dtype=np.int64)
        mask = np.zeros((len(rows), width), dtype=np.int64)
        for i, r in enumerate(rows):
            ids[i, : len(r)] = r
            mask[i, : len(r)] = 1
        return ids, mask


class E5Embedder:
    """The packaged multilingual-e5-small (an :class:`rag.index.embedding.Embedder`) on plain torch.

    ``folder`` is a materialised model folder (:func:`rag.encoder.model_folder.materialize`); its weights are
    checked against the manifest's sha256 and for NaN/inf before loading
    (:func:`rag.encoder.model_folder.verify_weights`), a :class:`~rag.errors.ModelError` if they fail.
    """

    def __init__(self, folder: Path, *, precision: str | None = None, batch_size: int = 32) -> None:
        """``precision``: :func:`rag.encoder.precision.choose` (an index's own, when answering it)."""
        import torch  # fail here, not on the first question

        from rag.encoder.bert import INT8_LAYERS, BertModel, cast_linears
        from rag.encoder.model_files import MAX_SEQ_LENGTH, PROMPTS
        from rag.encoder.model_folder import verify_weights
        from rag.encoder.quantize import quantize_int8
        from rag.encoder.names import E5_SMALL

        self.name = E5_SMALL
        self.folder = folder
        self.batch_size = batch_size
        try:
            verify_weights(folder)  # sha256 and finiteness; free when unchanged since verified
            st_config = _read_json(folder / "config_sentence_transformers.json")
            self._prompts: dict[str, str] = dict(st_config.get("prompts") or PROMPTS)
            max_len = int(_read_json(folder / "sentence_bert_config.json").get("max_seq_length", MAX_SEQ_LENGTH))
            self.tokenizer = E5Tokenizer(folder / "tokenizer.json", max_length=max_len)
            self.bert = BertModel.load(folder)
        except ModelError:
            raise
        except Exception as exc:  # noqa: BLE001 - safetensors, torch and json failures alike
            raise ModelError(f"{folder}: cannot load the e5 encoder ({exc.__class__.__name__}: {exc})") from exc
        wanted = rag_precision.choose(precision)
        self.int8 = wanted == "int8" and quantize_int8(self.bert, INT8_LAYERS)
        #: the arithmetic of every forward pass: "int8" only where the kernels exist
        self.precision = "float32" if wanted == "int8" and not self.int8 else wanted
        if self.precision == "bf16":  # weights cast once: no autocast re-casting them per call
            cast_linears(self.bert, torch.bfloat16)
        self.dimension = self.bert.shape.hidden_size

    def encode(self, texts: Sequence[str], *, kind: str, progress: bool = False) -> np.ndarray:
        import torch

        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        prompt = self._prompts.get(kind, "")
        prompted = [prompt + t for t in texts]
        # the batches index builds form (rag.encoder.batching, by the texts' own tokens), so
        # that a text gets the same padding, and in int8 the same activation scales, as there
        lengths = [len(r) for r in self.tokenizer(list(texts), truncation=True)["input_ids"]]
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        with torch_threads(threads_for(len(texts))):
            for idx in token_batches(lengths, self.batch_size, TOKEN_BUDGET):
                ids, mask = self.tokenizer.batch([prompted[i] for i in idx])
                with torch.inference_mode():  # bf16: the Linear weights are bf16 already (cast_linears)
                    m = torch.from_numpy(mask)
                    h = self.bert(torch.from_numpy(ids), m).float()
                    w = m.unsqueeze(-1).to(h.dtype)
                    pooled = (h * w).sum(1) / w.sum(1).clamp(min=1e-9)
                    vecs = torch.nn.functional.normalize(pooled, p=2, dim=1)
                out[idx] = vecs.numpy()
        return out

    def visibility(self, texts: Sequence[str]) -> np.ndarray:
        out = np.ones(len(texts), dtype=np.float32)
        unk = self.tokenizer.unk_token_id
        rows = self.tokenizer(list(texts), add_special_tokens=False, truncation=True)["input_ids"]
        for i, ids in enumerate(rows):
            if ids:
                out[i] = 1.0 - sum(1 for t in ids if t == unk) / len(ids)
        return out


def load_e5_embedder(*, precision: str | None = None, batch_size: int = 32,
                     progress: Callable[[str], None] | None = None) -> E5Embedder:
    """The packaged e5 model (materialised on first use) on the plain-torch runtime."""
    from rag.encoder.model_folder import materialize

    return E5Embedder(materialize(progress=progress), precision=precision, batch_size=batch_size)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise ModelError(f"{path}: unreadable ({exc})") from exc
    return data if isinstance(data, dict) else {}
