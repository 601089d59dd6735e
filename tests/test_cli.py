import json
from pathlib import Path

import pytest

from rag.cli import main


def run(capsys, *argv):
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_ask_json(capsys, hash_index: Path):
    code, out, err = run(capsys, "ask", "前三季度规模以上工业增加值同比增长多少？", "--index", str(hash_index), "--json")
    assert code == 0
    data = json.loads(out)
    assert data["found"] and data["span"] == "5.8%"
    c = data["citations"][0]
    assert set(c) == {"n", "source", "chunk_id", "start", "end", "quote"}


def test_ask_text(capsys, hash_index: Path):
    code, out, _ = run(capsys, "ask", "前三季度规模以上工业增加值同比增长多少？", "--index", str(hash_index))
    assert code == 0 and "Answer: 5.8%" in out and "[1]" in out


def test_search_json(capsys, hash_index: Path):
    code, out, _ = run(capsys, "search", "科技服务业", "--index", str(hash_index), "-k", "2", "--json")
    hits = json.loads(out)
    assert code == 0 and len(hits) == 2 and {"chunk_id", "source", "text", "start", "end", "score"} <= set(hits[0])


def test_clean(capsys, seed_path: Path):
    code, out, _ = run(capsys, "clean", str(seed_path))
    assert code == 0 and "pinyin reading" in out and "keyword stuffing" in out


def test_build(capsys, tmp_path: Path, seed_path: Path):
    code, out, err = run(capsys, "build", str(seed_path), "--index", str(tmp_path / "i"), "--model", "test-hash")
    assert code == 0 and "1 document(s)" in out


@pytest.mark.parametrize(
    "argv,message",
    [
        (["ask", "q", "--index", "{tmp}/missing"], "no index"),
        (["search", "   ", "--index", "{index}"], "empty"),
        (["ask", "q", "--index", "{index}", "-k", "0"], "k must be"),
        (["ask", "q", "--index", "{index}", "--model", "all-MiniLM-L6-v2"], "rebuild needed"),
        (["clean", "{tmp}/nope.txt"], "nope.txt"),
        (["build", "{tmp}/nothing-here", "--index", "{tmp}/i", "--model", "test-hash"], "nothing to index"),
    ],
)
def test_errors_are_one_line_exit_1(capsys, tmp_path: Path, hash_index: Path, argv, message):
    argv = [a.format(tmp=tmp_path, index=hash_index) for a in argv]
    code, out, err = run(capsys, *argv)
    assert code == 1
    last = err.strip().splitlines()[-1]
    assert last.startswith("error: ") and message in last
    assert err.count("error: ") == 1 and "Traceback" not in err
