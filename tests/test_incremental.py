"""Property: after any sequence of adds, changes and removes, the incrementally maintained index
is the index a fresh build of the same documents gives (same documents, duplicates,
near-duplicates, chunks, vectors, BM25 and search results)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import rag
from rag.errors import NoDocumentsError
from rag.index.store import load_index
from rag.index.writer import IndexWriter

ARTICLE = ("前三季度，全国规模以上工业增加值同比增长5.8%，比上半年加快0.2个百分点。工业投资连续八个月保持两位数增长。"
           "高技术制造业增加值同比增长8.9%，明显快于全部规模以上工业。")
# Two contents per name. b's first content is a's (an exact duplicate), c's second is a near
# duplicate of a's first, and e is long enough to make several chunks.
CONTENTS = {
    "a.txt": [ARTICLE, "The old bridge was built in 1890 by engineers from the city."],
    "b.txt": [ARTICLE, "Cats sleep a lot, often more than twelve hours a day."],
    "c.md": ["The city library opens at 9 am and closes at 6 pm.", "【转载】" + ARTICLE.replace("明显快于", "明显高于")],
    "d.txt": ["今年夏天雨水偏多，气温比常年偏高一度左右。", "The museum opens at 10 am on Sundays."],
    "e.txt": ["第一段讲工业。" * 30 + "\n\n" + "The second part is about trains and stations. " * 12,
              "第一段讲工业。" * 30 + "\n\n" + "The second part is about buses. " * 12],
}
NAMES = sorted(CONTENTS)
QUERIES = ["前三季度工业增加值增长多少？", "When was the bridge built?", "library", "雨水", "trains"]

ops = st.lists(
    st.tuples(st.sampled_from(["add", "add", "remove", "add-many"]), st.sampled_from(NAMES), st.integers(0, 1)),
    min_size=1,
    max_size=5,
)


def snapshot(index: Path) -> dict:
    stored = load_index(index)
    m = stored.manifest
    qa = rag.load(index)
    return {
        "documents": [(r.source, r.sha256, r.chunks, r.duplicate_of) for r in m.documents],
        "near": [(n.source, n.similar_to, n.jaccard) for n in m.near_duplicates],
        "texts": {s: (d.text, d.report.edits) for s, d in stored.documents.items()},
        "chunks": [(c.chunk_id, c.source, c.start, c.end, c.text) for c in stored.chunks],
        "visibility": m.visibility,
        "search": [[(h.chunk_id, h.source, h.start, h.end, round(h.score, 6)) for h in qa.search(q, k=4)] for q in QUERIES],
        "answers": [(a.found, a.span, a.text) for a in (qa.ask(q) for q in QUERIES)],
    }, stored.vectors


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops)
def test_random_add_remove_sequences_equal_a_fresh_build(sequence):
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        corpus = root / "corpus"
        corpus.mkdir()
        index, fresh = root / "index", root / "fresh"
        members: set[str] = set()
        for op, name, variant in sequence:
            path = corpus / name
            if op == "remove":
                if not members:
                    continue
                target = name if name in members else sorted(members)[0]
                if members == {target}:
                    try:
                        IndexWriter(index).remove([corpus / target])
                        raise AssertionError("removing the last document must be refused")
                    except NoDocumentsError:
                        continue
                IndexWriter(index).remove([corpus / target])
                members.discard(target)
                (corpus / target).unlink()
            else:
                names = [name] if op == "add" else [n for n in NAMES if n >= name][:3]
                for n in names:
                    (corpus / n).write_text(CONTENTS[n][variant], encoding="utf-8")
                IndexWriter(index, model="test-hash").add([corpus / n for n in names])
                members.update(names)
            IndexWriter(fresh, model="test-hash").sync([corpus / n for n in sorted(members)], full=True)
            got, got_vectors = snapshot(index)
            want, want_vectors = snapshot(fresh)
            assert got == want, (op, name, variant)
            assert np.array_equal(got_vectors, want_vectors)
