"""The interface the evaluation needs of a loaded index: :class:`QALike`, which
:class:`rag.pipeline.QA` satisfies and a scripted stub can stand in for."""

from __future__ import annotations

from typing import Protocol

from rag.types import Answer, Document, Hit

__all__ = ["QALike"]


class QALike(Protocol):
    """What the evaluation needs of a loaded index (:class:`rag.pipeline.QA`)."""

    def search(self, question: str, k: int = ..., mode: str | None = ...) -> list[Hit]: ...

    def ask(self, question: str, k: int = ..., mode: str | None = ...) -> Answer: ...

    def document(self, source: str) -> Document: ...

    def sources(self) -> list[str]: ...
