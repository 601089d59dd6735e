"""BM25 without the corpus in memory (:mod:`rag.index.postings`): exact scores from chunks'
term ids equal the folder store's bm25s scores, and the postings' heads hold each term's
highest impacts."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np

from rag.index.lexical import BM25Index, chunk_terms, tokenize
from rag.index.pg_rows import document_frequencies
from rag.index.postings import corpus_stats, exact_scores, head_scores, impact_heads

ROOT = Path(__file__).resolve().parent.parent
SEED = ROOT / "docs" / "000_7acc4ff99040d81b.txt"


def _corpus() -> list[str]:
    text = SEED.read_text(encoding="utf-8")
    parts = [text[i:i + 120] for i in range(0, len(text), 90)]
    return parts + ["The library opens at 9 am on Sundays.", "", "The bridge was built in 1890; the bridge is old."]


def test_exact_scores_are_the_bm25s_scores_of_the_folder_store():
    texts = _corpus()
    terms = chunk_terms(texts)
    bm25 = BM25Index.fit_terms(terms)
    stats = corpus_stats(terms)
    df = dict(enumerate(document_frequencies(terms).tolist()))
    vocab = {t: i for i, t in enumerate(terms.vocabulary)}
    rows = [terms.row(i) for i in range(len(terms))]
    rng = random.Random(7)
    queries = ["前三季度规模以上工业增加值同比增长多少？", "bridge bridge built", "高技术制造业", "library 9 am"]
    queries += ["".join(rng.sample(texts[3], 12)) for _ in range(20)]
    for q in queries:
        ids = [vocab[t] for t in tokenize(q) if t in vocab and df[vocab[t]] > 0]
        want = bm25.scores(q).scores
        got = exact_scores(ids, rows, df, stats)
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)
        assert np.array_equal(np.argsort(-got, kind="stable"), np.argsort(-want, kind="stable")), q


def test_heads_hold_each_terms_highest_impacts_and_sum_to_the_scores_when_whole():
    texts = _corpus()
    terms = chunk_terms(texts)
    stats = corpus_stats(terms)
    df = document_frequencies(terms)
    whole = {t: (ids, imp) for t, ids, imp in impact_heads(terms, len(texts), stats)}
    assert set(whole) == set(np.flatnonzero(df).tolist())
    assert all(len(ids) == df[t] for t, (ids, _) in whole.items())
    cut = {t: (ids, imp) for t, ids, imp in impact_heads(terms, 3, stats)}
    for t, (ids, imp) in cut.items():
        assert len(ids) == min(3, df[t])
        assert np.all(np.diff(imp) <= 0) if df[t] > 3 else np.all(np.diff(ids) > 0)  # cut: highest first
        assert imp[-1] >= np.sort(whole[t][1])[::-1][min(3, df[t]) - 1]  # the highest ones
    vocab = {t: i for i, t in enumerate(terms.vocabulary)}
    bm25 = BM25Index.fit_terms(terms)
    q = "规模以上工业增加值同比增长"
    ids = [vocab[t] for t in tokenize(q) if t in vocab]
    chunks, scores = head_scores(ids, whole)
    want = bm25.scores(q).scores
    np.testing.assert_allclose(scores, want[chunks], atol=1e-4)
    assert set(chunks.tolist()) == set(np.flatnonzero(want > 0).tolist()) and np.all(np.diff(scores) <= 1e-9)
    top, _ = head_scores(ids, whole, 5)
    assert top.tolist() == chunks[:5].tolist()
