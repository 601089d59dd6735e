"""Batches of texts for the encoder, by padded tokens: one rule for index builds
(sentence-transformers, :mod:`rag.index.embedding`) and the plain-torch runtime
(:mod:`rag.encoder.e5_runtime`), so that both put the same texts in the same batches (in bf16 a
text's vector moves by up to 7e-4 with its batch's padding)."""

from __future__ import annotations

from collections.abc import Sequence

#: Padded tokens one forward pass may hold (rows x the batch's longest). Measured with
#: ``benchmarks/bench_batching.py`` (512 of ``bench_scale``'s chunks, median 204 tokens, 1 thread,
#: bf16; results/bench_batching.json): 32 rows a batch held 411 MiB of activations at once, the
#: largest transient of a build's embedding stage; 2,048 tokens 369 MiB at 1.11x the chunks/s,
#: 1,024 tokens 188 MiB at 1.06x;
#: vectors within cosine 0.999994 of the row batches'. 2,048 is what the
#: 100k ``bench_scale`` run used.
TOKEN_BUDGET = 2048


def token_batches(lengths: Sequence[int], max_rows: int, budget: int) -> list[list[int]]:
    """Rows in batches, longest first (as sentence-transformers orders them), each at most
    ``max_rows`` rows and ``budget`` padded tokens (rows x its longest); a text longer than the
    budget goes alone."""
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    out: list[list[int]] = []
    cur: list[int] = []
    for i in order:
        longest = lengths[cur[0]] if cur else lengths[i]
        if cur and (len(cur) >= max_rows or (len(cur) + 1) * max(longest, 1) > budget):
            out.append(cur)
            cur = []
        cur.append(i)
    if cur:
        out.append(cur)
    return out
