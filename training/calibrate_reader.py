"""Fit the span reader's confidence (answer / span only / refuse) and write it to its model card.

    python -m training.calibrate_reader ../shared/data/drcd/DRCD_dev.json \
        --seed-questions ../shared/data/seed_qa_dev.jsonl --full-index /tmp/idx_drcd --write

Data: the validation questions of the reader's split (``rag/models/reader/split.json``; the
reader never trained on them) asked twice: against an index of all the set's passages
(answerable) and against the same index with every passage of the validation articles removed
(unanswerable: "each asked against an index that lacks its passage"), near-miss versions of
the same questions against the full index (``training/near_miss.py``: a key noun swapped for
another article's, so the passage is found but no longer answers; measured, fitted on only
with ``--fit-near-miss``), plus the seed dev set against an index of ``docs/``. A logistic
model over the features of ``rag.answer.span_answer`` is fitted; its thresholds keep wrongly refused
answerable questions under ``--max-wrong-refusals``. Questions ``QA.ask`` refuses before the
span reader (they name what the documents never mention) count as refused and are not fitted.
Reported numbers are cross-fitted (two folds split by article: each half is scored by a model
fitted on the other half), so they are out-of-sample; the written calibration is fitted on all.
It also writes the unanswerable questions as JSON lines for ``rag eval`` on the reduced index.

English (``--english``: SQuAD 1.1 train and the SQuAD 2.0 file): the split's questions of the same
articles (calibration, or validation with ``--fit-on validation``) are asked against an index of
every paragraph of their articles: a sample of answerable ones (``--english-limit``), SQuAD 2.0's
real unanswerables (Spectre's half of the split), and the answerable ones again against the
index without their paragraphs. The figures are reported per language and kind; the trade-off
curve (``curve``) lists, for thresholds of the answer confidence, what is refused of each.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import rag
from rag.evaluation.datasets import EvalQuestion, load_eval_set
from rag.evaluation.metrics import char_f1, contains_answer
from rag.encoder.e5_runtime import E5Embedder
from rag.answer.decision import consider
from rag.answer.span_answer import FEATURES, UNCALIBRATED, Calibration, SpanAnswerer
from rag.answer.span_reader import CARD_NAME, READER_DIR, SpanReader
from training.near_miss import near_miss_questions


@dataclass(frozen=True)
class Row:
    qid: str
    group: str  # article (DRCD) or "seed"
    kind: str  # "answerable", "removed" (passage not in the index), "near" (near miss) or "seed"
    label: int  # 1: the index holds the answer
    features: tuple[float, ...]
    span_f1: float  # F1 of the span against the gold answers (answerable rows)
    span_sentence_hit: bool  # the span's sentence holds a gold answer
    sentence_hit: bool  # the chosen candidate sentence holds a gold answer
    sentence_found: bool
    weight: float
    gated: bool = False  # refused before the span reader (it names what the documents never mention)


def load_uncalibrated(index: Path, reader_dir: Path = READER_DIR) -> rag.QA:
    """The index with the span reader of ``rag/models/reader``, whatever calibration its card holds
    (the features do not depend on it)."""
    qa = rag.load(index, reader="sentence")
    shared = qa.embedder if isinstance(qa.embedder, E5Embedder) else None
    documents = {s: qa.document(s) for s in qa.sources()}
    qa.span = SpanAnswerer(SpanReader.load(shared, reader_dir), documents, UNCALIBRATED, coverage=qa.reader.coverage)
    return qa


def collect(qa: rag.QA, questions, label: int, group_of, kind: str, weight: float = 1.0) -> list[Row]:  # type: ignore[no-untyped-def]
    span: SpanAnswerer = qa.span  # type: ignore[assignment]
    rows = []
    t0 = time.time()
    for i, q in enumerate(questions):
        hits = qa.retriever.search(q.question, k=5)
        considered = consider(q.question, hits, qa.reader, span)  # what QA.ask decides from
        gated, sentences = considered.gated, considered.sentences
        ev = considered.evidence if considered.evidence is not None else \
            span.evidence(q.question, hits, sentences[0])  # gated: its features are recorded, not fitted
        sentence = ev.sentence or sentences[0]  # the candidate sentence the span was sought in
        pred = qa.document(ev.hit.source).text[ev.start : ev.end] if ev.hit is not None else ""
        # the sentence holding the span, as the answer would quote it
        if ev.hit is not None and ev.end > ev.start and not ev.inside:
            composed_text = span._sentence_of_span(q.question, ev, 1.0, hits, with_span=True).text
        else:
            composed_text = sentence.text if sentence.found else ""
        golds = list(q.answers)
        rows.append(Row(
            q.id, group_of(q), kind, label, ev.features,
            char_f1(pred, golds) if golds and pred else 0.0,
            bool(composed_text and golds and contains_answer(composed_text, golds)),
            bool(sentence.found and golds and contains_answer(sentence.text, golds)),
            sentence.found, weight, gated,
        ))
        if (i + 1) % 100 == 0:
            print(f"  {i + 1}/{len(questions)} ({time.time() - t0:.0f} s)", flush=True)
    return rows


def _stale(derived: Path, base: Path) -> bool:
    """Whether the index ``derived`` (a copy of ``base`` with passages removed) must be made
    again: missing, or older than ``base``'s published version."""
    mine, theirs = derived / "CURRENT", base / "CURRENT"
    return not mine.exists() or mine.stat().st_mtime < theirs.stat().st_mtime


