"""The small corpus the crash-safety tests write and rewrite (folder and PostgreSQL stores alike):
``BASE`` before a change, ``NEW`` after it (a file removed, one changed, one added)."""

from __future__ import annotations

import shutil
from pathlib import Path

BASE = {
    "article.txt": "前三季度，全国规模以上工业增加值同比增长5.8%。工业投资连续八个月保持两位数增长。高技术制造业增长较快。",
    "bridge.txt": "The old bridge was built in 1890 by engineers from the city. It is 300 metres long.",
    "library.md": "The city library opens at 9 am and closes at 6 pm on weekdays. It was founded in 1921.",
    "weather.txt": "今年夏天雨水偏多，气温比常年偏高一度左右。",
}
NEW = {k: v for k, v in BASE.items() if k != "library.md"}
NEW["bridge.txt"] = "The old bridge was rebuilt in 1990 after the flood. It is 320 metres long now."
NEW["museum.txt"] = "The museum opens at 10 am on Sundays and the library opens at 8 am on Saturdays."
NEW["article.txt"] = BASE["article.txt"] + "高技术制造业增加值同比增长8.9%。"


def fill(folder: Path, docs: dict[str, str]) -> Path:
    """``folder`` made to hold exactly ``docs`` (name -> text)."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    for name, text in docs.items():
        (folder / name).write_text(text, encoding="utf-8")
    return folder
