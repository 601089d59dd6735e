"""Evaluation sets: SQuAD-format reading-comprehension files and JSON-lines question files.

* :func:`load_squad` reads SQuAD / CMRC 2018 / DRCD files. Every
  ``data[].paragraphs[].context`` becomes an :class:`EvalPassage` named
  ``<file stem>/<paragraph id>`` (or ``<file stem>/<article index>-<paragraph index>`` when the
  paragraph has no id; CMRC uses ids such as ``DEV_0``, DRCD ``1147-5``). Identical contexts
  collapse into one passage, and their questions share its source. A question's gold source is
  its passage; its gold answers are ``answers[].text`` (de-duplicated, order kept). SQuAD 2.0
  questions marked ``is_impossible`` get no answers. Questions with an empty text (two in
  CMRC 2018 trial) are left out and listed in :attr:`EvalSet.skipped`.
* :func:`load_jsonl` reads question files such as ``seed_qa_dev.jsonl``: one object a line with
  ``id``, ``question``, ``answers`` (empty: not answerable) and ``paragraphs`` (0-based indices of
  the document's non-empty paragraphs that hold the answer). Such a set has no passages: it is
  asked against an existing index. An optional ``source`` field names the gold document.
* :func:`load_eval_set` picks the loader from the extension and content.

Every problem is raised as :class:`rag.errors.DocumentError` naming the file (and line/entry).
"""

from __future__ import annotations

import json
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rag.errors import DocumentError

__all__ = [
    "EvalQuestion",
    "EvalPassage",
    "EvalSet",
    "load_squad",
    "load_jsonl",
    "load_eval_set",
]


@dataclass(frozen=True)
class EvalQuestion:
    """One question. Empty ``answers`` means the documents do not answer it.

    ``gold_sources`` are alternative passages (any one holds the answer);
    ``gold_paragraphs`` are paragraph indices inside a single document (JSON-lines sets).
    """

    id: str
    question: str
    answers: tuple[str, ...]
    gold_sources: tuple[str, ...] = ()
    gold_paragraphs: tuple[int, ...] = ()

    @property
    def answerable(self) -> bool:
        return bool(self.answers)


@dataclass(frozen=True)
class EvalPassage:
    """A passage of the corpus that a SQuAD-format set is evaluated over."""

    source: str
    text: str


@dataclass(frozen=True)
class EvalSet:
    """Questions, plus the passages to index when the set brings its own corpus."""

    name: str
    passages: tuple[EvalPassage, ...]
    questions: tuple[EvalQuestion, ...]
    skipped: tuple[str, ...] = ()  # "<id>: <reason>" of entries left out

    @property
    def has_corpus(self) -> bool:
        """True when the set brings passages to index (SQuAD format)."""
        return bool(self.passages)

    def only(self, ids: Collection[str]) -> EvalSet:
        """The same set with only the questions whose ids are in ``ids`` (all passages kept)."""
        wanted = set(ids)
        return EvalSet(self.name, self.passages, tuple(q for q in self.questions if q.id in wanted), self.skipped)

    def head(self, limit: int | None) -> EvalSet:
        """The same set with only the first ``limit`` questions (all passages kept)."""
        if limit is None:
            return self
        if limit < 0:
            raise ValueError(f"limit must be >= 0, got {limit}")
        return EvalSet(self.name, self.passages, self.questions[:limit], self.skipped)


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise DocumentError(str(path), "file not found") from None
    except IsADirectoryError:
        raise DocumentError(str(path), "is a directory, expected a file") from None
    except UnicodeDecodeError as e:
        raise DocumentError(str(path), f"not UTF-8 text ({e.reason} at byte {e.start})") from None
    except OSError as e:
        raise DocumentError(str(path), f"cannot read: {e.strerror or e}") from None


