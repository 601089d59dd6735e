"""Validation EM/F1 of span readers, reader only (each question given its gold passage).

    python training/evaluate_reader.py ../shared/data/cmrc2018/cmrc2018_dev.json \
        ../shared/data/cmrc2018/cmrc2018_trial.json ../shared/data/drcd/DRCD_dev.json \
        --reader rag/models/reader [--reader OTHER ...] [--average] [--json OUT]

The questions are exactly the validation split the (first) reader was trained without (its
``split.json``). The frozen lower layers run once per window and are shared by every reader
compared. ``--average`` also scores the head whose weights are the mean of the given readers'
(checkpoints of one training run), and ``--average-out DIR`` writes that head with a card.
Readers run as shipped: float32 heads unless ``--int8``, questions and passages in the
reader's form (Simplified) unless ``--script`` says otherwise. Each is scored on its raw span
and on the span with its edges tidied as ``ask`` tidies them (``NAME+edges``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from train_reader import load_examples, predicted_span  # noqa: E402

from rag import e5, span_reader  # noqa: E402
from rag.hashing import sha256_file  # noqa: E402
from rag.metrics import char_f1, exact_match  # noqa: E402
from rag.span_features import (  # noqa: E402
    WindowSettings,
    make_windows,
    pad_batch,
    reader_form,
    tokenize_passage,
    tokenize_question,
)
from rag.span_model import SpanHead, SpanModelConfig  # noqa: E402


def averaged(heads: list[tuple[SpanHead, dict]]) -> tuple[SpanHead, dict]:
    """The head whose weights are the mean of ``heads`` (loaded heads with their cards)."""
    cards = [c for _, c in heads]
    for c in cards[1:]:
        if c["config"] != cards[0]["config"] or c["windows"] != cards[0]["windows"]:
            raise SystemExit("readers with other settings cannot be averaged")
    states = [h.state_dict() for h, _ in heads]
    mean = {k: torch.stack([s[k].float() for s in states]).mean(0) for k in states[0]}
    head = SpanHead(SpanModelConfig.from_dict(cards[0]["config"]))
    head.load_state_dict(mean)
    return head.eval(), cards[-1]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data", nargs="+", type=Path)
    ap.add_argument("--reader", type=Path, action="append", default=None,
                    help="a reader folder (repeat to compare; default: the shipped reader)")
    ap.add_argument("--split", type=Path, default=None, help="split.json (default: the first reader's)")
    ap.add_argument("--average", action="store_true", help="also score the weight average of the readers")
    ap.add_argument("--average-out", type=Path, default=None, help="write the averaged head here")
    ap.add_argument("--int8", action="store_true", help="score the heads with int8 Linear layers (SpanReader.load(fast=True))")
    ap.add_argument("--lower", choices=span_reader.LOWER_PRECISIONS, default=None,
                    help="how the lower layers run (default: as the first reader's card says)")
    ap.add_argument("--max-val", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--script", choices=("reader", "as-is", "question"), default="reader",
                    help="reader: question and passage in the reader's form (Simplified, as at query time); "
                         "as-is: unconverted; question: only the question converted (mixed scripts)")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    readers = args.reader or [span_reader.READER_DIR]
    split_file = args.split or readers[0] / "split.json"
    if not split_file.is_file():
        raise SystemExit(f"{split_file}: no such split file (a checkpoint has none: pass --split)")
    split = json.loads(split_file.read_text(encoding="utf-8"))
    wanted = set(split["validation_ids"])
    val = [e for p in args.data for e in load_examples(p) if e.qid in wanted]
    if args.max_val:
        val = val[: args.max_val]
    if not val:
        raise SystemExit("none of the split's validation questions are in these data files")

    encoder = span_reader.load_encoder(precision=args.lower or span_reader.lower_precision(span_reader.read_card(readers[0])))
    tok, lower, pad_id = encoder.tokenizer, encoder.lower, encoder.pad_id
    loaded = [span_reader.load_head(f, encoder.identity) for f in readers]
    heads: dict[str, SpanHead] = {str(f): head for f, (head, _) in zip(readers, loaded)}
    average_card: dict | None = None
    average_state: dict[str, torch.Tensor] = {}
    if args.average or args.average_out:
        head, average_card = averaged(loaded)
        heads["average"] = head
        average_state = {k: v.clone() for k, v in head.state_dict().items()}
    if args.int8:
        for head in heads.values():
            e5.quantize_int8(head, pattern=None)

    settings = WindowSettings()
    # each head as decoded raw, and with its span's edges tidied as ``ask`` does ("+edges")
    scores: dict[str, tuple[list[float], list[float]]] = {
        f"{name}{suffix}": ([], []) for name in heads for suffix in ("", "+edges")}
    t0 = time.time()
    for n, ex in enumerate(val):
        question = ex.question if args.script == "as-is" else reader_form(ex.question)
        context = reader_form(ex.context) if args.script == "reader" else ex.context
        q_ids = tokenize_question(tok, question, settings)
        p_ids, p_offs = tokenize_passage(tok, context)
        windows = make_windows(tok, q_ids, p_ids, p_offs, settings=settings)
        ids, mask = pad_batch(windows, pad_id)
        golds = [a for a, _ in ex.answers]
        with torch.inference_mode():
            m = torch.from_numpy(mask)
            hidden = lower(torch.from_numpy(ids), m)
            for name, head in heads.items():
                s, e = head(hidden, m)
                for suffix, tidy in (("", False), ("+edges", True)):
                    pred = predicted_span(windows, s.numpy(), e.numpy(), ex.context, tidy=tidy)
                    scores[name + suffix][0].append(exact_match(pred, golds))
                    scores[name + suffix][1].append(char_f1(pred, golds))
        if (n + 1) % 200 == 0:
            print(f"  {n + 1}/{len(val)} questions, {time.time() - t0:.0f} s", file=sys.stderr, flush=True)
    result = {name: {"questions": len(val), "em": round(float(np.mean(em)), 4), "f1": round(float(np.mean(f1)), 4)}
              for name, (em, f1) in scores.items()}
    for name, r in result.items():
        print(f"{name}: EM {r['em']:.4f} F1 {r['f1']:.4f} ({r['questions']} validation questions)")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    if args.average_out and average_card is not None:
        card = {k: v for k, v in average_card.items() if k not in ("weights", "calibration")}
        card["averaged_from"] = [{"folder": str(f), "sha256": sha256_file(f / "reader.safetensors")} for f in readers]
        card["validation"] = result["average"]
        head = SpanHead(SpanModelConfig.from_dict(card["config"]))
        head.load_state_dict(average_state)
        span_reader.save_head(head, card, args.average_out)
        (args.average_out / "split.json").write_text(split_file.read_text(encoding="utf-8"), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
