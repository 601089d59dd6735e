"""Sentence splitting and sentence-aware chunking, with offsets into the cleaned text."""

from __future__ import annotations

import re
from dataclasses import dataclass

from rag.types import Chunk, Document

# A sentence ends at Chinese or Western end punctuation (with any closing quotes or brackets
# that follow it), or at a line break. A full stop only ends a sentence when a space, a line
# break, a Han character or the end follows it, so that 5.8 and e.g. stay whole.
_END_RE = re.compile(
    r"(?:[。！？!?；;…]+|\.(?=\s|$|[\u3400-\u9fff]))[”’」』\"')）\]】》]*|\n+"
)
_SOFT_BREAK_RE = re.compile(r"[，,、：:\s]")


@dataclass(frozen=True)
class Span:
    """A piece of text by offsets: ``text[start:end]``."""

    start: int
    end: int


def split_sentences(text: str, start: int = 0, end: int | None = None, *, max_chars: int = 0) -> list[Span]:
    """Sentences of ``text[start:end]`` as spans, stripped of surrounding whitespace.

    With ``max_chars`` > 0, a sentence longer than that is cut at commas or spaces, or
    hard at ``max_chars`` when it has none (a 10,000-character run without punctuation).
    """
    end = len(text) if end is None else end
    spans: list[Span] = []
    pos = start
    for m in _END_RE.finditer(text, start, end):
        _add_stripped(text, pos, m.end(), spans)
        pos = m.end()
    _add_stripped(text, pos, end, spans)
    if max_chars > 0:
        spans = [piece for s in spans for piece in _cut_long(text, s, max_chars)]
    return spans


def _add_stripped(text: str, start: int, end: int, out: list[Span]) -> None:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    if end > start:
        out.append(Span(start, end))


def _cut_long(text: str, span: Span, max_chars: int) -> list[Span]:
    out: list[Span] = []
    start = span.start
    while span.end - start > max_chars:
        limit = start + max_chars
        cut = -1
        for m in _SOFT_BREAK_RE.finditer(text, start + max_chars // 2, limit):
            cut = m.end()
        if cut <= start:
            cut = limit
        _add_stripped(text, start, cut, out)
        start = cut
    _add_stripped(text, start, span.end, out)
    return out


def chunk_document(doc: Document, *, chunk_chars: int, overlap: int, first_id: int = 0) -> list[Chunk]:
    """Pack whole sentences into chunks of about ``chunk_chars`` characters.

    Consecutive chunks share up to ``overlap`` characters of whole sentences. A chunk never
    ends inside a sentence unless the sentence alone is longer than ``chunk_chars``. No chunk
    is empty, and ``doc.text[chunk.start:chunk.end] == chunk.text`` always holds.
    """
    if chunk_chars <= 0:
        raise ValueError(f"chunk_chars must be positive, got {chunk_chars}")
    overlap = max(0, min(overlap, chunk_chars // 2))
    sentences = split_sentences(doc.text, max_chars=chunk_chars)
    chunks: list[Chunk] = []
    i = 0
    while i < len(sentences):
        j = i
        while j + 1 < len(sentences) and sentences[j + 1].end - sentences[i].start <= chunk_chars:
            j += 1
        start, end = sentences[i].start, sentences[j].end
        chunks.append(Chunk(first_id + len(chunks), doc.source, start, end, doc.text[start:end]))
        if j + 1 >= len(sentences):
            break
        # Next chunk starts with the trailing sentences of this one that fit in the overlap.
        nxt = j + 1
        while nxt - 1 > i and sentences[j].end - sentences[nxt - 1].start <= overlap:
            nxt -= 1
        i = nxt
    return chunks
