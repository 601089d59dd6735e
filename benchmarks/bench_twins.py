"""How much made "no answer" twins look like real unanswerable questions, to the shipped answer path.

SQuAD 2.0's unanswerable questions of Spectre are refused far less often than the twins the
reader was trained and calibrated on (``training/near_miss.py``). This asks, through
``rag.load(index).ask`` (the shipped decision), questions of the reader split's *calibration*
articles (never its validation ones) in four kinds per language:

* ``answerable``: the questions as written (wrongly refused = refused);
* ``twin``: the out-of-article twin (a key word swapped for one the article never uses);
* ``inside``: the in-article twin (a key word swapped for one of the same kind that another
  passage of the article mentions, the gold passage does not);
* ``real`` (English only): SQuAD 2.0's unanswerables of the calibration half of Spectre.

A kind of twin that is refused about as often as the real ones is the better stand-in for them
in training. English is asked of an index of the SQuAD calibration articles' paragraphs (and
Spectre's), Chinese of one of the DRCD file's::

    D=../shared/data
    python -m benchmarks.bench_twins --drcd $D/drcd/DRCD_dev.json --drcd-index /tmp/idx_drcd \\
        --squad $D/squad/squad_v1.1_train.json.gz $D/squad/squad_v2.0_train_first10.json \\
        --squad-index /tmp/idx_twins_en --ids rag/models/reader/split.json --limit 200 \\
        --json benchmarks/results/bench_twins.json
"""

from __future__ import annotations

import argparse
import json
import random
import re
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import rag
from rag.evaluation.datasets import EvalQuestion, EvalSet, load_eval_set
from training.near_miss import near_miss_questions

SAMPLES = 8


def article_of_source(source: str) -> str:
    """``<set>/<article>-<paragraph>`` (and DRCD's ``<article>-<paragraph>``) -> the article."""
    return re.sub(r"-\d+(~\d+)?$", "", source)


def question_article(q: EvalQuestion) -> str:
    return article_of_source(q.gold_sources[0]) if q.gold_sources else q.id


def merged(sets: Sequence[EvalSet]) -> EvalSet:
    return EvalSet(name="+".join(s.name for s in sets),
                   passages=tuple(p for s in sets for p in s.passages),
                   questions=tuple(q for s in sets for q in s.questions))


def twins_of(eval_set: EvalSet, answerable: list[EvalQuestion]) -> dict[str, list[EvalQuestion]]:
    return {"twin": near_miss_questions(eval_set, answerable, question_article),
            "inside": near_miss_questions(eval_set, answerable, question_article, inside=True)}


def ensure_index(index: Path, passages: list[tuple[str, str]], model: str | None) -> None:
    if not (index / "CURRENT").exists():
        rag.IndexWriter(index, model=model).add_texts(passages, replace_all=True, full=True)


def ask_all(qa: rag.QA, kinds: dict[str, list[EvalQuestion]], log: Callable[[str], None]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for kind, questions in kinds.items():
        t0 = time.time()
        answers = [qa.ask(q.question) for q in questions]
        refused = sum(not a.found for a in answers)
        out[kind] = {"questions": len(questions), "refused": round(refused / max(1, len(questions)), 4),
                     "samples": [{"question": q.question, "answer": a.span or (a.text if a.found else None)}
                                 for q, a in list(zip(questions, answers))[:SAMPLES]]}
        log(f"  {kind}: {len(questions)} asked, {refused} refused ({time.time() - t0:.0f} s)")
    return out


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--drcd", type=Path, required=True)
    ap.add_argument("--drcd-index", type=Path, required=True, help="an index of the DRCD file's passages (built if missing)")
    ap.add_argument("--squad", type=Path, nargs="+", required=True, help="SQuAD 1.1 train and the SQuAD 2.0 file")
    ap.add_argument("--squad-index", type=Path, required=True, help="built if missing")
    ap.add_argument("--ids", type=Path, required=True, help="the reader's split.json")
    ap.add_argument("--limit", type=int, default=200, help="answerable questions per language")
    ap.add_argument("--model", default=None, help="embedding model of the indexes built here (default: the package's)")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    log = lambda m: print(m, flush=True)  # noqa: E731
    cal = set(json.loads(args.ids.read_text(encoding="utf-8"))["calibration_ids"])
    result: dict[str, Any] = {"reader": json.loads((Path(rag.__file__).parent / "models/reader/reader.json")
                                                   .read_text(encoding="utf-8"))["weights"]["sha256"][:12]}

    drcd = load_eval_set(args.drcd)
    zh = [q for q in drcd.questions if q.id in cal and q.answerable]
    random.Random(0).shuffle(zh)
    zh = zh[: args.limit]
    ensure_index(args.drcd_index, [(p.source, p.text) for p in drcd.passages], args.model)
    log(f"zh: {len(zh)} answerable calibration questions of {args.drcd.name}")
    result["zh"] = ask_all(rag.load(args.drcd_index), {"answerable": zh, **twins_of(drcd, zh)}, log)

    squad = merged([load_eval_set(p) for p in args.squad])
    chosen = [q for q in squad.questions if q.id in cal]
    en = [q for q in chosen if q.answerable]
    random.Random(0).shuffle(en)
    en = en[: args.limit]
    real = [q for q in chosen if not q.answerable]
    articles = {question_article(q) for q in en + real}
    ensure_index(args.squad_index, [(p.source, p.text) for p in squad.passages if article_of_source(p.source) in articles],
                 args.model)
    log(f"en: {len(en)} answerable calibration questions, {len(real)} real unanswerables, {len(articles)} articles")
    result["en"] = ask_all(rag.load(args.squad_index), {"answerable": en, **twins_of(squad, en), "real": real}, log)

    print(json.dumps({lang: {k: {"questions": v["questions"], "refused": v["refused"]} for k, v in r.items()}
                      for lang, r in result.items() if lang != "reader"}, indent=1))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
