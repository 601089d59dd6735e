"""Command line: ``python -m rag build|add|remove|status|ask|search|clean|eval``.

Errors the user can fix are printed as one line on stderr with exit code 1; no traceback.
Everything printed goes through :func:`rag.terminal.say`: control characters in file names, sources and
messages are shown escaped (:mod:`rag.terminal`), never sent to the terminal raw.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from rag.errors import RagError
from rag.index.pg_schema import is_database_url, masked
from rag.encoder.precision import PRECISIONS
from rag.settings import K_DEFAULT, K_MAX, K_MIN, MODES
from rag.terminal import escape, escape_json, progress_printer, say
from rag.types import Answer, Hit, to_jsonable

if TYPE_CHECKING:
    from rag.index.writer import IndexWriter


def _where(index: object) -> str:
    """An index as messages name it: a database URL with its password masked."""
    return _one(masked(index) if isinstance(index, str) and is_database_url(index) else index)


def _one(value: object) -> str:
    """``value`` as one line for a message: newlines and every control character escaped."""
    return escape(str(value))


def _print_json(obj: Any) -> None:
    say(escape_json(json.dumps(to_jsonable(obj), ensure_ascii=False, indent=2)))


def _settings_overrides(args: argparse.Namespace) -> Any:
    from rag.settings import Settings

    if args.chunk_chars is None and args.chunk_overlap is None:
        return None  # the index's settings, or the defaults for a new index
    return Settings().with_overrides(chunk_chars=args.chunk_chars, chunk_overlap=args.chunk_overlap)


def _print_report(report: Any, index: str, verb: str) -> None:
    for e in report.errors:
        say(f"skipped {_one(e)}", err=True)
    for w in report.warnings:
        say(f"warning: {_one(w)}", err=True)
    for d in report.duplicates:
        say(f"duplicate: {_one(d.source)} has the same content as {_one(d.same_as)} (indexed once)", err=True)
    for n in report.near_duplicates:
        say(f"near-duplicate: {_one(n.source)} ~ {_one(n.similar_to)} (Jaccard {n.jaccard:.2f})", err=True)
    i = report.info
    if not report.published:
        say(f"index is up to date: {i.documents} document(s), {i.chunks} chunk(s) with {_one(i.model)} -> {_where(index)}")
        return
    if report.excluded:
        say(f"{len(report.excluded)} file(s) excluded from this index on purpose, not indexed "
            f"(restore from the chat's Documents tab): {', '.join(_one(e) for e in report.excluded[:5])}")
    changes = (f"{len(report.added)} added, {len(report.updated)} updated, {len(report.removed)} removed, "
               f"{len(report.unchanged)} unchanged; {report.embedded_chunks} chunk(s) embedded, "
               f"{report.reused_chunks} reused")
    say(f"{verb} {i.documents} document(s), {i.chunks} chunk(s) with {_one(i.model)} in {i.seconds:.1f}s -> "
        f"{_where(index)} ({changes})")


def _report_json(report: Any) -> dict[str, Any]:
    return {
        "info": to_jsonable(report.info),
        "errors": [{"path": e.path, "reason": e.reason} for e in report.errors],
        "added": report.added, "updated": report.updated, "removed": report.removed,
        "unchanged": len(report.unchanged), "excluded": report.excluded,
        "duplicates": [to_jsonable(d) for d in report.duplicates],
        "near_duplicates": [to_jsonable(n) for n in report.near_duplicates],
        "embedded_chunks": report.embedded_chunks, "reused_chunks": report.reused_chunks,
        "full": report.full, "published": report.published, "warnings": report.warnings,
    }


def _writer(args: argparse.Namespace) -> IndexWriter:
    """The index writer of a ``build`` or ``add``: the flags' model, chunking and precision, and
    progress on stderr unless ``--json``."""
    from rag.index.writer import IndexWriter

    return IndexWriter(args.index, model=args.model, settings=_settings_overrides(args), precision=args.precision,
                       progress=None if args.json else progress_printer(sys.stderr))


def _cmd_build(args: argparse.Namespace) -> int:
    report = _writer(args).sync(args.paths or ["docs"], full=args.full)
    if args.json:
        _print_json(_report_json(report))
        return 0
    _print_report(report, args.index, "indexed")
    return 0


def _cmd_add(args: argparse.Namespace) -> int:
    report = _writer(args).add(args.paths, full=args.full)
    if args.json:
        _print_json(_report_json(report))
        return 0
    _print_report(report, args.index, "index holds")
    return 0


def _cmd_remove(args: argparse.Namespace) -> int:
    from rag.index.writer import IndexWriter

    report = IndexWriter(args.index).remove(args.sources)
    if args.json:
        _print_json(_report_json(report))
        return 0
    for e in report.errors:
        say(f"not removed: {_one(e)}", err=True)
    i = report.info
    say(f"removed {len(report.removed)} document(s): {i.documents} document(s), {i.chunks} chunk(s) left in "
        f"{_where(args.index)}")
    return 0


def _cmd_status(args: argparse.Namespace) -> int:
    from rag.index.status import index_status

    st = index_status(args.index, args.paths, verify=args.verify)
    if args.json:
        _print_json(st)
        return 0 if st.exists else 1
    if not st.exists:
        say(f"no usable index at {_where(args.index)}: {_one(st.problem)}")
        if st.new:
            say(f"{len(st.new)} file(s) to index; run: python -m rag build")
        return 1
    say(f"index {_where(args.index)} ({_one(st.version)}): {st.documents} document(s), {st.chunks} chunk(s), "
        f"model {_one(st.model)} in {_one(st.precision)}, built {_one(st.created)}")
    if st.precision != st.preferred_precision:
        say(f"this machine computes {_one(st.preferred_precision)} vectors best (rag.encoder.precision); the index keeps "
            f"{_one(st.precision)} until rebuilt: python -m rag build --full")
    if st.warning:
        say(f"warning: {_one(st.warning)}")
    for d in st.duplicates:
        say(f"  duplicate: {_one(d.source)} = {_one(d.same_as)}")
    for n in st.near_duplicates:
        say(f"  near-duplicate: {_one(n.source)} ~ {_one(n.similar_to)} (Jaccard {n.jaccard:.2f})")
    if args.paths:
        for label, names in (("new", st.new), ("changed", st.changed), ("removed", st.removed),
                             ("excluded (rag.index.exclusions; restore it from the chat's Documents tab)", st.excluded)):
            for name in names:
                say(f"  {label}: {_one(name)}")
        say("stale: run python -m rag build to update" if st.stale else "up to date with its files")
    return 0


def _format_answer(ans: Answer) -> str:
    if not ans.found:
        lines = [ans.text]
        if ans.passages:
            lines.append("Closest passages (not an answer; judge for yourself):")
            for h in ans.passages[:3]:
                lines.append(f"  - {_one(h.source)} [{h.start}:{h.end}] {h.text[:120]}")
        return "\n".join(lines)
    lines = []
    if ans.span:
        lines.append(f"Answer: {ans.span}")
    lines.append(f"{ans.text} [1]")
    lines.append("")
    for c in ans.citations:
        lines.append(f"[{c.n}] {_one(c.source)} [{c.start}:{c.end}] \"{c.quote}\"")
    return "\n".join(lines)


def _cmd_ask(args: argparse.Namespace) -> int:
    from rag.pipeline import check_query, load

    check_query(args.question, args.k, args.mode)  # before the model is loaded
    qa = load(args.index, model=args.model, read_url=args.read_url)
    ans = qa.ask(args.question, k=args.k, mode=args.mode)
    if args.json:
        _print_json(ans)
    else:
        say(_format_answer(ans))
    return 0


def _format_hit(h: Hit) -> str:
    return f"{h.rank}. {h.score:.3f} {_one(h.source)} [{h.start}:{h.end}] (bm25 {h.bm25_score:.2f}, dense {h.dense_score:.2f})\n   {h.text[:200]}"


def _cmd_search(args: argparse.Namespace) -> int:
    from rag.pipeline import check_query, load

    check_query(args.question, args.k, args.mode)  # before the model is loaded
    qa = load(args.index, model=args.model, read_url=args.read_url)
    hits = qa.search(args.question, k=args.k, mode=args.mode)
    if args.json:
        _print_json(hits)
    else:
        say("\n".join(_format_hit(h) for h in hits) if hits else "no results")
    return 0


def _cmd_clean(args: argparse.Namespace) -> int:
    from rag.pipeline import clean_file

    doc = clean_file(args.file)
    if args.json:
        _print_json({"source": doc.source, "encoding": doc.encoding, "sha256": doc.sha256, "text": doc.text,
                     "report": {"original_chars": doc.report.original_chars,
                                "cleaned_chars": doc.report.cleaned_chars,
                                "removed_chars": doc.report.removed_chars,
                                "by_reason": doc.report.chars_by_reason(),
                                "edits": [to_jsonable(e) for e in doc.report.edits]}})
        return 0
    say(doc.report.summary())
    if args.text:
        say()
        say(doc.text)
    if args.verbose:
        say()
        for e in doc.report.edits:
            if e.reason != "whitespace":
                say(f"  [{e.start}:{e.end}] {e.reason}: {e.removed!r}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rag", description="Extractive, cited answers from your documents.")
    sub = parser.add_subparsers(dest="command", required=True)

    def index_args(p: argparse.ArgumentParser) -> None:
        p.add_argument("--index", default="index", help="index folder or postgresql:// URL (default: index)")
        p.add_argument("--model", default=None, help="embedding model name or path (default: the index's)")
        p.add_argument("--json", action="store_true", help="print JSON")

    b = sub.add_parser("build", help="bring the index in line with files and folders (incremental)")
    b.add_argument("paths", nargs="*", help="files or folders (default: docs)")
    index_args(b)
    b.add_argument("--chunk-chars", type=int, default=None, help="target chunk size in characters")
    b.add_argument("--chunk-overlap", type=int, default=None, help="chunk overlap in characters")
    b.add_argument("--full", action="store_true", help="re-read and re-embed everything")
    b.add_argument("--precision", choices=PRECISIONS, default=None,
                   help="encoder arithmetic (default: $RAG_PRECISION, else the index's, else bf16 where the CPU "
                        "has bf16 units); another than the index's rebuilds it in full")
    b.set_defaults(func=_cmd_build)

    a = sub.add_parser("add", help="add files and folders to the index (changed ones are re-embedded)")
    a.add_argument("paths", nargs="+", help="files or folders")
    index_args(a)
    a.add_argument("--chunk-chars", type=int, default=None, help="target chunk size in characters")
    a.add_argument("--chunk-overlap", type=int, default=None, help="chunk overlap in characters")
    a.add_argument("--full", action="store_true", help="rebuild in full (needed to change model or chunking)")
    a.add_argument("--precision", choices=PRECISIONS, default=None,
                   help="encoder arithmetic (default: the index's; another needs --full)")
    a.set_defaults(func=_cmd_add)

    r = sub.add_parser("remove", help="remove documents from the index by source name, path or folder")
    r.add_argument("sources", nargs="+", help="source names as the index records them, paths, or folders")
    r.add_argument("--index", default="index", help="index folder or postgresql:// URL (default: index)")
    r.add_argument("--json", action="store_true", help="print JSON")
    r.set_defaults(func=_cmd_remove)

    st = sub.add_parser("status", help="what the index holds, and which files are new, changed or removed")
    st.add_argument("paths", nargs="*", help="files or folders to compare with the index")
    st.add_argument("--index", default="index", help="index folder or postgresql:// URL (default: index)")
    st.add_argument("--verify", action="store_true", help="check every index file against its checksum")
    st.add_argument("--json", action="store_true", help="print JSON")
    st.set_defaults(func=_cmd_status)

    for name, func, helptext in (("ask", _cmd_ask, "answer a question"), ("search", _cmd_search, "show the best passages")):
        p = sub.add_parser(name, help=helptext)
        p.add_argument("question")
        index_args(p)
        p.add_argument("-k", type=int, default=K_DEFAULT,
                       help=f"number of passages, {K_MIN} to {K_MAX} (default {K_DEFAULT})")
        p.add_argument("--mode", choices=MODES, default=None, help="retrieval mode (default: the index's)")
        p.add_argument("--read-url", default=None,
                       help="a read replica of a postgresql:// index to answer from (writes go to --index)")
        p.set_defaults(func=func)

    c = sub.add_parser("clean", help="show what cleaning removes from a file")
    c.add_argument("file")
    c.add_argument("--json", action="store_true", help="print JSON (text, report, every edit)")
    c.add_argument("--text", action="store_true", help="also print the cleaned text")
    c.add_argument("-v", "--verbose", action="store_true", help="list every removal")
    c.set_defaults(func=_cmd_clean)

    try:
        from rag.evaluation.cli import add_eval_parser
    except ImportError:
        pass
    else:
        add_eval_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except RagError as exc:
        say(f"error: {_one(exc)}", err=True)
        return 1
    except KeyboardInterrupt:
        say("interrupted", err=True)
        return 130