def english_rows(args: argparse.Namespace, fit_ids: set[str]) -> list[Row]:
    """Rows of the English sets (see the module's docstring)."""
    sets = [load_eval_set(p) for p in args.english]

    def article(source: str) -> str:  # "<set>/<article>-<paragraph>"
        return source.rsplit("-", 1)[0]

    chosen = [q for es in sets for q in es.questions if q.id in fit_ids]
    answerable = [q for q in chosen if q.answerable]
    random.Random(0).shuffle(answerable)
    answerable = answerable[: args.english_limit]
    unanswerable = [q for q in chosen if not q.answerable]
    articles = {article(s) for q in answerable + unanswerable for s in q.gold_sources}
    passages = [(p.source, p.text) for es in sets for p in es.passages if article(p.source) in articles]
    print(f"English: {len(answerable)} answerable and {len(unanswerable)} unanswerable questions; "
          f"{len(passages)} paragraphs of {len(articles)} articles", flush=True)
    index = args.english_index
    if not (index / "CURRENT").exists():
        rag.IndexWriter(index).add_texts(passages, replace_all=True, full=True)
    reduced = index.with_name(index.name + "-minus-answers")
    if _stale(reduced, index):
        shutil.rmtree(reduced, ignore_errors=True)
        shutil.copytree(index, reduced, symlinks=True)
        rag.IndexWriter(reduced).remove(sorted({s for q in answerable for s in q.gold_sources}))
    group = lambda q: article(q.gold_sources[0]) if q.gold_sources else q.id  # noqa: E731
    qa = load_uncalibrated(index, args.reader)
    rows = collect(qa, answerable, 1, group, "answerable-en")
    rows += collect(qa, unanswerable, 0, group, "squad2")
    del qa
    qa = load_uncalibrated(reduced, args.reader)
    rows += collect(qa, answerable, 0, group, "removed-en")
    return rows


def fit_logistic(x: np.ndarray, y: np.ndarray, w: np.ndarray, l2: float = 1.0) -> tuple[np.ndarray, float, np.ndarray, np.ndarray]:
    mean, scale = x.mean(0), x.std(0)
    scale[scale < 1e-6] = 1.0
    z = (x - mean) / scale
    a = np.hstack([z, np.ones((len(z), 1))])
    beta = np.zeros(a.shape[1])
    for _ in range(50):  # Newton / IRLS with an L2 penalty (not on the bias)
        p = 1 / (1 + np.exp(-np.clip(a @ beta, -40, 40)))
        g = a.T @ (w * (p - y)) + l2 * np.r_[beta[:-1], 0]
        h = (a * (w * p * (1 - p))[:, None]).T @ a + l2 * np.diag(np.r_[np.ones(len(beta) - 1), 0])
        step = np.linalg.solve(h, g)
        beta -= step
        if np.abs(step).max() < 1e-8:
            break
    return beta[:-1], float(beta[-1]), mean, scale


#: logits kept between the least confident seed dev question and the threshold that answers it.
#: Placed right at that question's confidence, the threshold decided it by arithmetic noise:
#: with the stage 3 reader an English seed question scored 0.0896 in bf16 and 0.0883 in float32
#: (0.016 logits apart) against a threshold of 0.08964, answered in one precision and refused
#: in the other (tests/test_precision_real.py).
SEED_MARGIN = 0.1


