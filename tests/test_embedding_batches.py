"""Embedding batches by padded-token budget (rag.encoder.batching.token_batches)."""

from rag.encoder.batching import token_batches


def test_every_row_once_longest_first_within_rows_and_budget() -> None:
    lengths = [10, 300, 40, 250, 250, 5, 120, 3000]
    batches = token_batches(lengths, max_rows=3, budget=600)
    flat = [i for b in batches for i in b]
    assert sorted(flat) == list(range(len(lengths)))
    assert [lengths[i] for i in flat] == sorted(lengths, reverse=True)
    assert batches[0] == [7]  # longer than the budget: alone
    for b in batches:
        assert len(b) <= 3
        assert len(b) == 1 or len(b) * max(lengths[i] for i in b) <= 600


def test_short_texts_fill_the_rows() -> None:
    assert token_batches([4] * 10, max_rows=4, budget=2048) == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert token_batches([], max_rows=4, budget=10) == []
