"""Question/passage windows for the span reader, and decoding spans back to characters.

Training and inference share this module, so the reader always sees the same input layout:
``<s> question </s></s> passage-window </s>``. Long passages are cut into overlapping windows
(``stride`` tokens of overlap). Every passage token keeps its character offsets into the
passage, so a predicted span maps back to exact characters. Questions and passages are read in
:func:`reader_form` (Simplified script, the same length), so a Simplified question about a
Traditional document reads as one script, and the offsets still point into the original.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

from rag.normalize import fold, to_simplified
from rag.settings import MAX_LENGTH, MAX_QUESTION_TOKENS, STRIDE, WindowSettings

MAX_ANSWER_TOKENS = 32


@dataclass(frozen=True)
class Window:
    """One model input: token ids plus where its passage tokens sit in the passage text."""

    passage: int  # index of the passage among those read together
    input_ids: tuple[int, ...]
    context_start: int  # index of the first passage token inside input_ids
    offsets: tuple[tuple[int, int], ...]  # (start, end) characters of each passage token


@dataclass(frozen=True)
class SpanGuess:
    """The best span of one window: characters into its passage and the scores behind it."""

    passage: int
    start: int
    end: int
    score: float  # start logit + end logit
    null_score: float  # the window's "no answer" score (both logits on <s>)


def echo_filter(question: str, passages: Sequence[str]) -> Callable[[int, int, int], bool]:
    """Rejects spans that only repeat the question: a span whose matching form (folded, without
    spaces and punctuation) is inside the question's says nothing the asker did not know
    ("陶青是谁？" -> not 陶青, but the role before the name; "Who is Guan Bing?" -> not the
    name). Measured reader only on the validation questions (``python -m
    training.evaluate_reader --no-echo-filter`` for the comparison): see README.md, "Span reader".
    """
    q = _matching(question)

    def reject(passage: int, start: int, end: int) -> bool:
        span = _matching(passages[passage][start:end])
        return bool(span) and span in q

    return reject


def _matching(text: str) -> str:
    return "".join(ch for ch in fold(text) if ch.isalnum())


def reader_form(text: str) -> str:
    """What the reader reads: ``text`` in Simplified script, character for character the same
    length (:func:`rag.normalize.to_simplified`), so offsets into it are offsets into ``text``.
    Measured on the DRCD validation split, reader only: F1 0.544 reading Traditional as it is,
    0.457 with the question in Simplified, 0.573 with both converted."""
    return to_simplified(text)


def tokenize_question(tokenizer: Any, question: str, settings: WindowSettings) -> list[int]:
    ids = tokenizer(question, add_special_tokens=False)["input_ids"]
    return list(ids[: settings.max_question_tokens])


def tokenize_passage(tokenizer: Any, passage: str) -> tuple[list[int], list[tuple[int, int]]]:
    enc = tokenizer(passage, add_special_tokens=False, return_offsets_mapping=True, verbose=False)
    return list(enc["input_ids"]), [tuple(o) for o in enc["offset_mapping"]]


def make_windows(
    tokenizer: Any,
    question_ids: Sequence[int],
    passage_ids: Sequence[int],
    passage_offsets: Sequence[tuple[int, int]],
    *,
    passage: int = 0,
    settings: WindowSettings = WindowSettings(),
) -> list[Window]:
    """Cut one passage into windows that each fit ``max_length`` tokens with the question."""
    bos, eos = tokenizer.cls_token_id, tokenizer.sep_token_id
    head = [bos, *question_ids, eos, eos]
    budget = settings.max_length - len(head) - 1
    if budget < 16:
        raise ValueError("question too long for the reader's window")
    step = max(1, budget - settings.stride)
    windows: list[Window] = []
    first = 0
    while True:
        ids = passage_ids[first : first + budget]
        offs = passage_offsets[first : first + budget]
        windows.append(Window(passage, tuple(head + list(ids) + [eos]), len(head), tuple((int(s), int(e)) for s, e in offs)))
        if first + budget >= len(passage_ids):
            break
        first += step
    return windows


def answer_tokens(window: Window, start_char: int, end_char: int) -> tuple[int, int] | None:
    """Token indices (inside ``input_ids``) covering characters [start_char, end_char), if inside."""
    offs = window.offsets
    s_tok = next((i for i, (_, e) in enumerate(offs) if e > start_char), None)
    e_tok = next((i for i in range(len(offs) - 1, -1, -1) if offs[i][0] < end_char), None)
    if s_tok is None or e_tok is None or e_tok < s_tok:
        return None
    if offs[s_tok][0] > start_char or offs[e_tok][1] < end_char:
        return None  # the answer runs past this window's edge
    return window.context_start + s_tok, window.context_start + e_tok


def pad_batch(windows: Sequence[Window], pad_id: int) -> tuple[np.ndarray, np.ndarray]:
    """Right-pad token ids to the longest window; returns (ids, attention mask) as int64."""
    width = max(len(w.input_ids) for w in windows)
    ids = np.full((len(windows), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(windows), width), dtype=np.int64)
    for row, w in enumerate(windows):
        ids[row, : len(w.input_ids)] = w.input_ids
        mask[row, : len(w.input_ids)] = 1
    return ids, mask


def best_span(window: Window, start_logits: np.ndarray, end_logits: np.ndarray, *, top: int = 20,
              max_answer_tokens: int = MAX_ANSWER_TOKENS, within: tuple[int, int] | None = None,
              reject: Callable[[int, int, int], bool] | None = None) -> SpanGuess | None:
    """The highest-scoring well-formed span inside the window's passage tokens; with
    ``within=(a, b)``, only among tokens lying inside passage characters [a, b); with
    ``reject(passage, start, end)``, never a span it rejects (:func:`echo_filter`)."""
    lo = window.context_start
    hi = lo + len(window.offsets)
    if hi <= lo:
        return None
    s = np.asarray(start_logits[lo:hi], dtype=np.float64).copy()
    e = np.asarray(end_logits[lo:hi], dtype=np.float64).copy()
    if within is not None:
        offs = np.asarray(window.offsets, dtype=np.int64).reshape(-1, 2)
        outside = (offs[:, 0] < within[0]) | (offs[:, 1] > within[1])
        if outside.all():
            return None
        s[outside] = -np.inf
        e[outside] = -np.inf
    k = min(top, len(s))
    starts = np.argpartition(-s, k - 1)[:k]
    ends = np.argpartition(-e, k - 1)[:k]
    best: tuple[float, int, int] | None = None
    for i in starts:
        for j in ends:
            if j < i or j - i + 1 > max_answer_tokens or not np.isfinite(s[i] + e[j]):
                continue
            score = s[i] + e[j]
            if best is None or score > best[0]:
                if reject is not None and reject(window.passage, window.offsets[i][0], window.offsets[j][1]):
                    continue
                best = (float(score), int(i), int(j))
    if best is None:
        return None
    score, i, j = best
    start, end = window.offsets[i][0], window.offsets[j][1]
    null = float(start_logits[0] + end_logits[0])
    return SpanGuess(window.passage, int(start), int(end), score, null)
