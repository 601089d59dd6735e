"""Train the span reader shipped in ``rag/models/reader/`` (CPU; hours on 2 cores).

    python training/train_reader.py ../shared/data/cmrc2018/cmrc2018_dev.json \
        ../shared/data/cmrc2018/cmrc2018_trial.json ../shared/data/drcd/DRCD_dev.json

The lower encoder layers stay frozen (they are the retriever's own multilingual-e5-small; by
default run in float32 beside the retriever's int8 fast path, ``--lower``); their hidden states
are computed once and kept in memory, then the top layers and a start/end head are fine-tuned. A
validation split is held out by *article* (seeded), written to the model card with the data
hashes, the settings, the training time and the validation EM/F1, together with ``split.json``
(which question ids are validation) so evaluations can use exactly those questions.

The shipped reader was trained in stages; each continues the one before (``--init``) with a new
seeded batch order, and the card keeps the earlier stages in ``history`` (a stage without a
``script`` there read its data as it is); the README lists the commands.

By default questions and passages are read in Simplified script, as the reader reads them at
query time (``rag.span_features.reader_form``).
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from rag import span_reader  # noqa: E402
from rag.hashing import sha256_file  # noqa: E402
from rag.metrics import char_f1, exact_match  # noqa: E402
from rag.span_edges import trim_span  # noqa: E402
from rag.span_features import (  # noqa: E402
    reader_form,
    Window,
    WindowSettings,
    answer_tokens,
    best_span,
    make_windows,
    pad_batch,
    tokenize_passage,
    tokenize_question,
)
from rag.span_model import SpanHead, SpanModelConfig  # noqa: E402

from near_miss import NearMisses  # noqa: E402


@dataclass(frozen=True)
class Example:
    qid: str
    dataset: str
    article: str
    context: str
    question: str
    answers: tuple[tuple[str, int], ...]


def load_examples(path: Path) -> list[Example]:
    data = json.loads(path.read_text(encoding="utf-8"))["data"]
    out: list[Example] = []
    for a_i, article in enumerate(data):
        key = f"{path.stem}:{article.get('id') or article.get('title') or a_i}:{a_i}"
        for para in article["paragraphs"]:
            ctx = para["context"]
            for qa in para["qas"]:
                answers = []
                for ans in qa.get("answers", []):
                    text, start = ans["text"], int(ans["answer_start"])
                    if text and ctx[start : start + len(text)] == text:
                        answers.append((text, start))
                    elif text and text in ctx:  # a few gold offsets are off; the text is in the passage
                        answers.append((text, ctx.index(text)))
                if answers:
                    out.append(Example(str(qa["id"]), path.stem, key, ctx, qa["question"], tuple(answers)))
    return out


def in_reader_form(ex: Example) -> Example:
    """The example as the reader reads it (:func:`rag.span_features.reader_form`: Simplified,
    same length, so the answer offsets still hold)."""
    return replace(ex, context=reader_form(ex.context), question=reader_form(ex.question),
                   answers=tuple((reader_form(t), start) for t, start in ex.answers))


def split_by_article(examples: list[Example], fraction: float, seed: int) -> tuple[list[Example], list[Example]]:
    rng = random.Random(seed)
    val_articles: set[str] = set()
    for dataset in sorted({e.dataset for e in examples}):
        articles = sorted({e.article for e in examples if e.dataset == dataset})
        rng.shuffle(articles)
        val_articles.update(articles[: max(1, round(len(articles) * fraction))])
    train = [e for e in examples if e.article not in val_articles]
    val = [e for e in examples if e.article in val_articles]
    return train, val


def training_windows(tok, examples, settings, neg_rate, rng):  # type: ignore[no-untyped-def]
    feats: list[tuple[Window, int, int]] = []
    cache: dict[str, tuple[list[int], list[tuple[int, int]]]] = {}
    for ex in examples:
        if ex.context not in cache:
            cache[ex.context] = tokenize_passage(tok, ex.context)
        p_ids, p_offs = cache[ex.context]
        q_ids = tokenize_question(tok, ex.question, settings)
        if not ex.answers:  # a near miss: no window answers it
            feats += [(w, 0, 0) for w in make_windows(tok, q_ids, p_ids, p_offs, settings=settings)]
            continue
        text, start = ex.answers[0]
        for w in make_windows(tok, q_ids, p_ids, p_offs, settings=settings):
            target = answer_tokens(w, start, start + len(text))
            if target is not None:
                feats.append((w, *target))
            elif rng.random() < neg_rate:
                feats.append((w, 0, 0))
    return feats


def near_miss_examples(train: list[Example], share: float, seed: int) -> list[Example]:
    """Unanswerable twins of a ``share`` of the training questions (``near_miss.py``: a key noun
    swapped for one of another training article's questions), read against the same passage."""
    if share <= 0:
        return []
    maker = NearMisses({(e.article, e.context) for e in train}, {(e.article, e.question) for e in train}, seed)
    rng = random.Random(seed)
    out = []
    for e in train:
        if rng.random() < share:
            swapped = maker.make(e.question, e.article, e.context)
            if swapped is not None:
                out.append(replace(e, qid=e.qid + "~near", question=reader_form(swapped), answers=()))
    return out


def lower_hidden(lower, windows, pad_id, batch=32):  # type: ignore[no-untyped-def]
    """fp16 hidden states of the frozen layers for each window (unpadded)."""
    order = sorted(range(len(windows)), key=lambda i: len(windows[i].input_ids))
    out: list[np.ndarray | None] = [None] * len(windows)
    t0 = time.time()
    for b in range(0, len(order), batch):
        idx = order[b : b + batch]
        ids, mask = pad_batch([windows[i] for i in idx], pad_id)
        with torch.inference_mode():
            h = lower(torch.from_numpy(ids), torch.from_numpy(mask))
        for row, i in enumerate(idx):
            out[i] = h[row, : len(windows[i].input_ids)].to(torch.float16).numpy()
        if (b // batch) % 20 == 0:
            print(f"  lower layers {b + len(idx)}/{len(order)} windows, {time.time() - t0:.0f} s", flush=True)
    return out


def collate(hiddens, rows):  # type: ignore[no-untyped-def]
    width = max(hiddens[i].shape[0] for i in rows)
    x = np.zeros((len(rows), width, hiddens[rows[0]].shape[1]), dtype=np.float32)
    mask = np.zeros((len(rows), width), dtype=np.int64)
    for r, i in enumerate(rows):
        n = hiddens[i].shape[0]
        x[r, :n] = hiddens[i]
        mask[r, :n] = 1
    return torch.from_numpy(x), torch.from_numpy(mask)


def predicted_span(windows, start_logits, end_logits, context: str, tidy: bool = False) -> str:  # type: ignore[no-untyped-def]
    """The best span over all windows of one passage, as text ("" when no window has one);
    with ``tidy``, its edges tidied as ``ask`` does (:func:`rag.span_edges.trim_span`)."""
    guesses = [g for g in (best_span(w, start_logits[i], end_logits[i]) for i, w in enumerate(windows)) if g]
    best = max(guesses, key=lambda g: g.score) if guesses else None
    if best is None:
        return ""
    start, end = trim_span(context, best.start, best.end) if tidy else (best.start, best.end)
    return context[start:end]


def evaluate(head, lower, tok, examples, settings, pad_id):  # type: ignore[no-untyped-def]
    head.eval()
    ems, f1s = [], []
    for ex in examples:
        q_ids = tokenize_question(tok, ex.question, settings)
        p_ids, p_offs = tokenize_passage(tok, ex.context)
        windows = make_windows(tok, q_ids, p_ids, p_offs, settings=settings)
        ids, mask = pad_batch(windows, pad_id)
        with torch.inference_mode():
            m = torch.from_numpy(mask)
            s, e = head(lower(torch.from_numpy(ids), m), m)
        pred = predicted_span(windows, s.numpy(), e.numpy(), ex.context)
        golds = [a for a, _ in ex.answers]
        ems.append(exact_match(pred, golds))
        f1s.append(char_f1(pred, golds))
    head.train()
    return float(np.mean(ems)), float(np.mean(f1s))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data", nargs="+", type=Path, help="SQuAD-format JSON files (CMRC 2018 dev/trial, DRCD dev)")
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "rag" / "models" / "reader")
    ap.add_argument("--seed", type=int, default=20261129)
    ap.add_argument("--val-fraction", type=float, default=0.12)
    ap.add_argument("--epochs", type=float, default=2.0)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--neg-rate", type=float, default=0.3, help="share of answer-free windows kept as 'no answer'")
    ap.add_argument("--near-miss", type=float, default=0.0,
                    help="add near-miss unanswerable twins (near_miss.py) of this share of the training questions, "
                         "every window of them labelled 'no answer'")
    ap.add_argument("--max-train", type=int, default=0, help="use at most this many training questions (0: all)")
    ap.add_argument("--max-val", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--eval-every", type=int, default=0, help="validate every N steps on 100 questions (0: only at the end)")
    ap.add_argument("--checkpoint", type=Path, default=None, help="also save the head here at every --eval-every")
    ap.add_argument("--script", choices=("simplified", "as-is"), default="simplified",
                    help="read questions and passages converted to Simplified, as the shipped reader does at query "
                         "time (default), or as they are (how stages 1 and 2 were trained)")
    ap.add_argument("--lower", choices=span_reader.LOWER_PRECISIONS, default="float32",
                    help="how the frozen lower layers run, when caching their states and at query time "
                         "(recorded in the card; stages 1-4 were trained on int8)")
    ap.add_argument("--init", type=Path, default=None,
                    help="continue training the head in this folder (same data, split and settings; "
                         "its training history is kept in the new card)")
    args = ap.parse_args(argv)

    started = time.time()
    torch.manual_seed(args.seed)
    rng = random.Random(args.seed)
    torch.set_num_threads(args.threads)
    settings = WindowSettings()

    examples = [e for p in args.data for e in load_examples(p)]
    if args.script == "simplified":
        examples = [in_reader_form(e) for e in examples]
    train, val = split_by_article(examples, args.val_fraction, args.seed)
    rng.shuffle(train)
    if args.max_train:
        train = train[: args.max_train]
    val_eval = val[: args.max_val] if args.max_val else val
    print(f"{len(examples)} questions: {len(train)} train, {len(val)} validation "
          f"({len({e.article for e in val})} held-out articles)", flush=True)
    near = near_miss_examples(train, args.near_miss, args.seed)
    if near:
        print(f"{len(near)} near-miss unanswerable training questions", flush=True)
        train = train + near

    encoder = span_reader.load_encoder(precision=args.lower)
    tok, lower, pad_id = encoder.tokenizer, encoder.lower, encoder.pad_id
    feats = training_windows(tok, train, settings, args.neg_rate, rng)
    print(f"{len(feats)} training windows ({sum(1 for f in feats if f[1] == 0)} without the answer)", flush=True)
    t_cache = time.time()
    hiddens = lower_hidden(lower, [f[0] for f in feats], pad_id)
    cache_s = time.time() - t_cache

    cfg = SpanModelConfig()
    history: list[dict] = []
    if args.init is not None:
        head, previous = span_reader.load_head(args.init, encoder.identity)
        if previous["config"] != cfg.to_dict() or previous["windows"] != settings.to_dict():
            raise SystemExit(f"{args.init}: trained with other settings; cannot continue it")
        if previous.get("split", {}).get("seed") != args.seed:
            raise SystemExit(f"{args.init}: trained on another split (seed); cannot continue it")
        history = list(previous.get("history", [])) + [previous["training"]]
        # a new batch order for every stage, still fixed by the seed
        rng = random.Random(args.seed + len(history))
        print(f"continuing {args.init} (stage {len(history) + 1})", flush=True)
    else:
        head = SpanHead(cfg)
        head.init_from_encoder(encoder.top_layer_state())
    head.train()
    opt = torch.optim.AdamW(head.parameters(), lr=args.lr, weight_decay=0.01)
    steps_per_epoch = math.ceil(len(feats) / args.batch)
    total = max(1, int(steps_per_epoch * args.epochs))
    warm = max(1, total // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min((s + 1) / warm, max(0.0, (total - s) / (total - warm))))
    starts = torch.tensor([f[1] for f in feats])
    ends = torch.tensor([f[2] for f in feats])
    lossf = torch.nn.CrossEntropyLoss()

    # length-bucketed batches: shuffle, then sort within chunks of 50 batches
    step, t_train, running = 0, time.time(), 0.0
    while step < total:
        perm = list(range(len(feats)))
        rng.shuffle(perm)
        chunk = args.batch * 50
        batches = []
        for c in range(0, len(perm), chunk):
            part = sorted(perm[c : c + chunk], key=lambda i: hiddens[i].shape[0])
            batches += [part[b : b + args.batch] for b in range(0, len(part), args.batch)]
        rng.shuffle(batches)
        for rows in batches:
            if step >= total:
                break
            x, mask = collate(hiddens, rows)
            s, e = head(x, mask)
            loss = (lossf(s, starts[rows]) + lossf(e, ends[rows])) / 2
            loss.backward()
            torch.nn.utils.clip_grad_norm_(head.parameters(), 1.0)
            opt.step()
            sched.step()
            opt.zero_grad()
            step += 1
            running = 0.98 * running + 0.02 * loss.item() if step > 1 else loss.item()
            if step % 25 == 0:
                el = time.time() - t_train
                print(f"step {step}/{total} loss {running:.3f} {el:.0f} s (eta {el / step * (total - step):.0f} s)", flush=True)
            if args.eval_every and step % args.eval_every == 0:
                em, f1 = evaluate(head, lower, tok, val[:100], settings, pad_id)
                print(f"  validation (100 q) EM {em:.3f} F1 {f1:.3f}", flush=True)
                if args.checkpoint:
                    span_reader.save_head(head, {"encoder": encoder.identity, "config": cfg.to_dict(),
                                                 "windows": settings.to_dict(), "step": step}, args.checkpoint)
    train_s = time.time() - t_train

    em, f1 = evaluate(head, lower, tok, val_eval, settings, pad_id)
    print(f"validation ({len(val_eval)} questions): EM {em:.4f} F1 {f1:.4f}", flush=True)

    args.out.mkdir(parents=True, exist_ok=True)
    card = {
        "name": "rag span reader",
        "encoder": {**encoder.identity, "lower_precision": args.lower},
        "config": cfg.to_dict(),
        "windows": settings.to_dict(),
        "data": [{"file": p.name, "sha256": sha256_file(p)} for p in args.data],
        "split": {"by": "article", "seed": args.seed, "val_fraction": args.val_fraction,
                  "train_questions": len(train) - len(near), "val_questions": len(val),
                  "val_articles": len({e.article for e in val})},
        "training": {"epochs": args.epochs, "lr": args.lr, "batch": args.batch, "neg_rate": args.neg_rate,
                     "near_miss": args.near_miss, "near_miss_questions": len(near),
                     "windows": len(feats), "steps": total, "threads": args.threads,
                     "cache_seconds": round(cache_s), "train_seconds": round(train_s),
                     "total_seconds": round(time.time() - started), "torch": torch.__version__,
                     "continued": args.init is not None, "script": args.script},
        "history": history,
        "validation": {"questions": len(val_eval), "em": round(em, 4), "f1": round(f1, 4)},
    }
    span_reader.save_head(head, card, args.out)
    (args.out / "split.json").write_text(
        json.dumps({"seed": args.seed, "validation_ids": sorted(e.qid for e in val),
                    "validation_articles": sorted({e.article for e in val})}, ensure_ascii=False, indent=0) + "\n",
        encoding="utf-8")
    print(f"wrote {args.out}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