def _read_gzip(path: Path) -> str:
    import gzip
    import zlib

    try:
        with gzip.open(path, "rb") as fh:
            return fh.read().decode("utf-8-sig")
    except FileNotFoundError:
        raise DocumentError(str(path), "file not found") from None
    except (OSError, EOFError, zlib.error) as e:
        raise DocumentError(str(path), f"not a readable gzip file ({e})") from None
    except UnicodeDecodeError as e:
        raise DocumentError(str(path), f"not UTF-8 text inside the gzip ({e.reason} at byte {e.start})") from None


def _unique_texts(texts: list[str]) -> tuple[str, ...]:
    out: list[str] = []
    for t in texts:
        if t not in out:
            out.append(t)
    return tuple(out)


def _squad_answers(path: Path, where: str, qa: dict[str, Any]) -> tuple[str, ...]:
    if qa.get("is_impossible") is True:
        return ()
    raw = qa.get("answers", [])
    if not isinstance(raw, list):
        raise DocumentError(str(path), f"{where}: 'answers' must be a list")
    texts: list[str] = []
    for a in raw:
        text = a.get("text") if isinstance(a, dict) else a
        if not isinstance(text, str):
            raise DocumentError(str(path), f"{where}: every answer needs a 'text' string")
        if text.strip():
            texts.append(text.strip())
    return _unique_texts(texts)


def _parse_squad(path: Path, doc: Any) -> EvalSet:
    if not isinstance(doc, dict) or not isinstance(doc.get("data"), list):
        raise DocumentError(str(path), "not SQuAD format: expected an object with a 'data' list")
    stem = path.stem
    passages: list[EvalPassage] = []
    source_of_context: dict[str, str] = {}
    used_sources: set[str] = set()
    questions: list[EvalQuestion] = []
    skipped: list[str] = []
    seen_ids: set[str] = set()
    for ai, article in enumerate(doc["data"]):
        paragraphs = article.get("paragraphs") if isinstance(article, dict) else None
        if not isinstance(paragraphs, list):
            raise DocumentError(str(path), f"data[{ai}]: missing 'paragraphs' list")
        for pi, para in enumerate(paragraphs):
            where = f"data[{ai}].paragraphs[{pi}]"
            if not isinstance(para, dict) or not isinstance(para.get("context"), str):
                raise DocumentError(str(path), f"{where}: missing 'context' string")
            context: str = para["context"]
            if not context.strip():
                raise DocumentError(str(path), f"{where}: empty 'context'")
            source = source_of_context.get(context)
            if source is None:
                pid = para.get("id")
                base = f"{stem}/{pid}" if isinstance(pid, (str, int)) and str(pid) else (
                    f"{stem}/{ai}-{pi}"
                )
                source, n = base, 1
                while source in used_sources:
                    n += 1
                    source = f"{base}~{n}"
                used_sources.add(source)
                source_of_context[context] = source
                passages.append(EvalPassage(source, context))
            qas = para.get("qas", [])
            if not isinstance(qas, list):
                raise DocumentError(str(path), f"{where}: 'qas' must be a list")
            for qi, qa in enumerate(qas):
                qwhere = f"{where}.qas[{qi}]"
                if not isinstance(qa, dict) or not isinstance(qa.get("question"), str):
                    raise DocumentError(str(path), f"{qwhere}: missing 'question' string")
                qid = qa.get("id")
                qid = str(qid) if isinstance(qid, (str, int)) and str(qid) else f"{source}#{qi}"
                if qid in seen_ids:
                    raise DocumentError(str(path), f"{qwhere}: duplicate question id {qid!r}")
                seen_ids.add(qid)
                question = qa["question"].strip()
                if not question:  # real data has these (CMRC 2018 trial): skip, and say so
                    skipped.append(f"{qid}: empty question")
                    continue
                questions.append(
                    EvalQuestion(
                        id=qid,
                        question=question,
                        answers=_squad_answers(path, qwhere, qa),
                        gold_sources=(source,),
                    )
                )
    if not passages:
        raise DocumentError(str(path), "no passages in 'data'")
    return EvalSet(
        name=stem, passages=tuple(passages), questions=tuple(questions), skipped=tuple(skipped)
    )


