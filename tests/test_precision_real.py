"""bf16 against float32 with the real packaged model (slow): the vectors, retrieval and answers
on the seed article. On a CPU without bf16 units torch emulates bf16: slower, the same checks."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import rag
from rag.encoder import model_folder
from rag.encoder import precision
from rag.ingest.chunking import split_sentences
from rag.encoder.e5_runtime import E5Embedder
from rag.index.embedding import load_embedder

pytestmark = pytest.mark.slow

DEV = Path(__file__).resolve().parents[2] / "shared" / "data" / "seed_qa_dev.jsonl"
BILINGUAL = Path(__file__).resolve().parents[1] / "benchmarks" / "seed_bilingual.jsonl"


def _questions() -> list[str]:
    path = DEV if DEV.is_file() else BILINGUAL  # a user's clone has no ../shared
    return [json.loads(line)["question"] for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


@pytest.fixture(scope="module")
def paragraphs(seed_path: Path) -> list[str]:
    doc = rag.clean_file(seed_path)
    return [p for p in doc.text.split("\n") if p.strip()]


def test_bf16_vectors_within_tolerance_of_float32(paragraphs: list[str]) -> None:
    questions = _questions()
    st32, st16 = load_embedder(precision="float32"), load_embedder(precision="bf16")
    assert st16.precision == "bf16"
    cos = _cosines(st32.encode(paragraphs, kind="passage"), st16.encode(paragraphs, kind="passage"))
    assert cos.min() >= 0.999, cos.min()
    folder = model_folder.materialize()
    q32, q16 = E5Embedder(folder, precision="float32"), E5Embedder(folder, precision="bf16")
    cos_q = _cosines(np.stack([q32.encode([q], kind="query")[0] for q in questions]),
                     np.stack([q16.encode([q], kind="query")[0] for q in questions]))
    assert cos_q.min() >= 0.999, cos_q.min()
    # int8, the old fast path, is measurably further off: the reason bf16 replaces it
    st8 = load_embedder(precision="int8")
    if st8.precision == "int8":
        assert _cosines(st32.encode(paragraphs, kind="passage"), st8.encode(paragraphs, kind="passage")).min() < cos.min()


def test_same_retrieval_and_answers_in_bf16(tmp_path: Path, seed_path: Path) -> None:
    results = {}
    for p in ("float32", "bf16"):
        info = rag.build_index([seed_path], index_dir=tmp_path / p, precision=p)
        qa = rag.load(tmp_path / p)
        assert qa.manifest.precision == p and qa.embedder.precision == p
        qa.span.reader.precision = p  # the reader at the same arithmetic
        rows = []
        for q in _questions():
            hits = qa.search(q, k=5)
            ans = qa.ask(q, k=5)
            rows.append(([h.chunk_id for h in hits], ans.found, ans.span, ans.text))
            for c in ans.citations:
                assert qa.document(c.source).text[c.start:c.end] == c.quote
        results[p] = rows
        assert info.chunks > 0
    # retrieval, the decision and the quoted sentences are the same; a span may move inside the
    # same quote where the reader's best two are a near tie (measured: 1 of the seed dev questions
    # with bf16 weights cast once, both spans wrong, overlapping)
    differ = 0
    for (h32, f32, s32, t32), (h16, f16, s16, t16) in zip(results["float32"], results["bf16"]):
        assert (h32, f32, t32) == (h16, f16, t16)
        if s32 != s16:
            differ += 1
            assert s32 and s16 and (s32 in s16 or s16 in s32) and s32 in t32 and s16 in t16
    assert differ <= 1


def test_reader_in_bf16_reads_like_float32(seed_path: Path) -> None:
    from rag.answer.span_reader import SpanReader

    doc = rag.clean_file(seed_path)
    sentences = [doc.text[s.start:s.end] for s in split_sentences(doc.text, 0, len(doc.text))][:12]
    r32, r16 = SpanReader.load(precision="float32"), SpanReader.load(precision="bf16")
    for q in _questions()[:10]:
        a, b = r32.read(q, sentences).best, r16.read(q, sentences).best
        assert (a is None) == (b is None)
        if a is not None and b is not None:
            assert abs(a.score - b.score) < 0.5
    assert precision.detect() in ("bf16", "float32")
