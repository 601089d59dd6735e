"""One home for every setting: :class:`Settings`, composed of one dataclass per part.

* ``Settings.index`` (:class:`IndexSettings`): chunking, file size limit, retrieval; recorded in
  the index manifest (its fields at the top level of the manifest's ``"settings"``, the layout
  every index so far has), overridable per build and per query;
* ``Settings.reader`` (:class:`ReaderSettings`): the sentence reader's thresholds and weights;
* ``Settings.span`` (:class:`SpanAnswerSettings`): how the span reader's answers are composed;
* ``Settings.windows`` (:class:`WindowSettings`): the span reader's input windows; recorded in
  the reader's model card (``"windows"``), which the loaded reader follows.

:meth:`Settings.from_dict` reads :meth:`Settings.to_dict`'s layout and an index manifest's
``"settings"`` alike. Environment variables are read in :mod:`rag.environment` only. The span
model's shape (``SpanModelConfig``) stays with the model (:mod:`rag.answer.span_model`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, Literal, TypeVar

from rag.errors import QueryError

Mode = Literal["hybrid", "bm25", "dense"]
MODES: tuple[str, ...] = ("hybrid", "bm25", "dense")

K_MIN, K_MAX, K_DEFAULT = 1, 50, 5
"""How many passages a question may retrieve: the one range of the API, the CLI and the UI."""


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def check_k(k: object, name: str = "k") -> int:
    """``k`` as an int when it is a whole number from :data:`K_MIN` to :data:`K_MAX` (a float
    such as the UI slider's ``5.0`` counts); anything else raises :class:`QueryError`."""
    value: int | None = None
    if isinstance(k, int) and not isinstance(k, bool):
        value = k
    elif isinstance(k, float) and k.is_integer():  # False for inf and nan
        value = int(k)
    if value is None or not K_MIN <= value <= K_MAX:
        raise QueryError(f"{name} must be a whole number from {K_MIN} to {K_MAX}, got {_shown(k)}")
    return value


def check_mode(mode: object) -> str | None:
    """``mode`` when it is one of :data:`MODES`, ``None`` (the index's default) when it is None;
    anything else raises :class:`QueryError`."""
    if mode is None or (isinstance(mode, str) and mode in MODES):
        return mode
    raise QueryError(f"unknown retrieval mode {_shown(mode)}; choose one of {', '.join(MODES)}")


@dataclass(frozen=True)
class IndexSettings:
    """Index and query settings.

    chunk_chars / chunk_overlap: target chunk size and overlap, in characters.
    max_file_bytes: files larger than this are refused before they are read.
    mode: default retrieval mode. dense_weight: weight of the dense side in hybrid fusion,
    before it is gated by how much of the text the model can see (its known-token rate).
    visibility_floor / visibility_full: known-token rates at which the dense side starts to
    count and counts fully. candidates: how many hits each side proposes before fusion.
    ann_min_chunks: from this many chunks on, the vectors go into an approximate (IVF) index
    whose probes reach ``ann_recall`` of the exact top 10 (:mod:`rag.index.vectors`); 0: always
    exact. 20,000: measured here (1 thread), the exact scan of one query takes 0.55 ms at 10k
    chunks and 14 ms at 100k, so it is what a search costs from a few tens of thousands on.
    """

    chunk_chars: int = 300
    chunk_overlap: int = 60
    max_file_bytes: int = 20 * 1024 * 1024
    mode: str = "hybrid"
    dense_weight: float = 0.5
    visibility_floor: float = 0.80
    visibility_full: float = 0.97
    candidates: int = 100
    batch_size: int = 32
    ann_min_chunks: int = 20_000
    ann_recall: float = 0.99

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "IndexSettings":
        return _known(cls, data)

    def with_overrides(self, **overrides: Any) -> "IndexSettings":
        return replace(self, **{k: v for k, v in overrides.items() if v is not None})


@dataclass(frozen=True)
class ReaderSettings:
    """Thresholds of the reader. ``min_coverage``: share of the question's weighted terms the
    best sentence's chunk must cover; ``max_missing``: share of the question's word weight that
    may be missing from the whole corpus; ``min_dense``: cosine for cross-language answers;
    ``w_name``: added, across languages, to a sentence per Chinese name of the question (in
    pinyin) that it holds in Han characters. Measured turned off (``benchmarks/bench_rules.py``):
    without ``max_missing`` half the seed dev's unanswerable questions and a third of the SQuAD
    2.0 unanswerables it refused are answered; without ``min_coverage`` a seed question is wrongly
    refused and seed span F1 falls 0.947 -> 0.895. ``min_dense``, ``w_name`` and ``pinyin_gate``
    act only across languages, which the validation sets barely exercise (no change measured).

    The rules below can each be turned off, so that ``benchmarks/bench_rules.py`` measures what
    each does for the answers (its figures are in README.md, "Rules of the answer path"):
    ``w_kind`` / ``kind_penalty``: added to / taken from a sentence's score when the question
    wants a figure, date or ordinal and the sentence has / lacks one it does not already state
    (DRCD validation F1 0.741 with them, 0.734 without);
    ``typed_kinds``: the kinds of question whose short answer the sentence reader places itself,
    by pattern (a figure, date or ordinal; with them seed dev span F1 0.947, without 0.890;
    DRCD validation 0.742 against 0.741);
    ``pinyin_gate``: across languages, a question naming a Chinese person in pinyin whom no Han
    name of the corpus reads as is refused."""

    min_coverage: float = 0.15
    max_missing: float = 0.3
    min_dense: float = 0.78
    support_ratio: float = 0.9
    w_cov: float = 0.65
    w_chunk: float = 0.3
    w_near: float = 0.0
    w_rank: float = 0.2
    w_novelty: float = 0.1
    w_name: float = 0.1
    w_kind: float = 0.08
    kind_penalty: float = 0.1
    typed_kinds: tuple[str, ...] = ("number", "date", "ordinal")
    pinyin_gate: bool = True


@dataclass(frozen=True)
class SpanAnswerSettings:
    """``passages``: top chunks the span reader reads. ``override_gap``: how much higher the
    reader's best span elsewhere must score than its best inside the sentence reader's
    sentence for its own sentence to be quoted instead (6.0: measured on the DRCD validation
    split, +1.5 points of sentence hit and span F1).

    ``alternatives``: how many of the sentence reader's best sentences compete; the one with
    the highest ``sentence score + span_weight * best span score inside it`` is quoted. The
    weight was chosen on DRCD questions of the reader's *training* articles (never the
    validation split); see README.md, "Span reader". Re-tuning these three on the CMRC
    validation questions did not carry over to DRCD's (+14 sentence hits there, -1 to +2 here),
    nor did a logistic re-ranker of the candidate sentences.

    ``who_is_roles``: a who-is question's span is the person's role (:mod:`rag.answer.roles`;
    with it 13 of the 16 who-is questions name the role, without it 6: ``benchmarks/bench_rules.py``)."""

    passages: int = 3
    override_gap: float = 6.0
    alternatives: int = 2
    span_weight: float = 0.3
    who_is_roles: bool = True


# The span reader's windows (:mod:`rag.answer.span_features`): tokens of question and passage a
# window holds, question tokens kept, tokens of overlap between a passage's windows.
MAX_LENGTH = 256
MAX_QUESTION_TOKENS = 48
STRIDE = 96


@dataclass(frozen=True)
class WindowSettings:
    max_length: int = MAX_LENGTH
    max_question_tokens: int = MAX_QUESTION_TOKENS
    stride: int = STRIDE

    def to_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


P = TypeVar("P", IndexSettings, ReaderSettings, SpanAnswerSettings, WindowSettings)


def _known(cls: type[P], data: Mapping[str, Any]) -> P:
    """``cls`` from the items of ``data`` that name its fields (others are ignored)."""
    known = {f.name for f in fields(cls)}
    # a tuple setting read back from JSON is a list: settings stay hashable and compare equal
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items() if k in known})


