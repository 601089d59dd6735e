"""Query latency on an index with the model loaded: median and p95 of search and ask.

    python -m benchmarks.bench_query [--index DIR] [--docs docs] [--questions FILE.jsonl] [--repeat 3]

Builds the index from --docs first when --index does not hold one. Questions come from a JSON
lines file with a "question" field (e.g. benchmarks/seed_bilingual.jsonl: 17 Chinese and 18
English questions about the seed article); without one, a built-in set of questions about the
seed article (Simplified, Traditional, English) is used. Latencies are reported over all
questions and per language (Chinese: a Han character in the question).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import rag
from rag.errors import IndexNotFoundError

DEFAULT_QUESTIONS = [
    "前三季度规模以上工业增加值同比增长多少？",
    "工业投资连续几个月保持两位数增长？",
    "國家技術轉移區域中心有幾個？",
    "关兵是哪个研究所的所长？",
    "今年以来平台助企融资新增多少？",
    "How much did the total value of technology contracts reach in the first three quarters?",
    "今年全国GDP同比增长多少？",
    "灵璧县属于哪个省？",
]


def language(question: str) -> str:
    """"zh" when the question has a Han character, else "en"."""
    return "zh" if any("\u3400" <= ch <= "\u9fff" for ch in question) else "en"


def percentile(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(round(q * (len(s) - 1))))]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--index", default="index")
    ap.add_argument("--docs", default="docs")
    ap.add_argument("--model", default=None)
    ap.add_argument("--questions", default=None)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--json", default=None, help="write the result here")
    args = ap.parse_args()

    questions = DEFAULT_QUESTIONS
    if args.questions:
        questions = [json.loads(line)["question"] for line in open(args.questions, encoding="utf-8") if line.strip()]
    try:
        qa = rag.load(args.index)
    except IndexNotFoundError:
        rag.build_index([args.docs], index_dir=args.index, model=args.model)
        qa = rag.load(args.index)
    for q in questions:  # warm-up: first calls load jieba's dictionaries and tagger
        qa.ask(q)
    search_ms: dict[str, list[float]] = {}
    ask_ms: dict[str, list[float]] = {}
    for _ in range(args.repeat):
        for q in questions:
            lang = language(q)
            t = time.perf_counter()
            qa.search(q, k=5)
            search_ms.setdefault(lang, []).append((time.perf_counter() - t) * 1000)
            t = time.perf_counter()
            qa.ask(q, k=5)
            ask_ms.setdefault(lang, []).append((time.perf_counter() - t) * 1000)

    def stats(by_lang: dict[str, list[float]]) -> dict[str, dict[str, float]]:
        every = [v for vs in by_lang.values() for v in vs]
        out = {"all": {"median": round(statistics.median(every), 1), "p95": round(percentile(every, 0.95), 1)}}
        for lang, vs in sorted(by_lang.items()):
            out[lang] = {"median": round(statistics.median(vs), 1), "p95": round(percentile(vs, 0.95), 1),
                         "questions": len(vs) // args.repeat}
        return out

    result = {
        "index": str(qa.version_path),
        "model": qa.manifest.model,
        "precision": qa.manifest.precision,
        "reader_precision": qa.span.reader.precision if qa.span is not None else None,
        "chunks": qa.chunk_count,
        "questions": len(questions),
        "repeat": args.repeat,
        "search_ms": stats(search_ms),
        "ask_ms": stats(ask_ms),
    }
    print(json.dumps(result, ensure_ascii=False, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(result, ensure_ascii=False, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
