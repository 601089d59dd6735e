"""The plain-torch e5 runtime against sentence-transformers, with the real packaged model (slow)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import rag
from rag.encoder.e5_runtime import E5Embedder, load_e5_embedder
from rag.index.embedding import load_embedder

pytestmark = pytest.mark.slow

TEXTS = [
    "前三季度规模以上工业增加值同比增长多少？",
    "規(guī)模以上工業增加值同比增長5.8%，比上半年加快0.3個百分點。",
    "How long is the Greywater Bridge?",
    "长" * 700,  # longer than 512 tokens: truncated the same way
    "",
]


@pytest.fixture(scope="module")
def both() -> tuple[E5Embedder, object]:
    return load_e5_embedder(), load_embedder("multilingual-e5-small")


@pytest.mark.parametrize("kind", ["query", "passage"])
def test_same_vectors_as_sentence_transformers(both, kind: str) -> None:
    light, st = both
    a, b = light.encode(TEXTS, kind=kind), st.encode(TEXTS, kind=kind)
    assert a.shape == b.shape == (len(TEXTS), 384)
    assert np.abs(a - b).max() < 1e-4
    # one text alone, as a question is asked (int8 activations are scaled per batch, so a
    # text's vector depends slightly on its batch: compare like with like)
    one, one_st = light.encode(TEXTS[:1], kind=kind), st.encode(TEXTS[:1], kind=kind)
    assert np.abs(one - one_st).max() < 1e-4


def test_same_vectors_over_several_batches(both) -> None:
    """More texts than one batch: the batches (and their int8 scales) are formed alike."""
    light, st = both
    texts = [f"第{i}段：" + "规模以上工业增加值同比增长" * (i % 7 + 1) for i in range(75)]
    a, b = light.encode(texts, kind="passage"), st.encode(texts, kind="passage")
    assert np.abs(a - b).max() < 1e-4


def test_same_tokens_offsets_and_visibility(both) -> None:
    light, st = both
    hf = st.model.tokenizer
    for text in TEXTS:
        want = hf(text, add_special_tokens=False, return_offsets_mapping=True)
        got = light.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        assert got["input_ids"] == want["input_ids"]
        assert [tuple(o) for o in got["offset_mapping"]] == [tuple(o) for o in want["offset_mapping"]]
    assert np.allclose(light.visibility(TEXTS), st.visibility(TEXTS))


def test_answering_does_not_import_sentence_transformers(tmp_path: Path, seed_path: Path) -> None:
    """The start-up saving this runtime exists for: load + ask never import sentence-transformers."""
    index = tmp_path / "index"
    rag.build_index([seed_path], index_dir=index)
    code = (
        "import sys, rag\n"
        f"qa = rag.load({str(index)!r})\n"
        "a = qa.ask('前三季度规模以上工业增加值同比增长多少？')\n"
        "assert a.found and a.span, a\n"
        "bad = [m for m in ('sentence_transformers', 'sklearn') if m in sys.modules]\n"
        "assert not bad, bad\n"
        "print(type(qa.embedder).__name__)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "E5Embedder"