@dataclass(frozen=True)
class Settings:
    """Every setting, by the part that uses it: ``index`` (recorded in the index manifest),
    ``reader`` (the sentence reader), ``span`` (composing span answers), ``windows`` (the span
    reader's input, recorded in its model card). ``rag.load(...).settings`` is what a loaded
    index answers with."""

    index: IndexSettings = field(default_factory=IndexSettings)
    reader: ReaderSettings = field(default_factory=ReaderSettings)
    span: SpanAnswerSettings = field(default_factory=SpanAnswerSettings)
    windows: WindowSettings = field(default_factory=WindowSettings)

    def to_dict(self) -> dict[str, Any]:
        """``{"index": {...}, "reader": {...}, "span": {...}, "windows": {...}}``."""
        return {f.name: {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(getattr(self, f.name)).items()}
                for f in fields(self)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Settings":
        """From :meth:`to_dict`'s layout, or from an index manifest's ``"settings"`` (the index
        part's fields at the top level). Missing parts and fields take their defaults; unknown
        keys are ignored."""
        nested = data.get("index")
        index = nested if isinstance(nested, Mapping) else data

        def part(name: str) -> Mapping[str, Any]:
            value = data.get(name)
            return value if isinstance(value, Mapping) else {}

        return cls(
            index=_known(IndexSettings, index),
            reader=_known(ReaderSettings, part("reader")),
            span=_known(SpanAnswerSettings, part("span")),
            windows=_known(WindowSettings, part("windows")),
        )

    def with_overrides(self, **overrides: Any) -> "Settings":
        """A copy with each named field replaced in the part that has it (``chunk_chars=...``
        changes ``index``, ``min_dense=...`` ``reader``); ``None`` values are ignored, an unknown
        name raises ``TypeError``."""
        changes: dict[str, dict[str, Any]] = {}
        for name, value in overrides.items():
            if value is None:
                continue
            owner = next((f.name for f in fields(self) if name in _FIELDS[f.name]), None)
            if owner is None:
                raise TypeError(f"no setting is called {name!r}")
            changes.setdefault(owner, {})[name] = value
        return replace(self, **{owner: replace(getattr(self, owner), **c) for owner, c in changes.items()})


_FIELDS: dict[str, frozenset[str]] = {
    "index": frozenset(f.name for f in fields(IndexSettings)),
    "reader": frozenset(f.name for f in fields(ReaderSettings)),
    "span": frozenset(f.name for f in fields(SpanAnswerSettings)),
    "windows": frozenset(f.name for f in fields(WindowSettings)),
}


def index_settings(settings: Settings | IndexSettings | None) -> IndexSettings | None:
    """The index part of ``settings`` (``None`` stays ``None``: the index's own, or the defaults)."""
    return settings.index if isinstance(settings, Settings) else settings
