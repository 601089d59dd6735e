from pathlib import Path

import numpy as np

from rag.index.lexical import BM25Index, tokenize, words


def test_tokenize_folds_traditional_and_width():
    assert tokenize("國家技術") == tokenize("国家技术")
    assert "gdp" in tokenize("ＧＤＰ增长")


def test_words_drop_stopwords_and_punctuation():
    w = words("前三季度规模以上工业增加值同比增长多少？")
    assert "多少" not in w and "？" not in w and "增长" in w


def test_bm25_ranks_and_roundtrips(tmp_path: Path):
    texts = ["工业增加值同比增长5.8%", "科技服务业发展", "The library opens at 9 am"]
    idx = BM25Index.fit(texts)
    s = idx.scores("工業增加值增長多少")
    assert int(np.argmax(s.scores)) == 0
    assert int(np.argmax(idx.scores("library opens").scores)) == 2
    assert idx.document_frequency("工业") == 1
    idx.save(tmp_path / "bm25")
    assert not list((tmp_path / "bm25").glob("*.pkl"))
    loaded = BM25Index.load(tmp_path / "bm25", 3)
    np.testing.assert_allclose(loaded.scores("科技服务").scores, idx.scores("科技服务").scores)


def test_unknown_query_terms_score_zero():
    idx = BM25Index.fit(["工业增加值"])
    assert float(idx.scores("zzz qqq").scores.max()) == 0.0


def test_term_ids_score_exactly_as_bm25s_over_strings():
    """Fitting from ids (ChunkTerms) gives bm25s's own scores over the same terms as strings."""
    import bm25s
    import numpy as np

    texts = ["全国技术合同成交总额达到4.49万亿元", "The museum opened in 1964.", "", "新能源汽车 销量 增长",
             "技术 交易 规模 技术", "museum museum tickets"]
    ours = BM25Index.fit(texts)
    theirs = bm25s.BM25()
    theirs.index([tokenize(t) or ["\u2400"] for t in texts], show_progress=False)
    for q in ["技术合同", "museum 1964", "汽车销量", "tickets"]:
        known = [t for t in tokenize(q) if t in theirs.vocab_dict]
        assert np.allclose(ours.scores(q).scores, theirs.get_scores(known))
    assert ours.document_frequency("museum") == 2 and ours.document_frequency("nothing") == 0


def test_chunk_terms_reuse_a_vocabulary_and_check_their_arrays():
    import numpy as np
    import pytest

    from rag.index.lexical import ChunkTerms, TermsBuilder, chunk_terms

    first = chunk_terms(["技术合同", "museum tickets"])
    assert first.terms(1) == ("museum", "tickets") and len(first) == 2
    builder = TermsBuilder(first.vocabulary)
    builder.append(first.row(1))  # reused ids stay valid under the grown vocabulary
    builder.append(builder.encode(["new", "museum"]))
    again = builder.build()
    assert again.terms(0) == ("museum", "tickets") and again.terms(1) == ("new", "museum")
    assert again.vocabulary[: len(first.vocabulary)] == first.vocabulary
    assert again.ids.dtype == np.int32 and again.offsets.tolist() == [0, 2, 4]
    again.check()
    with pytest.raises(ValueError):
        ChunkTerms(np.array([0, 9], np.int32), np.array([0, 2]), ("a",)).check()
    with pytest.raises(ValueError):
        ChunkTerms(np.array([0], np.int32), np.array([0, 3]), ("a",)).check()


def test_score_matrix_is_bm25s_own_matrix():
    """The batched NumPy builder gives bm25s's matrix: same structure, same float32 scores,
    across batch boundaries, repeated terms and empty chunks."""
    import bm25s

    import rag.index.lexical as lexical

    rng = np.random.default_rng(3)
    rows = [list(rng.integers(0, 40, size=int(rng.integers(0, 30)))) for _ in range(300)]
    rows[5] = []
    rows[6] = []
    rows[299] = []
    texts = [" ".join(f"w{t}" for t in r) for r in rows]
    old = lexical._SCORE_BATCH
    lexical._SCORE_BATCH = 64  # several batches
    try:
        ours = BM25Index.fit_tokens([tokenize(t) for t in texts])
    finally:
        lexical._SCORE_BATCH = old
    reference = bm25s.BM25()
    vocab = ours._bm25.vocab_dict
    empty = vocab[lexical.EMPTY_TERM]
    ids = [[vocab[w] for w in tokenize(t)] or [empty] for t in texts]
    reference.index(bm25s.tokenization.Tokenized(ids=ids, vocab=vocab), show_progress=False, create_empty_token=False)
    for key in ("indptr", "indices"):
        assert np.array_equal(ours._bm25.scores[key], reference.scores[key]), key
    assert ours._bm25.scores["data"].dtype == np.float32
    assert np.allclose(ours._bm25.scores["data"], reference.scores["data"], rtol=1e-6, atol=0)
    for q in (["w1", "w7"], ["w3"], [lexical.EMPTY_TERM]):
        assert np.allclose(ours._bm25.get_scores(q), reference.get_scores(q), rtol=1e-6)
