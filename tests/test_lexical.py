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
