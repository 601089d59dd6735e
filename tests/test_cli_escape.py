"""What the CLI prints cannot drive the terminal: control characters in file names, sources,
question ids and error messages are shown escaped (text and JSON output alike)."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from rag.cli import main

# C0 but newline, DEL, C1, bidi embeddings/overrides/isolates, line/paragraph separators,
# lone surrogates: none of them may reach the terminal raw.
UNSAFE = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029\ud800-\udfff]")

EVIL = "evil\x1b[31mred\x1b]0;pwned\x07"
C1 = "c1\x9b31m\x85x\x7f"
BIDI = "bidi\u202etxt.exe\u2066"
NEWLINE = "two\nerror: fake"
NAMES = [f"{EVIL}.txt", f"{C1}.txt", f"{BIDI}.txt", f"{NEWLINE}.txt"]


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


PROGRESS = re.compile(r" *[a-z0-9]+: \d+/\d+ \(\d+%\)[\r\n]")  # the CLI's own carriage returns


def _assert_safe(*texts: str) -> None:
    for text in texts:
        bad = UNSAFE.findall(PROGRESS.sub("", text))
        assert not bad, (bad, text)


def test_escape_helper() -> None:
    from rag.terminal import escape

    assert escape("plain 文本 text") == "plain 文本 text"
    assert escape("a\x1b[31mb") == "a\\x1b[31mb"
    assert escape("\x9b\x7f\x00\t") == "\\x9b\\x7f\\x00\\t"
    assert escape("x\u202ey\u2066") == "x\\u202ey\\u2066"
    assert escape("lone\ud800") == "lone\\ud800"
    assert escape("a\nb") == "a\\nb"
    assert escape("a\nb\tc\x1b", keep_newlines=True) == "a\nb\tc\\x1b"
    assert escape("a\r\nb", keep_newlines=True) == "a\\r\nb"
    _assert_safe(escape("".join(chr(i) for i in range(0x100)) + "\u202a\u202b\u202c\u202d\u202e\u2028\u2029"))


def test_escape_json_stays_equivalent_json() -> None:
    from rag.terminal import escape_json

    data = {"name": EVIL + C1 + BIDI + "\ud800" + NEWLINE, "n": 1}
    text = escape_json(json.dumps(data, ensure_ascii=False, indent=2))
    _assert_safe(text)
    assert json.loads(text) == data
    assert "文本" in escape_json(json.dumps("文本", ensure_ascii=False))  # readable text stays readable


@pytest.fixture()
def evil_docs(tmp_path: Path, seed_path: Path) -> Path:
    docs = tmp_path / "docs"
    docs.mkdir()
    shutil.copy(seed_path, docs / seed_path.name)
    for i, name in enumerate(NAMES):
        (docs / name).write_text(f"The museum number {i} was founded in 18{i}7 by Anna Berg.\n", encoding="utf-8")
    (docs / f"empty{EVIL}.txt").write_text("", encoding="utf-8")  # skipped, with its name
    shutil.copy(docs / NAMES[0], docs / f"copy{C1}.txt")  # a duplicate, with both names
    return docs


def test_text_output_escapes_file_names(capsys: pytest.CaptureFixture[str], evil_docs: Path, tmp_path: Path) -> None:
    index = tmp_path / f"index{EVIL}"
    code, out, err = run(capsys, "status", str(evil_docs), "--index", str(index))
    assert code == 1
    _assert_safe(out, err)
    assert "\\x1b[31m" in out and "file(s) to index" in out

    code, out, err = run(capsys, "build", str(evil_docs), "--index", str(index), "--model", "test-hash")
    assert code == 0, err
    _assert_safe(out, err)
    assert "skipped" in err and "duplicate:" in err and "\\x9b" in err and "\\x1b" in out
    assert not any(line.startswith("error: fake") for line in (out + err).splitlines())

    code, out, err = run(capsys, "status", str(evil_docs), "--index", str(index))
    assert code == 0
    _assert_safe(out, err)
    assert "\\x1b" in out and "duplicate:" in out

    for cmd in ("ask", "search"):
        code, out, err = run(capsys, cmd, "Who founded museum number 2?", "--index", str(index), "-k", "10")
        assert code == 0, err
        _assert_safe(out, err)
        assert "\\u202e" in out

    code, out, err = run(capsys, "remove", f"nope{EVIL}", f"{evil_docs}/{NAMES[1]}", "--index", str(index))
    assert code == 0, err
    _assert_safe(out, err)
    assert "not removed:" in err and "\\x1b" in err and "removed 1 document(s)" in out

    code, out, err = run(capsys, "clean", str(evil_docs / NAMES[2]), "--text", "-v")
    assert code == 0
    _assert_safe(out, err)


@pytest.mark.parametrize(
    "argv",
    [
        ["remove", f"nope{EVIL}", "--index", "{index}"],
        ["ask", "q", "--index", "{tmp}/missing" + EVIL],
        ["clean", "{tmp}/" + C1 + BIDI + NEWLINE + ".txt"],
        ["build", "{tmp}/nothing" + EVIL, "--index", "{tmp}/i", "--model", "test-hash"],
        ["eval", "{tmp}/no-such" + EVIL + ".jsonl"],
    ],
)
def test_error_lines_are_escaped_and_one_line(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                              hash_index: Path, argv: list[str]) -> None:
    argv = [a.format(tmp=tmp_path, index=hash_index) for a in argv]
    code, out, err = run(capsys, *argv)
    assert code == 1
    _assert_safe(out, err)
    last = err.strip().splitlines()[-1]
    assert last.startswith("error: ") and "\\x" in last
    assert [line for line in err.splitlines() if line.startswith("error: ")] == [last]


def test_json_output_escapes_c1_del_and_bidi(capsys: pytest.CaptureFixture[str], evil_docs: Path,
                                            tmp_path: Path) -> None:
    index = tmp_path / "index"
    code, out, err = run(capsys, "build", str(evil_docs), "--index", str(index), "--model", "test-hash", "--json")
    assert code == 0, err
    _assert_safe(out, err)
    data = json.loads(out)
    assert any(e["path"].endswith(f"empty{EVIL}.txt") for e in data["errors"])  # the real name, round-tripped
    assert any(C1 in a for a in data["added"]) and any(BIDI in a for a in data["added"])

    for cmd in ("search", "ask"):
        code, out, err = run(capsys, cmd, "Who founded museum number 1?", "--index", str(index), "-k", "10", "--json")
        assert code == 0, err
        _assert_safe(out, err)
        json.loads(out)

    code, out, err = run(capsys, "status", "--index", str(index), "--json")
    _assert_safe(out, err)
    (dup,) = json.loads(out)["duplicates"]
    assert {dup["source"].rsplit("/", 1)[-1], dup["same_as"].rsplit("/", 1)[-1]} == {NAMES[0], f"copy{C1}.txt"}

    code, out, err = run(capsys, "clean", str(evil_docs / NAMES[1]), "--json")
    assert code == 0
    _assert_safe(out, err)
    assert json.loads(out)["source"].endswith(NAMES[1])


def test_eval_output_is_escaped(capsys: pytest.CaptureFixture[str], tmp_path: Path, hash_index: Path) -> None:
    data = tmp_path / "q.jsonl"
    rows = [
        {"id": f"q{EVIL}{C1}", "question": "前三季度规模以上工业增加值同比增长多少？", "answers": ["5.8%"]},
        {"id": f"long{BIDI}", "question": "问" * 2500, "answers": []},  # refused as input, named in the table
    ]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    code, out, err = run(capsys, "eval", str(data), "--index", str(hash_index))
    assert code == 0, err
    _assert_safe(out, err)
    assert "rejected" in out and "\\u202e" in out
    code, out, err = run(capsys, "eval", str(data), "--index", str(hash_index), "--json", "--per-question")
    assert code == 0, err
    _assert_safe(out, err)
    result = json.loads(out)
    (hybrid,) = result["modes"].values()
    assert {q["id"] for q in hybrid["per_question"]} == {f"q{EVIL}{C1}"}
    assert hybrid["refused_questions"][0].startswith(f"long{BIDI}: ")


def test_standalone_eval_entry_escapes_errors(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    from rag.evaluation.cli import main as eval_main

    code = eval_main([str(tmp_path / f"no-such{EVIL}{C1}.jsonl")])
    out, err = capsys.readouterr()
    assert code == 1
    _assert_safe(out, err)
    assert err.startswith("error: ") and len(err.splitlines()) == 1
