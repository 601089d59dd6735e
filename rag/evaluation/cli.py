"""The ``eval`` command: argparse wiring only; the work is in :mod:`rag.evaluation.evaluate`.

Hook it into the main CLI with::

    from rag.evaluation.cli import add_eval_parser
    add_eval_parser(subparsers)        # sets func=run_eval_command on the subparser

``run_eval_command(args)`` prints the table (or JSON with ``--json``) to stdout and returns the
exit code; errors are raised as :class:`rag.errors.RagError` for the main CLI to print. What it
prints goes through :func:`rag.terminal.say` (and :func:`rag.terminal.escape_json`): control characters in
question ids, sources and messages are shown escaped, never sent to the terminal raw.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from rag.evaluation.datasets import load_eval_set
from rag.errors import RagError
from rag.evaluation.evaluate import COMPARE_MODES, run_eval
from rag.settings import K_MAX, K_MIN
from rag.terminal import escape, escape_json, say

__all__ = ["add_eval_parser", "run_eval_command"]


def add_eval_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``eval`` subcommand to an ``argparse`` subparsers object."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "eval",
        help="measure retrieval and answers on a question set",
        description=(
            "Evaluate on a SQuAD-format file (CMRC 2018, DRCD: an index is built over all its "
            "passages) or a JSON-lines question file (asked against an existing index)."
        ),
    )
    p.add_argument("data", help="SQuAD-format .json or JSON-lines .jsonl question file")
    p.add_argument(
        "--index",
        default=None,
        help="index folder or postgresql:// URL: for JSON lines the index to ask (default: index); "
        "for SQuAD where to build it (default: a temporary folder)",
    )
    p.add_argument(
        "--reuse-index",
        action="store_true",
        help="SQuAD: use the index already built in --index from this file instead of rebuilding",
    )
    p.add_argument(
        "--full-build",
        action="store_true",
        help="SQuAD: rebuild the index in --index from scratch (default: update it incrementally)",
    )
    p.add_argument("--model", default=None, help="embedding model of the build (SQuAD only)")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--mode", choices=COMPARE_MODES, default=None, help="retrieval mode")
    group.add_argument(
        "--compare", action="store_true", help="evaluate bm25, dense and hybrid side by side"
    )
    p.add_argument("--limit", type=int, default=None, help="evaluate the first N questions only")
    p.add_argument(
        "--ids",
        default=None,
        metavar="PATH",
        help="evaluate only the questions listed in PATH: one id per line, a JSON list, or a JSON "
        "object with 'validation_ids' (the span reader's split.json)",
    )
    p.add_argument("-k", type=int, default=10,
                   help=f"retrieval depth for recall and MRR, {K_MIN} to {K_MAX} (default 10)")
    p.add_argument("--ask-k", type=int, default=5, help=f"passages the reader gets, {K_MIN} to {K_MAX} (default 5)")
    p.add_argument("--report", default=None, metavar="PATH", help="write every miss as JSON lines")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.add_argument(
        "--per-question", action="store_true", help="with --json: include every question's result"
    )
    p.set_defaults(func=run_eval_command)
    return p


def read_ids(path: str) -> set[str]:
    """Question ids from a text file (one per line) or JSON (a list, or {'validation_ids': [...]})."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise RagError(f"{path}: cannot read the id list ({exc.strerror or exc})") from None
    if text.lstrip().startswith(("[", "{")):
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise RagError(f"{path}: not valid JSON ({exc})") from None
        if isinstance(data, dict):
            data = data.get("validation_ids")
        if not isinstance(data, list):
            raise RagError(f"{path}: expected a JSON list of ids or an object with 'validation_ids'")
        return {str(x) for x in data}
    return {line.strip() for line in text.splitlines() if line.strip()}


def run_eval_command(args: argparse.Namespace) -> int:
    """Run ``eval`` with parsed ``args``; returns the exit code."""
    if args.limit is not None and args.limit < 0:
        raise RagError(f"--limit must be >= 0, got {args.limit}")
    eval_set = load_eval_set(args.data)
    if args.ids:
        ids = read_ids(args.ids)
        eval_set = eval_set.only(ids)
        if not eval_set.questions:
            raise RagError(f"{args.ids}: none of its {len(ids)} ids is a question of {args.data}")
    if args.compare:
        modes: tuple[str, ...] = COMPARE_MODES
    elif args.mode:
        modes = (args.mode,)
    else:
        modes = ("hybrid",)
    if args.model is not None and not eval_set.has_corpus:
        raise RagError("--model applies to SQuAD-format sets; a JSON-lines set uses its index's model")
    result = run_eval(
        eval_set,
        args.index,
        modes=modes,
        limit=args.limit,
        k=args.k,
        ask_k=args.ask_k,
        model=args.model,
        reuse_index=args.reuse_index,
        full_build=args.full_build,
        report_path=args.report,
        progress=not args.json and sys.stderr.isatty(),
    )
    if args.json:
        say(escape_json(json.dumps(result.to_json(questions=args.per_question), ensure_ascii=False, indent=2)))
    else:
        from rag.evaluation.report import render_table

        say(render_table(result))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry (``python -m rag.evaluation.cli DATA ...``) for use before/without rag.cli."""
    parser = argparse.ArgumentParser(prog="python -m rag.evaluation.cli")
    sub = parser.add_subparsers(dest="command", required=True)
    add_eval_parser(sub)
    args = parser.parse_args(["eval", *(sys.argv[1:] if argv is None else argv)])
    try:
        return int(args.func(args))
    except RagError as exc:
        say(f"error: {escape(str(exc))}", err=True)
        return 1


if __name__ == "__main__":
    sys.exit(main())
