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


class _FakeModel:
    """What SentenceTransformerEmbedder uses of a sentence-transformers model (no tokenizer:
    characters stand in for tokens)."""

    max_seq_length = 512
    prompts: dict[str, str] = {}

    def __init__(self) -> None:
        self.calls: list[int] = []

    def get_embedding_dimension(self) -> int:
        return 4

    def encode(self, texts, batch_size, **_):  # type: ignore[no-untyped-def]
        import numpy as np

        self.calls.append(len(texts))
        out = np.zeros((len(texts), 4), dtype=np.float32)
        out[:, 0] = [len(t) for t in texts]
        return out


def test_a_bulk_encode_gives_each_passs_memory_back_and_a_question_does_not(monkeypatch) -> None:
    from rag.index import embedding

    trims: list[int] = []
    monkeypatch.setattr(embedding, "release_freed_memory", lambda: trims.append(1) or True)
    model = _FakeModel()
    emb = embedding.SentenceTransformerEmbedder("fake", model, batch_size=2)
    emb.token_budget = 100
    texts = ["a" * 60, "b" * 40, "c" * 30, "d" * 10, "e" * 5]
    vecs = emb.encode(texts, kind="passage")
    assert list(vecs[:, 0]) == [60, 40, 30, 10, 5]  # every row in its place
    assert len(model.calls) >= 3 and len(trims) == len(model.calls)
    trims.clear()
    emb.encode(["one question"], kind="query")
    assert trims == []
