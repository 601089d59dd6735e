"""Gold passages: how a question's retrieved hits are matched against them (:class:`Gold`).

A SQuAD-format question's gold is its own passage (a source); a JSON-lines question's gold is
a set of non-empty paragraphs (:func:`paragraph_spans`) of one indexed document, and a chunk
is a hit when its ``[start, end)`` overlaps one of them.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from rag.errors import RagError
from rag.evaluation.datasets import EvalQuestion
from rag.evaluation.metrics import contains_answer
from rag.evaluation.protocol import QALike
from rag.types import Hit

__all__ = ["ParagraphSpan", "paragraph_spans", "Gold", "jsonl_golds", "squad_golds"]

_LINE_RE = re.compile(r"[^\n]+")


@dataclass(frozen=True)
class ParagraphSpan:
    """A non-empty paragraph (line) of a document: ``text[start:end]``, stripped."""

    index: int
    start: int
    end: int


def paragraph_spans(text: str) -> tuple[ParagraphSpan, ...]:
    """The non-empty paragraphs of a cleaned document text, numbered from 0.

    A paragraph is a line with some non-whitespace character; blank lines separate nothing
    more than single newlines do. Offsets exclude the surrounding whitespace.
    """
    out: list[ParagraphSpan] = []
    for m in _LINE_RE.finditer(text):
        line = m.group()
        stripped = line.strip()
        if not stripped:
            continue
        start = m.start() + (len(line) - len(line.lstrip()))
        out.append(ParagraphSpan(len(out), start, start + len(stripped)))
    return tuple(out)


@dataclass(frozen=True)
class Gold:
    """How a question's retrieved hits are matched against its gold passages."""

    labels: tuple[str, ...]
    source: str | None  # JSON-lines: the one document the paragraphs index
    paragraphs: tuple[ParagraphSpan, ...]  # JSON-lines: the gold paragraphs' spans

    def keys(self, hits: Sequence[Hit]) -> list[str]:
        """One key per retrieved unit, in rank order, duplicates removed."""
        keys: list[str] = []
        for h in hits:
            key = self._key(h)
            if key not in keys:
                keys.append(key)
        return keys

    def _key(self, h: Hit) -> str:
        if self.source is None:
            return h.source
        if h.source == self.source:
            for p in self.paragraphs:
                if h.start < p.end and p.start < h.end:
                    return f"paragraph:{p.index}"
        return f"chunk:{h.chunk_id}"


def jsonl_golds(
    qa: QALike, questions: Sequence[EvalQuestion]
) -> tuple[dict[str, Gold], tuple[str, ...]]:
    """Gold matchers of JSON-lines questions, and ids whose gold paragraphs lack the answer."""
    sources = qa.sources()
    default_source = sources[0] if len(sources) == 1 else None
    docs: dict[str, tuple[str, tuple[ParagraphSpan, ...]]] = {}
    golds: dict[str, Gold] = {}
    mismatched: list[str] = []
    for q in questions:
        if not q.gold_paragraphs:
            if q.gold_sources:
                golds[q.id] = Gold(q.gold_sources, None, ())
            continue
        source = q.gold_sources[0] if q.gold_sources else default_source
        if source is None:
            raise RagError(
                f"question {q.id!r} gives paragraph numbers but no 'source', and the index "
                "does not hold exactly one document: add a 'source' field to the question file"
            )
        if source not in docs:
            text = qa.document(source).text
            docs[source] = (text, paragraph_spans(text))
        text, spans = docs[source]
        missing = [i for i in q.gold_paragraphs if i >= len(spans)]
        if missing:
            raise RagError(
                f"question {q.id!r}: paragraph {missing[0]} does not exist; {source!r} has "
                f"{len(spans)} non-empty paragraph(s) after cleaning"
            )
        chosen = tuple(spans[i] for i in q.gold_paragraphs)
        if q.answers and not any(
            contains_answer(text[p.start : p.end], q.answers) for p in chosen
        ):
            mismatched.append(q.id)
        golds[q.id] = Gold(
            tuple(f"paragraph:{i}" for i in q.gold_paragraphs), source, chosen
        )
    return golds, tuple(mismatched)


def squad_golds(questions: Sequence[EvalQuestion]) -> dict[str, Gold]:
    """Gold matchers of SQuAD-format questions: each question's own passage, by source."""
    return {
        q.id: Gold(q.gold_sources, None, ())
        for q in questions
        if q.gold_sources
    }
