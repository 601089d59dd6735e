from hypothesis import given, settings
from hypothesis import strategies as st

from rag.ingest.chunking import chunk_document, split_sentences
from rag.ingest.clean import clean_text
from rag.types import CleaningReport, Document


def make_doc(text: str) -> Document:
    return Document("t", text, CleaningReport("t", len(text), len(text)))


def test_chinese_and_english_sentences():
    text = "他说：“今年增长5.8%。”数据显示增长较快！是吗？Yes. It grew 5.8 percent. Dr. Li agreed"
    spans = [text[s.start:s.end] for s in split_sentences(text)]
    assert spans[0] == "他说：“今年增长5.8%。”"
    assert "数据显示增长较快！" in spans
    assert "It grew 5.8 percent." in spans


def test_line_breaks_end_sentences():
    spans = split_sentences("标题\n正文第一句")
    assert len(spans) == 2


def test_chunks_have_offsets_and_respect_size(seed_text):
    doc = clean_text(seed_text, "seed")
    chunks = chunk_document(doc, chunk_chars=300, overlap=60)
    assert len(chunks) > 3
    for c in chunks:
        assert doc.text[c.start:c.end] == c.text
        assert c.text.strip() and len(c.text) <= 300
    assert [c.chunk_id for c in chunks] == list(range(len(chunks)))
    # consecutive chunks overlap or touch: no text is skipped
    for a, b in zip(chunks, chunks[1:]):
        assert b.start <= a.end + 3


def test_long_run_without_punctuation():
    doc = make_doc("字" * 10_000)
    chunks = chunk_document(doc, chunk_chars=300, overlap=60)
    assert sum(len(c.text) for c in chunks) == 10_000
    assert all(0 < len(c.text) <= 300 for c in chunks)


@settings(max_examples=150, deadline=None)
@given(
    st.text(alphabet=st.sampled_from(list("中文字abc .。，,!？\n\t5")), max_size=2000),
    st.integers(min_value=10, max_value=400),
    st.integers(min_value=0, max_value=200),
)
def test_chunk_properties(text, size, overlap):
    doc = make_doc(text)
    chunks = chunk_document(doc, chunk_chars=size, overlap=overlap)
    covered = set()
    for c in chunks:
        assert c.text and c.text.strip()
        assert doc.text[c.start:c.end] == c.text
        assert len(c.text) <= size
        covered.update(range(c.start, c.end))
    # every non-space character is in some chunk
    assert all(i in covered for i, ch in enumerate(text) if not ch.isspace())
