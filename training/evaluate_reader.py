"""Validation EM/F1 of span readers, reader only (each question given its gold passage), per
language, and the words English spans cut.

    python -m training.evaluate_reader ../shared/data/cmrc2018/cmrc2018_dev.json \\
        ../shared/data/drcd/DRCD_dev.json ../shared/data/squad/squad_v1.1_train.json.gz \\
        --reader rag/models/reader [--reader OTHER ...] [--split SPLIT] [--json OUT]

The questions are the validation split (``split.json``) of the first reader unless ``--split``
names another, so readers are compared on the same questions. F1 is ``rag eval``'s
(:func:`rag.evaluation.metrics.answer_f1`: CMRC character F1 for Chinese, SQuAD token F1 for English).
Each reader is scored on its raw span and with its edges tidied as ``ask`` tidies them
(``NAME+edges``), at the precision ``ask`` runs it (:func:`rag.encoder.precision.choose`;
``--precision`` overrides). ``cut_words`` counts English spans whose edge falls inside a word.
``--average`` also scores the head whose weights are the mean of the given readers' (same
configuration), ``--average-out DIR`` writes it with a card.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rag.encoder import precision as rag_precision
from rag.answer import span_reader
from rag.hashing import sha256_file
from rag.evaluation.metrics import answer_f1, exact_match
from rag.answer.span_edges import trim_span, whole_words
from rag.answer.span_features import (WindowSettings, best_span, echo_filter, make_windows, pad_batch,
                                      tokenize_passage, tokenize_question)
from rag.answer.span_model import SpanHead, SpanModelConfig
from training.reader_data import in_reader_form, load_all


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


def cuts_a_word(text: str, start: int, end: int) -> bool:
    return end > start and whole_words(text, start, end) != (start, end)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data", nargs="+", type=Path)
    ap.add_argument("--reader", type=Path, action="append", default=None,
                    help="a reader folder (repeat to compare; default: the shipped reader)")
    ap.add_argument("--split", type=Path, default=None, help="split.json (default: the first reader's)")
    ap.add_argument("--average", action="store_true", help="also score the weight average of the readers")
    ap.add_argument("--average-out", type=Path, default=None, help="write the averaged head here")
    ap.add_argument("--precision", choices=rag_precision.PRECISIONS[:2], default=None)
    ap.add_argument("--max-val", type=int, default=0, help="at most this many questions per language (0: all)")
    ap.add_argument("--no-echo-filter", dest="echo", action="store_false",
                    help="also allow spans that only repeat the question (ask never gives them)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    precision = rag_precision.choose(args.precision)
    readers = args.reader or [span_reader.READER_DIR]
    split_file = args.split or readers[0] / "split.json"
    if not split_file.is_file():
        raise SystemExit(f"{split_file}: no such split file (pass --split)")
    wanted = set(json.loads(split_file.read_text(encoding="utf-8"))["validation_ids"])
    val = [in_reader_form(e) for e in load_all(args.data) if e.qid in wanted and e.answers]
    if args.max_val:
        val = [e for lang in ("zh", "en") for e in [x for x in val if x.language == lang][: args.max_val]]
    if not val:
        raise SystemExit("none of the split's validation questions are in these data files")

    cards = [span_reader.read_card(f) for f in readers]
    encoders: dict[tuple[str, int], span_reader.Encoder] = {}
    heads: dict[str, tuple[SpanHead, span_reader.Encoder]] = {}
    loaded = []
    for folder, card in zip(readers, cards):
        first = SpanModelConfig.from_dict(card["config"]).first_layer
        key = (span_reader.lower_precision(card), first)
        if key not in encoders:
            encoders[key] = span_reader.load_encoder(None, key[0], first)
        head, c = span_reader.load_head(folder, encoders[key].identity)
        heads[str(folder)] = (head, encoders[key])
        loaded.append((head, c))
    average_state: dict[str, torch.Tensor] = {}
    average_card: dict | None = None
    if args.average or args.average_out:
        head, average_card = averaged(loaded)
        heads["average"] = (head, heads[str(readers[0])][1])
        average_state = {k: v.clone() for k, v in head.state_dict().items()}

    settings = WindowSettings()
    scores: dict[str, dict[str, list[list[float]]]] = {}
    t0 = time.time()
    for n, ex in enumerate(val):
        golds = [a for a, _ in ex.answers]
        for name, (head, enc) in heads.items():
            tok = enc.tokenizer
            windows = make_windows(tok, tokenize_question(tok, ex.question, settings), *tokenize_passage(tok, ex.context),
                                   settings=settings)
            ids, mask = pad_batch(windows, enc.pad_id)
            with torch.inference_mode(), rag_precision.autocast(precision):
                m = torch.from_numpy(mask)
                s, e = head(enc.lower(torch.from_numpy(ids), m), m)
            s, e = s.float().numpy(), e.float().numpy()
            reject = echo_filter(ex.question, [ex.context]) if args.echo else None
            guesses = [g for g in (best_span(w, s[i], e[i], reject=reject) for i, w in enumerate(windows)) if g]
            best = max(guesses, key=lambda g: g.score) if guesses else None
            for suffix, tidy in (("", False), ("+edges", True)):
                if best is None:
                    a, b = 0, 0
                else:
                    a, b = trim_span(ex.context, best.start, best.end) if tidy else (best.start, best.end)
                pred = ex.context[a:b]
                row = scores.setdefault(name + suffix, {}).setdefault(ex.language, [[], [], []])
                row[0].append(exact_match(pred, golds))
                row[1].append(answer_f1(pred, golds))
                row[2].append(float(ex.language == "en" and cuts_a_word(ex.context, a, b)))
        if (n + 1) % 200 == 0:
            print(f"  {n + 1}/{len(val)} questions, {time.time() - t0:.0f} s", file=sys.stderr, flush=True)
    result: dict[str, Any] = {
        name: {lang: {"questions": len(em), "em": round(float(np.mean(em)), 4), "f1": round(float(np.mean(f1)), 4),
                      **({"cut_words": int(sum(cut))} if lang == "en" else {})}
               for lang, (em, f1, cut) in sorted(by_lang.items())}
        for name, by_lang in scores.items()}
    result["precision"] = precision
    result["echo_filter"] = args.echo
    for name, by_lang in result.items():
        if name not in ("precision", "echo_filter"):
            print(f"{name}: " + "; ".join(f"{lang} EM {r['em']:.4f} F1 {r['f1']:.4f} ({r['questions']} q"
                                          + (f", {r['cut_words']} cut words" if "cut_words" in r else "") + ")"
                                          for lang, r in by_lang.items()))
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
