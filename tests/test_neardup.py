"""Near-duplicate detection with bounded band buckets and incremental updates.

* Buckets no larger than :data:`rag.ingest.neardup.BUCKET_CAP` give exactly the pairs unbounded
  banding gives (every pair sharing a bucket, decided by exact Jaccard).
* An update from ``previous`` gives exactly the pairs a full pass gives, also when buckets are
  full (the cap is made tiny here so that they are).
* Adding one document to a templated index compares it with few documents, not all.
* The index's add and remove pass the previous result in, and still equal a fresh build.
"""

from __future__ import annotations

import random
import time
from collections.abc import Sequence

import numpy as np
import pytest

from rag.ingest import neardup
from rag.ingest.neardup import BANDS, PERMUTATIONS, NearDuplicate, Previous, find_near_duplicates, signatures

TEMPLATE = "{name} of the {city} office reported sales of {a} units in {month}, up {b}% on the year before."
NAMES = ["Anna Berg", "Li Wei", "Zhang Min", "Omar Haddad", "Maria Rossi", "Chen Jing", "Ivan Petrov", "Sara Kim"]
CITIES = ["Shanghai", "Berlin", "Lima", "Oslo", "Wuhan", "Pune", "Hangzhou", "Perth"]
MONTHS = ["May", "June", "July", "March"]


def templated(rng: random.Random) -> str:
    return TEMPLATE.format(name=rng.choice(NAMES), city=rng.choice(CITIES), a=rng.randint(10, 99),
                           month=rng.choice(MONTHS), b=rng.randint(1, 9))


def edited(text: str, rng: random.Random) -> str:
    i = rng.randrange(len(text))
    return text[:i] + "x" + text[i + 1:]


def reference(sources: Sequence[str], texts: Sequence[str], sigs: np.ndarray, threshold: float = neardup.THRESHOLD):
    """Unbounded banding: every pair that shares a band bucket, decided by exact Jaccard."""
    rows = PERMUTATIONS // BANDS
    pairs: set[tuple[int, int]] = set()
    for b in range(BANDS):
        buckets: dict[bytes, list[int]] = {}
        for i in range(len(sources)):
            band = sigs[i, b * rows:(b + 1) * rows]
            if band[0] != np.iinfo(np.uint64).max:
                buckets.setdefault(band.tobytes(), []).append(i)
        for m in buckets.values():
            pairs.update((x, y) for k, x in enumerate(m) for y in m[k + 1:])
    out = []
    for i, j in pairs:
        sim = neardup.jaccard(neardup.shingles(texts[i]), neardup.shingles(texts[j]))
        if sim >= threshold:
            a, b2 = sorted((sources[i], sources[j]))
            out.append(NearDuplicate(b2, a, round(sim, 4)))
    return sorted(out, key=lambda n: (n.similar_to, n.source))


def largest_bucket(sigs: np.ndarray) -> int:
    rows = PERMUTATIONS // BANDS
    best = 0
    for b in range(BANDS):
        counts: dict[bytes, int] = {}
        for row in sigs[:, b * rows:(b + 1) * rows]:
            counts[row.tobytes()] = counts.get(row.tobytes(), 0) + 1
        best = max(best, *counts.values())
    return best


def state(docs: dict[str, str]) -> tuple[list[str], list[str], np.ndarray]:
    sources = sorted(docs)
    texts = [docs[s] for s in sources]
    return sources, texts, signatures(texts)


def test_small_buckets_give_the_unbounded_result():
    rng = random.Random(7)
    base = ["The city library opens at nine and closes at six on weekdays, and on Sundays it is closed.",
            "前三季度，全国规模以上工业增加值同比增长5.8%，工业投资连续八个月保持两位数增长。",
            "The old bridge was built in 1890 by engineers from the city; it is three hundred metres long.",
            "今年夏天雨水偏多，气温比常年偏高一度左右，南方多地出现了持续的强降雨天气过程。", "", "short"]
    docs = {f"d{i:02d}.txt": t for i, t in enumerate(base)}
    for k in range(20):  # edits of edits: clusters of near-duplicates, some below the threshold
        src = rng.choice(sorted(docs))
        docs[f"e{k:02d}.txt"] = edited(docs[src], rng) if docs[src] else ""
    sources, texts, sigs = state(docs)
    assert largest_bucket(sigs) <= neardup.BUCKET_CAP
    got = find_near_duplicates(sources, texts, sigs)
    assert got == reference(sources, texts, sigs)
    assert len(got) >= 3


def test_templated_corpus_without_a_cap_binding_is_unchanged(monkeypatch: pytest.MonkeyPatch):
    rng = random.Random(3)
    docs = {f"t{i:03d}.txt": templated(rng) for i in range(150)}
    sources, texts, sigs = state(docs)
    assert largest_bucket(sigs) > neardup.BUCKET_CAP  # this corpus does fill buckets
    monkeypatch.setattr(neardup, "BUCKET_CAP", 10**9)
    assert find_near_duplicates(sources, texts, sigs) == reference(sources, texts, sigs)


