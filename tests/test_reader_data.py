"""The reader's training data: SQuAD-format files, deduplication, the split by article, the
made "no answer" examples (fast: no model)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

from training import reader_data as rd


def _file(path: Path, articles: list[tuple[str, list[tuple[str, list[tuple[str, str | None]]]]]], *,
          gz: bool = False, occurrences: bool = False) -> Path:
    data = []
    n = 0
    for title, paragraphs in articles:
        paras = []
        for ctx, qas in paragraphs:
            rows = []
            for q, a in qas:
                n += 1
                row: dict = {"id": f"{path.stem}-{n}", "question": q}
                if a is None:
                    row.update(answers=[], is_impossible=True)
                else:
                    row["answers"] = [{"text": a, "answer_start": ctx.index(a)}]
                    if occurrences:
                        row["answer_occurrences"] = ctx.count(a)
                rows.append(row)
            paras.append({"context": ctx, "qas": rows})
        data.append({"title": title, "paragraphs": paras})
    text = json.dumps({"data": data}, ensure_ascii=False)
    if gz:
        with gzip.open(path, "wt", encoding="utf-8") as fh:
            fh.write(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def test_squad_files_share_articles_and_questions_are_deduplicated(tmp_path: Path) -> None:
    v1 = _file(tmp_path / "squad_v1.1_train.json.gz", [
        ("Spectre_(2015_film)", [("Spectre was released in 2015. It stars Craig.", [("When was Spectre released?", "2015")])]),
        ("Bridges", [("The bridge is 310 metres long; 310 is a lot.", [("How long is the bridge?", "310")])]),
    ], gz=True, occurrences=True)
    v2 = _file(tmp_path / "squad_v2.0_train_first10.json", [
        ("Spectre_(2015_film)", [("Spectre was released in 2015. It stars Craig.",
                                  [("When was  Spectre released?", "2015"), ("Who directed Skyfall 2?", None)])]),
    ])
    examples = rd.load_all([v2, v1])  # 1.1 is read first whatever the order given
    questions = [e.question for e in examples]
    assert questions.count("When was Spectre released?") == 1 and "When was  Spectre released?" not in questions
    impossible = [e for e in examples if not e.answers]
    assert [e.question for e in impossible] == ["Who directed Skyfall 2?"]
    assert {e.article for e in examples} == {"squad:Spectre_(2015_film)", "squad:Bridges"}
    assert all(e.language == "en" for e in examples)
    bridge = next(e for e in examples if e.article == "squad:Bridges")
    assert bridge.unique is False  # its answer text occurs twice: its offset is not sure


def test_wrong_offsets_are_refound_or_dropped(tmp_path: Path) -> None:
    path = tmp_path / "cmrc2018_train.json"
    path.write_text(json.dumps({"data": [{"id": "A", "paragraphs": [{"context": "北京是首都。上海是港口。", "qas": [
        {"id": "1", "question": "首都是哪里？", "answers": [{"text": "北京", "answer_start": 3}]},
        {"id": "2", "question": "哪里是港口？", "answers": [{"text": "广州", "answer_start": 0}]},
    ]}]}]}, ensure_ascii=False), encoding="utf-8")
    examples = rd.load_examples(path)
    assert [(e.qid, e.answers) for e in examples] == [("1", (("北京", 0),))]
    assert examples[0].language == "zh" and examples[0].dataset == "cmrc2018_train"


def _examples(n_articles: int, dataset: str = "cmrc2018_train") -> list[rd.Example]:
    return [rd.Example(f"{dataset}-{a}-{p}", dataset, "zh", f"{dataset}:{a}", p, f"第{a}篇第{p}段：答案{a}{p}。",
                       f"问题{a}{p}", ((f"答案{a}{p}", 5),)) for a in range(n_articles) for p in range(2)]


def test_split_is_by_article_seeded_and_holds_the_unanswerable_articles() -> None:
    examples = _examples(50) + _examples(20, "DRCD_dev") + [
        rd.Example("tp", "squad_v2.0_train_first10", "en", rd.UNANSWERABLE_TRAIN, 0, "c", "q", ()),
        rd.Example("sp0", "squad_v2.0_train_first10", "en", rd.UNANSWERABLE_HELD, 0, "c", "q", ()),
        rd.Example("sp1", "squad_v2.0_train_first10", "en", rd.UNANSWERABLE_HELD, 1, "c", "q", ()),
    ]
    a = rd.split_articles(examples, 0.1, 0.2, seed=7)
    assert a == rd.split_articles(list(reversed(examples)), 0.1, 0.2, seed=7)
    assert a != rd.split_articles(examples, 0.1, 0.2, seed=8)
    cmrc = [v for k, v in a.items() if k.startswith("cmrc2018_train:")]
    assert cmrc.count("validate") == 10 and cmrc.count("calibrate") == 5 and cmrc.count("train") == 35
    assert a[rd.UNANSWERABLE_TRAIN] == "train"
    held = {e.qid: rd.split_of(e, a) for e in examples if e.article == rd.UNANSWERABLE_HELD}
    assert held == {"sp0": "calibrate", "sp1": "validate"}
    # both paragraphs of an article are on the same side
    for e in examples:
        if e.article != rd.UNANSWERABLE_HELD:
            assert rd.split_of(e, a) == a[e.article]


def test_off_passage_negatives_lack_every_answer() -> None:
    train = _examples(10)
    made = rd.off_passage_negatives(train, 1.0, seed=3)
    assert made and len(made) == len(train)
    for m in made:
        original = next(e for e in train if e.qid + "~off" == m.qid)
        assert m.answers == () and m.article == original.article and m.paragraph != original.paragraph
        assert all(t not in m.context for t, _ in original.answers)
    assert rd.off_passage_negatives(train, 0.0, seed=3) == []
