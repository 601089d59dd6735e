"""Markdown syntax is cleaned like HTML markup (rag/ingest/clean.py, ``markdown=True``): removed by
rule, every removal in the cleaning report, offsets exact; old indexes are rebuilt."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import rag
from rag.errors import IndexIncompatibleError
from rag.index.store import current_version
from rag.ingest.clean import MARKDOWN, clean_text, is_markdown, markdown_syntax, restore_original

NOTE = """# Library hours #

The **city library** opens at *9 am* and closes at _6 pm_. See [the site](http://x.org "t") or ![a map](m.png).

- Sundays: closed
* Holidays: `closed` too
+ [x] checked
1. first step

> quoted line
---
snake_case_name stays, 2*3*4 stays, a_b_c stays.
[ref]: http://example.com
Setext title
============
"""


def test_markdown_syntax_removed_content_kept() -> None:
    doc = clean_text(NOTE, "note.md", markdown=True)
    text = doc.text
    for gone in ("#", "**", "*9", "_6", "](", "![", "- Sundays", "* Holidays", "`", "> quoted", "---", "[ref]",
                 "[x]", "==="):
        assert gone not in text, gone
    for kept in ("Library hours", "The city library opens at 9 am and closes at 6 pm.", "See the site or a map.",
                 "Sundays: closed", "Holidays: closed too", "checked", "1. first step", "quoted line",
                 "snake_case_name stays, 2*3*4 stays, a_b_c stays.", "Setext title"):
        assert kept in text, kept
    assert doc.report.counts()[MARKDOWN] >= 15
    assert restore_original(doc.text, doc.report.edits) == NOTE
    assert all(e.replacement == "" for e in doc.report.edits if e.reason == MARKDOWN)


def test_plain_text_keeps_its_stars_and_hashes() -> None:
    text = "Item #3 costs 5*2 dollars.\n\n# not a heading in plain text\n"
    assert clean_text(text, "a.txt").text == text.strip()
    assert is_markdown("notes.MD") and is_markdown("a.markdown") and not is_markdown("a.txt")


def test_chinese_markdown() -> None:
    md = "## 工业增长\n\n前三季度**规模以上**工业增加值同比增长[5.8%](https://example.cn)。\n\n- 装备制造业增长较快\n"
    doc = clean_text(md, "zh.md", markdown=True)
    assert doc.text == "工业增长\n\n前三季度规模以上工业增加值同比增长5.8%。\n\n装备制造业增长较快"
    assert restore_original(doc.text, doc.report.edits) == md


_MD_PIECES = st.sampled_from(["# ", "## ", "**", "*", "_", "__", "`", "[", "](u)", "![", "> ", "- ", "* ", "\n",
                              "---\n", "```\n", "~~", "text", "词语", " ", "1. ", "<http://a.b>", "#"])


@settings(max_examples=200, deadline=None)
@given(st.lists(_MD_PIECES, max_size=30).map("".join))
def test_markdown_cleaning_is_reversible(md: str) -> None:
    doc = clean_text(md, "x.md", markdown=True)
    assert restore_original(doc.text, doc.report.edits) == md
    spans = markdown_syntax(md)
    assert all(0 <= a < b <= len(md) for a, b in spans)


def test_markdown_file_indexed_clean_with_exact_citations(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "note.md").write_text(NOTE, encoding="utf-8")
    rag.build_index([docs], index_dir=tmp_path / "index", model="test-hash")
    qa = rag.load(tmp_path / "index")
    (source,) = qa.sources()
    assert "**" not in qa.document(source).text and "](" not in qa.document(source).text
    ans = qa.ask("When does the city library open?", k=3)
    assert ans.found and "**" not in ans.text
    for c in ans.citations:
        assert qa.document(c.source).text[c.start:c.end] == c.quote


def test_index_of_the_old_format_is_rebuilt(tmp_path: Path) -> None:
    from rag.index.manifest import manifest_digest as _digest

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "note.md").write_text(NOTE, encoding="utf-8")
    index = tmp_path / "index"
    rag.build_index([docs], index_dir=index, model="test-hash")
    mpath = current_version(index) / "manifest.json"
    data = json.loads(mpath.read_text(encoding="utf-8"))
    data["format_version"] = 1  # built before Markdown was cleaned
    data["digest"] = _digest(data)
    mpath.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(IndexIncompatibleError, match="format 1.*rebuild needed"):
        rag.load(index)
    report = rag.IndexWriter(index, model="test-hash").sync([docs])
    assert report.full and any("cannot be used" in w for w in report.warnings)
    assert "**" not in rag.load(index).document(rag.load(index).sources()[0]).text