@pytest.mark.parametrize("cap", [1, 3, 8])
def test_incremental_updates_equal_a_full_pass_when_buckets_are_full(monkeypatch: pytest.MonkeyPatch, cap: int):
    monkeypatch.setattr(neardup, "BUCKET_CAP", cap)
    rng = random.Random(cap)
    docs = {f"t{i:03d}.txt": templated(rng) for i in range(60)}
    sources, texts, sigs = state(docs)
    assert largest_bucket(sigs) > 4 * cap
    found = find_near_duplicates(sources, texts, sigs)
    serial = 1000
    for step in range(40):
        previous = Previous(sources, texts, sigs, tuple(found))
        op = step % 4
        if op == 0:  # add a few, some of them near-duplicates of documents already in
            for _ in range(rng.randint(1, 3)):
                serial += 1
                docs[f"{rng.choice('abtz')}{serial}.txt"] = (
                    edited(rng.choice(list(docs.values())), rng) if rng.random() < 0.6 else templated(rng))
        elif op == 1:  # remove one or two
            for s in rng.sample(sorted(docs), rng.randint(1, 2)):
                del docs[s]
        elif op == 2:  # change one
            s = rng.choice(sorted(docs))
            docs[s] = templated(rng) if rng.random() < 0.5 else edited(docs[s], rng)
        else:  # add one and remove one
            serial += 1
            docs[f"m{serial}.txt"] = edited(rng.choice(list(docs.values())), rng)
            del docs[rng.choice(sorted(docs))]
        sources, texts, sigs = state(docs)
        found = find_near_duplicates(sources, texts, sigs, previous=previous)
        assert found == find_near_duplicates(sources, texts, sigs), f"step {step} (op {op})"
    assert found, "the corpus keeps some near-duplicates"


def test_previous_that_does_not_fit_is_ignored():
    rng = random.Random(5)
    docs = {f"t{i:03d}.txt": templated(rng) for i in range(30)}
    sources, texts, sigs = state(docs)
    want = find_near_duplicates(sources, texts, sigs)
    wrong = Previous(sources, texts, sigs[::-1].copy(), ())  # signatures that are not the texts'
    assert find_near_duplicates(sources, texts, sigs, previous=wrong) == want
    other = Previous(sources, texts, sigs, (), threshold=0.5)
    assert find_near_duplicates(sources, texts, sigs, previous=other) == want


def test_adding_one_document_to_a_templated_index_compares_few(monkeypatch: pytest.MonkeyPatch):
    rng = random.Random(11)
    n = 2000
    docs = {f"r{i:05d}.txt": templated(rng) for i in range(n)}
    sources, texts, sigs = state(docs)
    assert largest_bucket(sigs) > 100
    found = find_near_duplicates(sources, texts, sigs)
    previous = Previous(sources, texts, sigs, tuple(found))
    calls = 0
    real = neardup.shingles

    def counting(text: str) -> set[int]:
        nonlocal calls
        calls += 1
        return real(text)

    for name in ("r00000-new.txt", "a-first.txt", "z-last.txt"):
        docs2 = dict(docs)
        docs2[name] = edited(texts[rng.randrange(n)], rng)
        s2, t2, g2 = state(docs2)
        calls = 0
        monkeypatch.setattr(neardup, "shingles", counting)
        t0 = time.perf_counter()
        got = find_near_duplicates(s2, t2, g2, previous=previous)
        seconds = time.perf_counter() - t0
        monkeypatch.setattr(neardup, "shingles", real)
        assert calls <= n // 10, f"{name}: shingles of {calls} documents computed for one add"
        assert seconds < 5, f"{name}: {seconds:.2f}s for one add"
        assert got == find_near_duplicates(s2, t2, g2)
        assert any(name in (d.source, d.similar_to) for d in got), "the added edit is found as a near-duplicate"


def test_index_add_and_remove_reuse_the_previous_result(tmp_path, monkeypatch: pytest.MonkeyPatch):
    import rag.index.writer as writer
    from rag.index.writer import IndexWriter

    rng = random.Random(2)
    docs = {f"t{i:02d}.txt": templated(rng) for i in range(24)}
    docs["copy.txt"] = edited(docs["t03.txt"], rng)
    index = tmp_path / "index"
    IndexWriter(index, model="test-hash").add_texts(docs.items(), replace_all=True)
    seen: list[Previous | None] = []
    real = writer.find_near_duplicates

    def spy(*args: object, **kwargs: object):
        seen.append(kwargs.get("previous"))  # type: ignore[arg-type]
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(writer, "find_near_duplicates", spy)
    docs["copy2.txt"] = edited(docs["t07.txt"], rng)
    report = IndexWriter(index).add_texts([("copy2.txt", docs["copy2.txt"])])
    assert seen and seen[-1] is not None and len(seen[-1].sources) == 25
    fresh = IndexWriter(tmp_path / "fresh", model="test-hash").add_texts(docs.items(), replace_all=True)
    assert report.near_duplicates == fresh.near_duplicates
    assert {("t03.txt", "copy.txt"), ("t07.txt", "copy2.txt")} <= {(d.source, d.similar_to) for d in report.near_duplicates}
    report = IndexWriter(index).remove(["copy.txt"])
    assert seen[-1] is not None and len(seen[-1].sources) == 26
    del docs["copy.txt"]
    fresh = IndexWriter(tmp_path / "fresh2", model="test-hash").add_texts(docs.items(), replace_all=True)
    assert report.near_duplicates == fresh.near_duplicates
