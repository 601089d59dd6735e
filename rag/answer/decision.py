"""One place decides the answer: retrieval's hits → the sentence reader's best sentences → the
span reader's evidence over them → one calibrated decision (span and its sentence, the sentence
only, or "not found").

:meth:`rag.QA.ask` answers through :func:`decide`; ``training/calibrate_reader.py`` fits the
calibration on the :class:`Considered` evidence of the very same :func:`consider`, and
``rag eval`` scores what ``ask`` returns: there is no second copy of the sequence.

A question the sentence reader refuses because it names what the documents never mention
(:meth:`rag.answer.reader.Reader.names_unknown`) is refused before the span reader, with
confidence 0 (``gated``). Across languages the span reader neither picks among the sentence
reader's alternatives nor moves the quote (``same_language``). A who-is question's span is the
person's role (:mod:`rag.answer.roles`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

from rag.answer.reader import Reader
from rag.answer.roles import role_answer
from rag.answer.span_answer import Evidence, SpanAnswerer
from rag.types import Answer, Hit


@dataclass(frozen=True)
class Considered:
    """What a question's answer is decided from. ``sentences``: the sentence reader's answers
    (its best first, then the alternatives); ``evidence``: the span reader's (None without a
    span reader, or when ``gated``)."""

    question: str
    hits: tuple[Hit, ...]
    sentences: tuple[Answer, ...]
    gated: bool
    same_language: bool
    evidence: Evidence | None


def consider(question: str, hits: Sequence[Hit], reader: Reader, span: SpanAnswerer | None) -> Considered:
    """Read ``hits`` for ``question`` with the sentence reader and, when there is one, the span reader."""
    n = span.settings.alternatives if span is not None else 1
    sentences = reader.answers(question, hits, n)
    if span is None:  # the sentence reader decides alone
        return Considered(question, tuple(hits), tuple(sentences), False, True, None)
    gated = not sentences[0].found and reader.names_unknown(question, hits)
    same_language = not reader.across_languages(question, hits)
    evidence = None
    if not gated:
        evidence = span.evidence(question, hits, sentences[0], sentences[1:] if same_language else ())
    return Considered(question, tuple(hits), tuple(sentences), gated, same_language, evidence)


def decide(considered: Considered, span: SpanAnswerer | None) -> Answer:
    """The answer: the sentence reader's alone without a span reader; refused (confidence 0) when
    ``gated``; else the span answerer's calibrated composition of the evidence."""
    first = considered.sentences[0]
    if considered.gated:
        return dataclasses.replace(first, score=0.0)
    if span is None or considered.evidence is None:
        return first
    answer = span.compose(considered.question, considered.hits, first, considered.evidence,
                          same_language=considered.same_language)
    # a who-is question: the person's role as the documents state it is the span (rag.answer.roles)
    if not span.settings.who_is_roles:
        return answer
    role = role_answer(answer, considered.hits, span.documents, span.calibration.thresholds(considered.question)[0])
    return role if role is not None else answer


__all__ = ["Considered", "consider", "decide"]