def _below(p: float, logits: float) -> float:
    """The probability ``logits`` below ``p`` on the logistic scale."""
    p = min(max(p, 1e-9), 1 - 1e-9)
    return 1.0 / (1.0 + math.exp(-(math.log(p / (1 - p)) - logits)))


def choose_thresholds(rows: list[Row], conf: np.ndarray, max_wrong: float) -> tuple[float, float]:
    ans = np.array([r.label == 1 and r.group != "seed" for r in rows])
    seed_ans = np.array([r.label == 1 and r.group == "seed" and not r.gated for r in rows])
    pos = np.sort(conf[ans])
    # the highest threshold that refuses at most max_wrong of answerable questions and no seed one
    answer_at = float(pos[int(np.floor(max_wrong * len(pos)))]) if len(pos) else 0.5
    if seed_ans.any():
        answer_at = min(answer_at, _below(float(conf[seed_ans].min()), SEED_MARGIN))
    answer_at = max(1e-4, answer_at - 1e-6)
    # span threshold: show the span where its expected F1 beats a sentence-only answer's value
    best, span_at = -1e9, answer_at
    f1 = np.array([r.span_f1 for r in rows])
    for t in sorted({answer_at, *np.quantile(conf[ans], np.linspace(0, 0.6, 31)).tolist()}):
        if t < answer_at:
            continue
        shown = ans & (conf >= t)
        gain = float((f1[shown] - 0.35).sum())
        if gain > best:
            best, span_at = gain, float(t)
    return answer_at, span_at


UNANSWERABLE_KINDS = ("removed", "near", "squad2", "removed-en")
Thresholds = dict[bool, tuple[float, float]]  # latin -> (answer_at, span_at)


def is_latin(row: Row) -> bool:
    return row.features[FEATURES.index("latin")] == 1.0


def choose_by_language(rows: list[Row], conf: np.ndarray, max_wrong: float | tuple[float, float]) -> Thresholds:
    """Thresholds fitted apart for Chinese and for Latin-script questions (each keeps at most
    ``max_wrong`` (Chinese, Latin) of its own answerable questions refused); a language without
    answerable rows takes the other's."""
    limits = max_wrong if isinstance(max_wrong, tuple) else (max_wrong, max_wrong)
    out: Thresholds = {}
    for latin in (False, True):
        idx = [i for i, r in enumerate(rows) if is_latin(r) == latin]
        if any(rows[i].label == 1 and rows[i].group != "seed" for i in idx):
            out[latin] = choose_thresholds([rows[i] for i in idx], conf[idx], limits[int(latin)])
    if not out:
        return {False: (0.5, 0.5), True: (0.5, 0.5)}
    return {latin: out.get(latin, next(iter(out.values()))) for latin in (False, True)}


def per_row(rows: list[Row], th: Thresholds) -> tuple[np.ndarray, np.ndarray]:
    return (np.array([th[is_latin(r)][0] for r in rows]), np.array([th[is_latin(r)][1] for r in rows]))


def refused_by_kind(rows: list[Row], conf: np.ndarray, answer_at: float | np.ndarray) -> dict[str, float]:
    """Share refused of each kind of row (answerable ones: wrongly refused), and how many."""
    out: dict[str, float] = {}
    at = np.broadcast_to(np.asarray(answer_at, dtype=np.float64), conf.shape)
    for kind in ("answerable", "answerable-en", *UNANSWERABLE_KINDS):
        idx = [i for i, r in enumerate(rows) if r.kind == kind]
        if idx:
            out[f"{kind}_refused"] = round(sum(conf[i] < at[i] for i in idx) / len(idx), 4)
            out[f"{kind}_n"] = len(idx)
    return out


def curve(rows: list[Row], conf: np.ndarray, points: int = 21) -> list[dict[str, float]]:
    """The trade-off: at thresholds spread over the answerable rows' confidences, what is refused
    of each kind (for the closing note's table; the written threshold is chosen on dev data)."""
    ans = np.array([conf[i] for i, r in enumerate(rows) if r.label == 1 and r.group != "seed"])
    if not len(ans):
        return []
    return [{"answer_at": round(float(t), 4), **refused_by_kind(rows, conf, float(t))}
            for t in sorted(set(np.quantile(ans, np.linspace(0.0, 0.3, points)).tolist()))]


