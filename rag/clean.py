"""Cleaning by general rules: pinyin readings, boilerplate widgets, navigation debris,
keyword-stuffing runs, whitespace.

The cleaner decides, for every character of the original text, whether it is kept,
dropped or replaced (a tab by a space, say), and records every change as an
:class:`~rag.types.Edit` with its reason. The original can always be rebuilt from the
cleaned text and the edits; nothing disappears without being reported.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from itertools import product

from .normalize import fold
from .types import CleaningReport, Document, Edit

PINYIN = "pinyin reading"
BOILERPLATE = "share widget or boilerplate"
NAVIGATION = "navigation debris"
STUFFING = "keyword stuffing"
WHITESPACE = "whitespace"
CONTROL = "control character"

_TONED = "āáǎàēéěèīíǐìōóǒòūúǔùǖǘǚǜńňǹḿ"
_TONE_BASE = str.maketrans(
    {**{c: b for b, cs in {"a": "āáǎà", "e": "ēéěè", "i": "īíǐì", "o": "ōóǒò", "u": "ūúǔù",
                            "ü": "ǖǘǚǜ", "n": "ńňǹ", "m": "ḿ"}.items() for c in cs}}
)
_INITIALS = ("", "b", "p", "m", "f", "d", "t", "n", "l", "g", "k", "h", "j", "q", "x",
             "zh", "ch", "sh", "r", "z", "c", "s", "y", "w")
_FINALS = ("a", "o", "e", "i", "u", "ü", "v", "ai", "ei", "ao", "ou", "an", "en", "ang", "eng",
           "ong", "er", "ia", "ie", "iao", "iu", "ian", "in", "iang", "ing", "iong", "ua", "uo",
           "uai", "ui", "uan", "un", "uang", "ue", "üe", "ve", "io")
_SYLLABLES = frozenset(i + f for i, f in product(_INITIALS, _FINALS)) | {"n", "ng", "m", "hm", "hng"}

_HAN = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
# A bracketed reading right after one or more Han characters, ASCII or full-width brackets.
_READING_RE = re.compile(
    rf"(?<=[{_HAN}])[(（]\s*([a-zA-Z{_TONED}üÜ]{{1,7}}[1-5]?(?:[ '’][a-zA-Z{_TONED}üÜ]{{1,7}}[1-5]?){{0,7}})\s*[)）]"
)

_SENTENCE_END = re.compile(r"[。！？!?；;]|[.](?:\s|$)")
_STUFF_SPLIT = re.compile(r"[|｜、,，/／\s]+")
_NAV_SPLIT = re.compile(r"\s*(?:[>»›|｜/／·•]|-{1,2}>)\s*")

# Vocabulary of share widgets and page furniture, in matching form (simplified, lower case).
_BOILERPLATE_TERMS = tuple(sorted({
    "扫一扫", "扫描二维码", "二维码", "微信", "联系", "分享到", "分享", "收藏", "打印", "关闭窗口", "关闭",
    "返回顶部", "返回", "顶部", "上一篇", "下一篇", "点赞", "评论", "转发", "微博", "qq空间", "qq",
    "朋友圈", "字号", "字体", "大", "中", "小", "【", "】", "[", "]", "责任编辑", "编辑", "首页", "登录",
    "注册", "关注", "公众号", "打开", "app", "阅读全文", "阅读", "点击", "更多", "相关阅读", "相关新闻",
    "推荐", "热门", "版权所有", "版权声明", "免责声明", "copyright", "©", "all rights reserved", "share",
    "tweet", "print", "email", "e-mail", "facebook", "twitter", "linkedin", "whatsapp", "wechat",
    "weibo", "subscribe", "home", "menu", "login", "log in", "sign in", "sign up", "back to top",
    "read more", "next", "previous", "related", "本文", "链接", "复制", "复制链接", "手机", "手机版",
    "客户端", "下载", "举报", "纠错", "网站地图", "联系我们", "关于我们", "隐私", "政策", "隐私政策",
    "|", "｜", ":", "：", "-", "—", "·", "•", ">", "»",
}, key=len, reverse=True))


@dataclass(frozen=True)
class _Line:
    start: int
    end: int  # end of content, before the line break
    text: str


def clean_text(text: str, source: str = "<text>") -> Document:
    """Clean ``text`` and return the :class:`Document` with its :class:`CleaningReport`."""
    n = len(text)
    # action[i]: None = keep, "" = drop, other string = replace by that string
    action: list[str | None] = [None] * n
    reason: list[str] = [""] * n

    def drop(start: int, end: int, why: str) -> None:
        for i in range(start, end):
            if action[i] is None:
                action[i] = ""
                reason[i] = why

    for i, ch in enumerate(text):
        if unicodedata.category(ch) in ("Cc", "Cf") and ch not in "\t\n\r\f\u200d":
            drop(i, i + 1, CONTROL)

    toned_readings = sum(1 for m in _READING_RE.finditer(text) if _is_reading(m.group(1), toned_only=True))
    for m in _READING_RE.finditer(text):
        if _is_reading(m.group(1), toned_only=toned_readings < 3):
            drop(m.start(), m.end(), PINYIN)

    # Lines are judged as a reader sees them: without the readings just removed.
    for line in _split_lines(text):
        visible = "".join(text[i] for i in range(line.start, line.end) if action[i] is None)
        why = _classify_line(visible)
        if why:
            drop(line.start, line.end, why)

    _normalise_whitespace(text, action, reason)
    return _assemble(text, source, action, reason)


def _split_lines(text: str) -> list[_Line]:
    out: list[_Line] = []
    start = 0
    for m in re.finditer(r"\r\n|\r|\n", text):
        out.append(_Line(start, m.start(), text[start:m.start()]))
        start = m.end()
    out.append(_Line(start, len(text), text[start:]))
    return out


def _is_reading(body: str, *, toned_only: bool) -> bool:
    syllables = [s for s in re.split(r"[ '’]", body) if s]
    if not syllables:
        return False
    toned = any(c in _TONED for c in body) or bool(re.search(r"[1-5]$", syllables[-1]))
    if toned_only and not toned:
        return False
    if not toned and body != body.lower():
        return False  # "(AI)", "(Beijing)": real text, not a reading
    for s in syllables:
        base = s.lower().rstrip("12345").translate(_TONE_BASE)
        if base not in _SYLLABLES:
            return False
    return True


def _classify_line(line: str) -> str | None:
    stripped = line.strip()
    if not stripped:
        return None
    folded = fold(stripped)
    if _is_stuffing(folded):
        return STUFFING
    if _SENTENCE_END.search(folded):
        return None
    if len(folded) <= 60 and _boilerplate_coverage(folded) >= 0.6:
        return BOILERPLATE
    if _is_navigation(folded):
        return NAVIGATION
    return None


def _boilerplate_coverage(folded: str) -> float:
    text = re.sub(r"\s+", "", folded)
    if not text:
        return 0.0
    covered = 0
    i = 0
    while i < len(text):
        for term in _BOILERPLATE_TERMS:
            t = term.replace(" ", "")
            if t and text.startswith(t, i):
                covered += len(t)
                i += len(t)
                break
        else:
            i += 1
    return covered / len(text)


def _is_stuffing(folded: str) -> bool:
    """A run of many short names joined by |, 、, commas or spaces, with no sentence in it."""
    if _SENTENCE_END.search(folded) or re.search(r"[：:“”\"]", folded):
        return False
    items = [t for t in _STUFF_SPLIT.split(folded) if t]
    if len(items) < 8:
        return False
    lengths = [len(t) for t in items]
    if max(lengths) > 12 or sum(lengths) / len(lengths) > 6:
        return False
    separators = "".join(_STUFF_SPLIT.findall(folded))
    if "|" in separators or "｜" in separators or "、" in separators:
        return True
    # Joined only by spaces or commas: only lists of Han names, since a run of short English
    # words without punctuation is just as likely an ordinary sentence.
    return all(re.fullmatch(rf"[{_HAN}]+", t) for t in items)


def _is_navigation(folded: str) -> bool:
    if len(folded) > 120:
        return False
    parts = [p for p in _NAV_SPLIT.split(folded) if p.strip()]
    if len(parts) < 3 or len(_NAV_SPLIT.findall(folded)) < 2:
        return False
    return all(len(p.strip()) <= 10 for p in parts)


def _normalise_whitespace(text: str, action: list[str | None], reason: list[str]) -> None:
    """Within what survives: trim lines, collapse runs of spaces, keep paragraph breaks."""
    kept = [i for i in range(len(text)) if action[i] is None]
    j = 0
    while j < len(kept):
        if not text[kept[j]].isspace():
            j += 1
            continue
        k = j
        while k < len(kept) and text[kept[k]].isspace():
            k += 1
        run = kept[j:k]
        at_start, at_end = j == 0, k == len(kept)
        breaks = [i for i in run if text[i] == "\n" or (text[i] == "\r" and (i + 1 >= len(text) or text[i + 1] != "\n"))]
        keep: dict[int, str] = {}
        if at_start or at_end:
            pass
        elif len(breaks) >= 2:
            keep = {breaks[0]: "\n", breaks[1]: "\n"}
        elif len(breaks) == 1:
            keep = {breaks[0]: "\n"}
        else:
            keep = {run[0]: " "}
        for i in run:
            if i in keep:
                if text[i] != keep[i]:
                    action[i] = keep[i]
                    reason[i] = WHITESPACE
            else:
                action[i] = ""
                reason[i] = WHITESPACE
        j = k


def _assemble(text: str, source: str, action: list[str | None], reason: list[str]) -> Document:
    pieces: list[str] = []
    edits: list[Edit] = []
    clean_len = 0
    i, n = 0, len(text)
    while i < n:
        a = action[i]
        if a is None:
            j = i
            while j < n and action[j] is None:
                j += 1
            pieces.append(text[i:j])
            clean_len += j - i
            i = j
            continue
        if a == "":
            j = i
            while j < n and action[j] == "" and reason[j] == reason[i]:
                j += 1
            edits.append(Edit(i, j, text[i:j], "", reason[i], clean_len))
            i = j
            continue
        edits.append(Edit(i, i + 1, text[i], a, reason[i], clean_len))
        pieces.append(a)
        clean_len += len(a)
        i += 1
    cleaned = "".join(pieces)
    report = CleaningReport(source=source, original_chars=n, cleaned_chars=len(cleaned), edits=tuple(edits))
    return Document(source=source, text=cleaned, report=report)


def restore_original(cleaned: str, edits: tuple[Edit, ...]) -> str:
    """Rebuild the original text from the cleaned text and the edits (the report's proof)."""
    out: list[str] = []
    pos = 0
    for e in edits:
        out.append(cleaned[pos:e.clean_start])
        out.append(e.removed)
        pos = e.clean_start + len(e.replacement)
    out.append(cleaned[pos:])
    return "".join(out)


def original_offset(edits: tuple[Edit, ...], clean_offset: int) -> int:
    """Map an offset in the cleaned text to the matching offset in the original text."""
    shift = 0
    for e in edits:
        if e.clean_start + len(e.replacement) > clean_offset or (e.clean_start == clean_offset and e.replacement):
            break
        shift += len(e.removed) - len(e.replacement)
    return clean_offset + shift
