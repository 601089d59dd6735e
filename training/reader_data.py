"""Training data for the span reader: SQuAD-format files read into examples, split by article
into train / calibrate / validate per dataset, and the "no answer" examples made from them.

Files: CMRC 2018 (train, dev, trial), DRCD dev (Chinese), SQuAD 1.1 train (``.json.gz``) and the
first articles of SQuAD 2.0 train (English, with real unanswerable questions). SQuAD 2.0's
answerable questions are SQuAD 1.1 questions too, so a 2.0 question whose text a 1.1 file has is
dropped. Both SQuAD files share article keys (``squad:<title>``), so an article is on one side
of the split whichever file a question came from. SQuAD 2.0's unanswerables come from two
articles: :data:`UNANSWERABLE_TRAIN` trains, :data:`UNANSWERABLE_HELD` is held out, its
paragraphs alternating between calibration and validation.
"""

from __future__ import annotations

import gzip
import json
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from rag.answer.span_features import reader_form

UNANSWERABLE_TRAIN = "squad:The_Legend_of_Zelda:_Twilight_Princess"
UNANSWERABLE_HELD = "squad:Spectre_(2015_film)"
SPLITS = ("train", "calibrate", "validate")


@dataclass(frozen=True)
class Example:
    """One question about one passage; ``answers`` empty means the passage does not answer it."""

    qid: str
    dataset: str
    language: str  # "zh" or "en"
    article: str
    paragraph: int  # index of the passage within its article
    context: str
    question: str
    answers: tuple[tuple[str, int], ...]
    unique: bool = True  # the first answer's text occurs once in the passage (its offset is sure)


def _read_json(path: Path) -> dict[str, Any]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as fh:  # type: ignore[operator]
        data = json.load(fh)
    if not isinstance(data, dict) or "data" not in data:
        raise ValueError(f"{path}: not a SQuAD-format file (no 'data')")
    return data


def dataset_name(path: Path) -> str:
    name = path.name
    for suffix in (".gz", ".json"):
        name = name.removesuffix(suffix)
    return name


def load_examples(path: Path) -> list[Example]:
    """Every usable question of a SQuAD-format file (answer offsets checked; a wrong offset is
    re-found where the text is in the passage, else the answer is dropped)."""
    name = dataset_name(path)
    squad = name.startswith("squad")
    language = "en" if squad else "zh"
    out: list[Example] = []
    for a_i, article in enumerate(_read_json(path)["data"]):
        title = article.get("title") or article.get("id") or str(a_i)
        key = f"squad:{title}" if squad else f"{name}:{article.get('id') or title}:{a_i}"
        for p_i, para in enumerate(article["paragraphs"]):
            ctx = para["context"]
            for qa in para["qas"]:
                answers = []
                for ans in qa.get("answers", []):
                    text, start = ans["text"], int(ans["answer_start"])
                    if text and ctx[start : start + len(text)] == text:
                        answers.append((text, start))
                    elif text and text in ctx:
                        answers.append((text, ctx.index(text)))
                impossible = bool(qa.get("is_impossible", False))
                if not answers and not impossible:
                    continue
                unique = int(qa.get("answer_occurrences", 1)) == 1
                out.append(Example(str(qa["id"]), name, language, key, p_i, ctx, qa["question"],
                                   () if impossible else tuple(answers), unique))
    return out


def load_all(paths: Sequence[Path]) -> list[Example]:
    """All files' examples; a SQuAD 2.0 question whose text an earlier-read SQuAD 1.1 file has
    is dropped (the same question twice)."""
    ordered = sorted(paths, key=lambda p: ("v2" in p.name, p.name))
    examples: list[Example] = []
    seen_en: set[str] = set()
    for p in ordered:
        for ex in load_examples(p):
            if ex.language == "en":
                q = " ".join(ex.question.split()).lower()
                if q in seen_en:
                    continue
                seen_en.add(q)
            examples.append(ex)
    return examples


def in_reader_form(ex: Example) -> Example:
    """The example as the reader reads it (Simplified, same length: offsets still hold)."""
    return replace(ex, context=reader_form(ex.context), question=reader_form(ex.question),
                   answers=tuple((reader_form(t), s) for t, s in ex.answers))


def split_articles(examples: Iterable[Example], cal_fraction: float, val_fraction: float,
                   seed: int) -> dict[str, str]:
    """Article -> split, drawn per dataset family (the two SQuAD files are one family) with a
    seeded shuffle. :data:`UNANSWERABLE_TRAIN` always trains; :data:`UNANSWERABLE_HELD` is held
    out (its paragraphs split between calibrate and validate, :func:`split_of`)."""
    families: dict[str, set[str]] = {}
    for ex in examples:
        family = "squad" if ex.language == "en" else ex.dataset
        families.setdefault(family, set()).add(ex.article)
    out: dict[str, str] = {}
    for family in sorted(families):
        articles = sorted(families[family] - {UNANSWERABLE_TRAIN, UNANSWERABLE_HELD})
        random.Random(f"{seed}:{family}").shuffle(articles)
        n_val = max(1, round(len(articles) * val_fraction))
        n_cal = max(1, round(len(articles) * cal_fraction)) if cal_fraction > 0 else 0
        for i, a in enumerate(articles):
            out[a] = "validate" if i < n_val else "calibrate" if i < n_val + n_cal else "train"
    out[UNANSWERABLE_TRAIN] = "train"
    out[UNANSWERABLE_HELD] = "held"
    return out


def split_of(ex: Example, articles: dict[str, str]) -> str:
    where = articles[ex.article]
    if where == "held":
        return "calibrate" if ex.paragraph % 2 == 0 else "validate"
    return where


def off_passage_negatives(train: Sequence[Example], share: float, seed: int) -> list[Example]:
    """On-topic passages that lack the answer: a ``share`` of the training questions asked of
    another paragraph of their own article that does not contain any of their answers."""
    if share <= 0:
        return []
    by_article: dict[str, dict[int, str]] = {}
    for ex in train:
        by_article.setdefault(ex.article, {})[ex.paragraph] = ex.context
    rng = random.Random(f"{seed}:off-passage")
    out: list[Example] = []
    for ex in train:
        if not ex.answers or rng.random() >= share:
            continue
        others = [(i, c) for i, c in sorted(by_article[ex.article].items())
                  if i != ex.paragraph and not any(t in c for t, _ in ex.answers)]
        if others:
            i, ctx = rng.choice(others)
            out.append(replace(ex, qid=ex.qid + "~off", paragraph=i, context=ctx, answers=()))
    return out
