"""Follow-up questions: is the last turn of each conversation answered right?

    python -m benchmarks.bench_conversation [FILE] [--index DIR] [--json OUT] [-k K]

FILE (default ``benchmarks/conversation_dev.jsonl``) holds one conversation a line: ``id``,
``turns`` (two or three questions, asked in order through ``qa.conversation()``), ``answers``
(what the last turn's answer must contain; ``[]`` when the documents do not say), optionally
``standalone: true`` (the last question needs no context) and ``kind``.

Builds one index over the seed article (``docs/``) and ``benchmarks/conversation_docs/`` (the
English museum note, DRCD and CMRC passages) in a temporary folder, unless ``--index`` names one
already built over them. The last turn is right when it is answered and its answer text or span
contains a gold answer (matching form: Simplified, case, width and punctuation folded), or, for
``answers: []``, when it is refused. Every last question marked standalone must get exactly the
answer ``qa.ask`` gives. For comparison, the last questions are also asked alone (``qa.ask``,
no context): the share a system without conversations gets.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path

import rag
from rag.normalize import fold
from rag.types import Answer

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = ROOT / "benchmarks" / "conversation_dev.jsonl"
DOCS = ROOT / "benchmarks" / "conversation_docs"


def matching(text: str) -> str:
    return "".join(ch for ch in fold(text) if ch.isalnum())


def right(answer: Answer, gold: list[str]) -> bool:
    """Answered with a gold answer in its text or span; or, with no gold answer, refused."""
    if not gold:
        return not answer.found
    if not answer.found:
        return False
    said = matching(answer.text) + " " + matching(answer.span or "")
    return any(matching(g) and matching(g) in said for g in gold)


def read_rows(path: Path) -> list[dict]:
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    for r in rows:
        if not (isinstance(r.get("turns"), list) and r["turns"] and isinstance(r.get("answers"), list)):
            raise ValueError(f"{path}: {r.get('id')}: needs 'turns' (questions) and 'answers' (a list)")
    return rows


def score(qa: rag.QA, rows: list[dict], k: int = 5, echo: bool = True) -> dict:
    results = []
    for r in rows:
        conv = qa.conversation()
        answers = [conv.ask(q, k=k) for q in r["turns"]]
        last = answers[-1]
        alone = qa.ask(r["turns"][-1], k=k)
        ok = right(last, r["answers"])
        row = {"id": r["id"], "kind": r.get("kind", ""), "turns": r["turns"], "understood": last.understood,
               "found": last.found, "span": last.span, "text": last.text[:120], "right": ok,
               "right_alone": right(alone, r["answers"]),
               "earlier": [{"question": a.question, "understood": a.understood, "found": a.found, "span": a.span,
                            "text": a.text[:80]} for a in answers[:-1]]}
        if r.get("standalone"):
            row["identical"] = last == alone
        results.append(row)
        if echo:
            mark = "ok " if ok else "NO "
            shown = f" (understood: {last.understood})" if last.understood else ""
            print(f"{mark} {r['id']} {' / '.join(r['turns'])}{shown} -> {last.span or last.text[:40]!r}",
                  flush=True)
    n = len(results)
    standalone = [x for x in results if "identical" in x]
    summary = {
        "conversations": n,
        "right": sum(x["right"] for x in results),
        "right_alone": sum(x["right_alone"] for x in results),
        "standalone": len(standalone),
        "standalone_identical": sum(x["identical"] for x in standalone),
        "unanswerable": sum(1 for r in rows if not r["answers"]),
        "unanswerable_refused": sum(x["right"] for x, r in zip(results, rows) if not r["answers"]),
        "results": results,
    }
    summary["share"] = round(summary["right"] / max(1, n), 3)
    summary["share_alone"] = round(summary["right_alone"] / max(1, n), 3)
    return summary


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("file", type=Path, nargs="?", default=DEFAULT)
    ap.add_argument("--index", type=Path, default=None, help="an index already built over docs/ and conversation_docs/")
    ap.add_argument("-k", type=int, default=5)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    rows = read_rows(args.file)
    with tempfile.TemporaryDirectory() as tmp:
        index = args.index
        if index is None:
            docs = Path(tmp) / "docs"
            shutil.copytree(ROOT / "docs", docs)
            shutil.copytree(DOCS, docs / "conversation_docs")
            index = Path(tmp) / "index"
            rag.build_index([docs], index_dir=index)
        summary = score(rag.load(index), rows, k=args.k)
    print(f"{summary['right']} of {summary['conversations']} last turns right ({summary['share']:.0%}); "
          f"asked alone, without the conversation: {summary['right_alone']} ({summary['share_alone']:.0%}); "
          f"standalone questions identical to qa.ask: {summary['standalone_identical']} of {summary['standalone']}; "
          f"unanswerable refused: {summary['unanswerable_refused']} of {summary['unanswerable']}")
    if args.json:
        args.json.write_text(json.dumps(summary, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