def outcomes(rows: list[Row], conf: np.ndarray, answer_at: float | np.ndarray,
             span_at: float | np.ndarray) -> dict[str, float]:
    a_at = np.broadcast_to(np.asarray(answer_at, dtype=np.float64), conf.shape)
    s_at = np.broadcast_to(np.asarray(span_at, dtype=np.float64), conf.shape)
    ans = [i for i, r in enumerate(rows) if r.label == 1 and r.group != "seed"]
    una = [i for i, r in enumerate(rows) if r.kind == "removed"]
    near = [i for i, r in enumerate(rows) if r.kind == "near"]
    answered = [i for i in ans if conf[i] >= a_at[i]]
    spans = [i for i in answered if conf[i] >= s_at[i]]
    # sentence shown: the span's sentence when a span is shown, else the sentence reader's
    hits = sum(rows[i].span_sentence_hit if conf[i] >= s_at[i] else rows[i].sentence_hit for i in answered)
    return {
        "answerable": len(ans),
        "wrongly_refused": round(1 - len(answered) / max(1, len(ans)), 4),
        "unanswerable": len(una),
        "unanswerable_refused": round(sum(conf[i] < a_at[i] for i in una) / max(1, len(una)), 4),
        "near_miss": len(near),
        "near_miss_refused": round(sum(conf[i] < a_at[i] for i in near) / max(1, len(near)), 4),
        "span_shown": round(len(spans) / max(1, len(ans)), 4),
        "span_f1_all": round(sum(rows[i].span_f1 for i in spans) / max(1, len(ans)), 4),
        "span_f1_when_shown": round(sum(rows[i].span_f1 for i in spans) / max(1, len(spans)), 4),
        "reader_span_f1_top": round(float(np.mean([rows[i].span_f1 for i in ans])), 4),
        "sentence_hit": round(hits / max(1, len(ans)), 4),
        **refused_by_kind(rows, conf, a_at),
    }


def confidences(cal: Calibration, x: np.ndarray, rows: list[Row]) -> np.ndarray:
    """The calibrated confidence of every row; 0 for those refused before the span reader."""
    return np.array([0.0 if r.gated else cal.confidence(v) for v, r in zip(x, rows)])


