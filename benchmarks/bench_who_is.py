"""Who-is questions: does the short answer name the person's role, not the person?

    python -m benchmarks.bench_who_is [--questions benchmarks/who_is.jsonl] [--json OUT]

Builds one index over the seed article (``docs/``) and the English fixtures
(``tests/fixtures/english/``) in a temporary folder, asks every question of the file (written
blind from the documents: ``id``, ``question``, ``person``, ``roles``, ``source``) and counts a
question right when the answer's span holds one of the roles (matching form: Simplified, case
and width folded) and is not just the name. The span is what a user reads first; an answer
without a span, or a refusal, is wrong.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path

import rag
from rag.normalize import fold

ROOT = Path(__file__).resolve().parents[1]


def matching(text: str) -> str:
    return "".join(ch for ch in fold(text) if ch.isalnum())


def names_the_role(span: str | None, person: str, roles: list[str]) -> bool:
    if not span:
        return False
    s = matching(span)
    if not s or s in matching(person):
        return False
    return any(matching(r) and matching(r) in s for r in roles)


def read_rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def build(folder: Path) -> Path:
    """The index these questions are asked of, built in ``folder``: the seed article
    (``docs/``) and the English fixtures. Returns the index folder."""
    docs = folder / "docs"
    shutil.copytree(ROOT / "docs", docs)
    shutil.copytree(ROOT / "tests" / "fixtures" / "english", docs / "english")
    rag.build_index([docs], index_dir=folder / "index")
    return folder / "index"


def score(qa: rag.QA, rows: list[dict], echo: bool = True) -> dict:
    """Ask every question; a question is right when its span names the person's role."""
    results = []
    for r in rows:
        ans = qa.ask(r["question"], k=5)
        ok = ans.found and names_the_role(ans.span, r["person"], r["roles"])
        results.append({"id": r["id"], "question": r["question"], "found": ans.found, "span": ans.span,
                        "right": ok})
        if echo:
            print(f"{'ok ' if ok else 'NO '} {r['id']} {r['question']} -> {ans.span!r}", flush=True)
    right = sum(x["right"] for x in results)
    return {"questions": len(results), "right": right, "share": round(right / max(1, len(results)), 3),
            "results": results}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--questions", type=Path, default=ROOT / "benchmarks" / "who_is.jsonl")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    rows = read_rows(args.questions)
    with tempfile.TemporaryDirectory() as tmp:
        summary = score(rag.load(build(Path(tmp))), rows)
    print(f"{summary['right']} of {summary['questions']} spans name the role ({summary['share']:.0%})")
    if args.json:
        args.json.write_text(json.dumps(summary, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