def _load_json(path: Path, text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise DocumentError(str(path), f"invalid JSON at line {e.lineno}: {e.msg}") from None


def load_squad(path: str | Path) -> EvalSet:
    """Read a SQuAD-format file (SQuAD 1/2, CMRC 2018, DRCD)."""
    p = Path(path)
    return _parse_squad(p, _load_json(p, _read_text(p)))


def _jsonl_question(path: Path, lineno: int, row: Any) -> EvalQuestion:
    where = f"line {lineno}"
    if not isinstance(row, dict):
        raise DocumentError(str(path), f"{where}: expected a JSON object")
    qid = row.get("id", f"{path.stem}-{lineno}")
    if not isinstance(qid, (str, int)) or isinstance(qid, bool):
        raise DocumentError(str(path), f"{where}: 'id' must be a string")
    question = row.get("question")
    if not isinstance(question, str) or not question.strip():
        raise DocumentError(str(path), f"{where}: 'question' must be a non-empty string")
    answers = row.get("answers", [])
    if not isinstance(answers, list) or not all(isinstance(a, str) for a in answers):
        raise DocumentError(str(path), f"{where}: 'answers' must be a list of strings")
    paragraphs = row.get("paragraphs", [])
    if not isinstance(paragraphs, list) or not all(
        isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in paragraphs
    ):
        raise DocumentError(
            str(path), f"{where}: 'paragraphs' must be a list of non-negative integers"
        )
    source = row.get("source")
    if source is not None and (not isinstance(source, str) or not source):
        raise DocumentError(str(path), f"{where}: 'source' must be a non-empty string")
    return EvalQuestion(
        id=str(qid),
        question=question.strip(),
        answers=_unique_texts([a.strip() for a in answers if a.strip()]),
        gold_sources=(source,) if source else (),
        gold_paragraphs=tuple(dict.fromkeys(paragraphs)),
    )


def _parse_jsonl(path: Path, text: str) -> EvalSet:
    questions: list[EvalQuestion] = []
    seen: set[str] = set()
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise DocumentError(str(path), f"line {lineno}: invalid JSON: {e.msg}") from None
        q = _jsonl_question(path, lineno, row)
        if q.id in seen:
            raise DocumentError(str(path), f"line {lineno}: duplicate question id {q.id!r}")
        seen.add(q.id)
        questions.append(q)
    if not questions:
        raise DocumentError(str(path), "no questions")
    return EvalSet(name=path.stem, passages=(), questions=tuple(questions))


def load_jsonl(path: str | Path) -> EvalSet:
    """Read a JSON-lines question file (no passages; ask it against an existing index)."""
    p = Path(path)
    return _parse_jsonl(p, _read_text(p))


def load_eval_set(path: str | Path) -> EvalSet:
    """Load ``path`` as SQuAD JSON (``.json``, or ``.json.gz``) or JSON lines (``.jsonl``/``.ndjson``).

    Other extensions are recognised by content: a JSON object with a ``data`` list is SQuAD,
    anything else is tried as JSON lines.
    """
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix == ".gz":  # SQuAD 1.1 train ships gzipped: the inner name says what it is
        text = _read_gzip(p)
        p = p.with_suffix("")
        suffix = p.suffix.lower()
    else:
        text = _read_text(p)
    if suffix in (".jsonl", ".ndjson"):
        return _parse_jsonl(p, text)
    if suffix == ".json":
        return _parse_squad(p, _load_json(p, text))
    try:
        doc = json.loads(text)
    except json.JSONDecodeError:
        return _parse_jsonl(p, text)
    if isinstance(doc, dict) and "data" in doc:
        return _parse_squad(p, doc)
    return _parse_jsonl(p, text)