def cross_fit(rows: list[Row], x: np.ndarray, y: np.ndarray, w: np.ndarray,
              max_wrong: float | tuple[float, float]) -> tuple[dict[str, float], list[Thresholds]]:
    """Out-of-sample outcomes: two folds by article, each half decided by a model (and
    thresholds) fitted on the other half and the seed questions."""
    groups = sorted({r.group for r in rows if r.group != "seed"})
    random.Random(1).shuffle(groups)
    fold_of = {g: i % 2 for i, g in enumerate(groups)}
    oos = np.zeros(len(rows))
    thresholds = []
    for f in (0, 1):
        train = np.array([r.group == "seed" or fold_of[r.group] != f for r in rows])
        test = np.array([r.group != "seed" and fold_of[r.group] == f for r in rows])
        coef, bias, mean, scale = fit_logistic(x[train], y[train], w[train])
        cal = Calibration(tuple(coef), bias, tuple(mean), tuple(scale), 0.5, 0.5)
        conf_all = confidences(cal, x, rows)
        sub = [r for r, t in zip(rows, train) if t]
        th = choose_by_language(sub, conf_all[train], max_wrong)
        thresholds.append(th)
        a_at, s_at = per_row(rows, th)
        # the test half's outcome under the training half's model and thresholds, coded so that
        # outcomes(..., answer_at=0.5, span_at=1.0) reads it: 0 refuse, 0.5 sentence, 1 span
        oos[test] = np.where(conf_all[test] >= a_at[test], 0.5 + 0.5 * (conf_all[test] >= s_at[test]), 0.0)
    return outcomes(rows, oos, 0.5, 1.0), thresholds


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data", type=Path, help="DRCD dev (SQuAD format)")
    ap.add_argument("--reader", type=Path, default=READER_DIR, help="the reader to calibrate (its card is written)")
    ap.add_argument("--split", type=Path, default=READER_DIR / "split.json")
    ap.add_argument("--rows", type=Path, default=None,
                    help="refit from the rows of an earlier --json run instead of running the reader again")
    ap.add_argument("--full-index", type=Path, required=True, help="index of all the set's passages (rag eval --index)")
    ap.add_argument("--reduced-index", type=Path, default=None, help="made from --full-index when missing")
    ap.add_argument("--seed-questions", type=Path, default=None)
    ap.add_argument("--seed-index", type=Path, default=Path("index"))
    ap.add_argument("--fit-on", choices=("calibration", "validation"), default="calibration",
                    help="which questions of the split to fit on (default: its calibration articles)")
    ap.add_argument("--max-wrong-refusals", type=float, default=0.035,
                    help="share of answerable Chinese questions the threshold may refuse (in sample)")
    ap.add_argument("--max-wrong-refusals-latin", type=float, default=0.08,
                    help="the same for Latin-script (English) questions: the trust issue allows 10%% there")
    ap.add_argument("--limit", type=int, default=0)
    ap.add_argument("--no-near-miss", dest="near_miss", action="store_false",
                    help="do not make (nor measure) near-miss unanswerable questions")
    ap.add_argument("--fit-near-miss", action="store_true",
                    help="fit the confidence on the near misses too (default: only measure them)")
    ap.add_argument("--write", action="store_true", help="write the calibration into the reader's model card")
    ap.add_argument("--unanswerable-out", type=Path, default=None, help="write the unanswerable questions as JSON lines")
    ap.add_argument("--near-miss-out", type=Path, default=None,
                    help="write the near-miss questions as JSON lines (for rag eval against --full-index)")
    ap.add_argument("--json", type=Path, default=None, help="write rows and results here")
    ap.add_argument("--drop-feature", action="append", default=[], choices=FEATURES,
                    help="fit without this feature (its column held constant): to measure what it adds")
    ap.add_argument("--english", type=Path, nargs="*", default=[],
                    help="English SQuAD-format sets (SQuAD 1.1 train .json.gz, the SQuAD 2.0 file)")
    ap.add_argument("--english-index", type=Path, default=Path("/tmp/rag-calibration-en"),
                    help="where the English index is built (reused when it exists)")
    ap.add_argument("--english-limit", type=int, default=400, help="answerable English questions asked")
    args = ap.parse_args(argv)

    split = json.loads(args.split.read_text(encoding="utf-8"))
    # fit on the split's calibration articles where it has them (validation stays for measuring);
    # readers from before the three-way split have only validation ids (scores then cross-fitted)
    val_ids = set(split.get(f"{args.fit_on}_ids") or split["validation_ids"])
    eval_set = load_eval_set(args.data)
    val = [q for q in eval_set.questions if q.id in val_ids]
    if args.limit:
        random.Random(0).shuffle(val)
        val = val[: args.limit]
    val_sources = sorted({s for q in eval_set.questions if q.id in val_ids for s in q.gold_sources})
    print(f"{len(val)} validation questions of {args.data.name}; {len(val_sources)} passages to remove", flush=True)

    reduced = args.reduced_index or args.full_index.with_name(args.full_index.name + "-minus-val")
    if args.rows is None and _stale(reduced, args.full_index):  # made from this full index, or made again
        shutil.rmtree(reduced, ignore_errors=True)
        shutil.copytree(args.full_index, reduced, symlinks=True)
        rag.IndexWriter(reduced).remove(val_sources)
    # DRCD passage ids are "<article>-<paragraph>": passages of one article share the prefix
    def article(q: EvalQuestion) -> str:
        return re.sub(r"-\d+(~\d+)?$", "", q.gold_sources[0]) if q.gold_sources else q.id

    article_of = {q.id: article(q) for q in val}
    near = near_miss_questions(eval_set, val, article) if args.near_miss else []
    near_article = {q.id: article_of[q.id.removesuffix("~near")] for q in near}

    rows: list[Row] = []
    if args.rows is not None:  # the features of an earlier run: refit only
        rows = [Row(**{**r, "features": tuple(r["features"])})
                for r in json.loads(args.rows.read_text(encoding="utf-8"))["rows"]]
        if any(len(r.features) != len(FEATURES) for r in rows):
            raise SystemExit(f"{args.rows}: rows have other features than {FEATURES}")
        rows = [r for r in rows if args.near_miss or r.kind != "near"]
    else:
        qa = load_uncalibrated(args.full_index, args.reader)
        print("answerable (full index)", flush=True)
        rows += collect(qa, val, 1, lambda q: article_of[q.id], "answerable")
        if near:
            print(f"near misses (full index): {len(near)}", flush=True)
            rows += collect(qa, near, 0, lambda q: near_article[q.id], "near")
        del qa
        qa = load_uncalibrated(reduced, args.reader)
        print("unanswerable (validation articles removed)", flush=True)
        rows += collect(qa, val, 0, lambda q: article_of[q.id], "removed")
        del qa
        if args.english:
            rows += english_rows(args, val_ids)
        if args.seed_questions:
            seed = load_eval_set(args.seed_questions)
            qa = load_uncalibrated(args.seed_index, args.reader)
            print("seed dev set", flush=True)
            for q in seed.questions:
                rows += collect(qa, [q], 1 if q.answerable else 0, lambda _q: "seed", "seed", weight=5.0)

    x = np.array([r.features for r in rows], dtype=np.float64)
    for name in args.drop_feature:  # a constant column: standardised to 0, so it carries no weight
        x[:, FEATURES.index(name)] = 0.0
    y = np.array([r.label for r in rows], dtype=np.float64)
    # rows refused before the span reader are decided already: they do not shape the fit; near
    # misses are measured, and shape it only with --fit-near-miss (fitted on, they lowered the
    # refusals of real near misses about the seed article: benchmarks/README.md)
    w = np.array([0.0 if r.gated or (r.kind == "near" and not args.fit_near_miss) else r.weight for r in rows],
                 dtype=np.float64)

    limits = (args.max_wrong_refusals, args.max_wrong_refusals_latin)
    cross, thresholds = cross_fit(rows, x, y, w, limits)

    coef, bias, mean, scale = fit_logistic(x, y, w)
    cal = Calibration(tuple(float(c) for c in coef), bias, tuple(float(m) for m in mean), tuple(float(s) for s in scale), 0.5, 0.5)
    conf = confidences(cal, x, rows)
    th = choose_by_language(rows, conf, limits)
    (answer_at, span_at), (answer_latin, span_latin) = th[False], th[True]
    cal = Calibration(cal.weights, cal.bias, cal.mean, cal.scale, round(answer_at, 6), round(span_at, 6),
                      round(answer_latin, 6), round(span_latin, 6))
    fitted = outcomes(rows, conf, *per_row(rows, th))
    seed_rows = [(r, c) for r, c in zip(rows, conf) if r.group == "seed"]
    seed_ok = sum((c >= th[is_latin(r)][0]) == (r.label == 1) for r, c in seed_rows)
    result = {
        "features": list(FEATURES),
        "gated": {kind: sum(r.gated for r in rows if r.kind == kind) for kind in ("answerable", "near", "removed", "seed")},
        "calibration": cal.to_dict(),
        "cross_fitted": cross,
        "fold_thresholds": [{("latin" if k else "han"): v for k, v in t.items()} for t in thresholds],
        "in_sample": fitted,
        "seed": {"questions": len(seed_rows), "decided_right": int(seed_ok)},
        "curve": curve(rows, conf),
        "sentence_reader_only": {
            "sentence_hit": round(float(np.mean([r.sentence_hit for r in rows if r.label == 1 and r.group != "seed"])), 4),
            "unanswerable_refused": round(float(np.mean([not r.sentence_found for r in rows if r.label == 0 and r.group != "seed"])), 4),
        },
    }
    print(json.dumps({k: v for k, v in result.items() if k != "calibration"}, indent=1), flush=True)
    print(json.dumps(result["calibration"]), flush=True)
    if args.json:
        args.json.write_text(json.dumps({**result, "rows": [r.__dict__ for r in rows]}, ensure_ascii=False, indent=1) + "\n",
                             encoding="utf-8")
    if args.unanswerable_out:
        with args.unanswerable_out.open("w", encoding="utf-8") as fh:
            for q in val:
                fh.write(json.dumps({"id": q.id, "question": q.question, "answers": []}, ensure_ascii=False) + "\n")
    if args.near_miss_out:
        with args.near_miss_out.open("w", encoding="utf-8") as fh:
            for q in near:
                fh.write(json.dumps({"id": q.id, "question": q.question, "answers": []}, ensure_ascii=False) + "\n")
    if args.write:
        card_path = args.reader / CARD_NAME
        card = json.loads(card_path.read_text(encoding="utf-8"))
        card["calibration"] = {**cal.to_dict(), "data": {
            "answerable": fitted["answerable"], "unanswerable": fitted["unanswerable"],
            "near_miss": fitted["near_miss"], "near_miss_fitted": args.fit_near_miss, "seed": len(seed_rows),
            "source": args.data.name, "split": f"{args.fit_on} articles of the reader's split"},
            "cross_fitted": cross}
        card_path.write_text(json.dumps(card, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
        print(f"wrote the calibration into {card_path}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
