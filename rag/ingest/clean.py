"""Cleaning by general rules: pinyin readings, boilerplate widgets, navigation debris,
keyword-stuffing runs, whitespace; and, in a Markdown file, the Markdown syntax (heading marks,
emphasis, code marks, link and image syntax, list bullets, quote marks, rules and fences), as
HTML's markup is removed by extraction.

The cleaner decides, for every character of the original text, whether it is kept,
dropped or replaced (a tab by a space, say), and records every change as an
:class:`~rag.types.Edit` with its reason. The original can always be rebuilt from the
cleaned text and the edits; nothing disappears without being reported.
"""

from __future__ import annotations

import itertools
import re
import sys
import unicodedata
from functools import lru_cache
from itertools import product

import numpy as np

from rag import normalize as _normalize
from rag.normalize import fold
from rag.types import CleaningReport, Document, Edit

PINYIN = "pinyin reading"
BOILERPLATE = "share widget or boilerplate"
NAVIGATION = "navigation debris"
STUFFING = "keyword stuffing"
WHITESPACE = "whitespace"
CONTROL = "control character"
MARKDOWN = "markdown syntax"
#: File suffixes whose text is Markdown (cleaned with ``markdown=True`` by the index).
MARKDOWN_SUFFIXES: tuple[str, ...] = (".md", ".markdown")

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
# (The look-behind comes after the bracket so that the regex engine can skip ahead to brackets.)
_READING_RE = re.compile(
    rf"[(（](?<=[{_HAN}][(（])\s*([a-zA-Z{_TONED}üÜ]{{1,7}}[1-5]?(?:[ '’][a-zA-Z{_TONED}üÜ]{{1,7}}[1-5]?){{0,7}})\s*[)）]"
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


# Per-character actions, as int8 codes in a numpy array (one slot per original character).
_KEEP, _DROP, _TO_NEWLINE, _TO_SPACE = 0, 1, 2, 3
_REPLACEMENT = {_TO_NEWLINE: "\n", _TO_SPACE: " "}
# Reasons, as int8 codes in a parallel array (0: no reason, the character is kept as it is).
_REASONS = ("", CONTROL, PINYIN, BOILERPLATE, NAVIGATION, STUFFING, WHITESPACE, MARKDOWN)
_REASON_CODE = {r: i for i, r in enumerate(_REASONS) if r}
_LINE_BREAK_RE = re.compile(r"\r\n|\r|\n")
# Lines longer than this are folded for matching with a table per distinct character
# (same result as :func:`fold`, without a Python call per character).
_LONG_LINE = 20_000


def _is_control(ch: str) -> bool:
    return unicodedata.category(ch) in ("Cc", "Cf") and ch not in "\t\n\r\f\u200d"


@lru_cache(maxsize=1)
def _char_tables() -> tuple[np.ndarray, np.ndarray]:
    """Control characters to drop (Cc/Cf but tab, line breaks, form feed and ZWJ) and
    whitespace (``str.isspace``), as boolean tables indexed by code point.

    Only planes 0, 1 and 14 are scanned up front (every Cc, Cf and whitespace character
    is there); :func:`_char_masks` looks up characters of the other planes as texts bring them.
    """
    scanned = "".join(map(chr, itertools.chain(range(_OUTER_START), range(_OUTER_END, _OUTER_END + 0x10000))))
    control = np.zeros(sys.maxunicode + 1, dtype=bool)
    control[[ord(ch) for ch in scanned if _is_control(ch)]] = True
    space = np.zeros(sys.maxunicode + 1, dtype=bool)
    space[[ord(ch) for ch in scanned if ch.isspace()]] = True
    return control, space


_OUTER_START, _OUTER_END = 0x20000, 0xE0000  # planes 2 to 13, and 15 to 16, looked up lazily


def _char_masks(cp: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The control-character and whitespace tables, with this text's characters from the
    planes not scanned up front looked up as well."""
    control, space = _char_tables()
    if cp.size and int(cp.max()) >= _OUTER_START:
        outer = np.unique(cp[cp >= _OUTER_START]).tolist()
        outer = [c for c in outer if not _OUTER_END <= c < _OUTER_END + 0x10000]
        extra_control = [c for c in outer if _is_control(chr(c))]
        extra_space = [c for c in outer if chr(c).isspace()]
        if extra_control:
            control = control.copy()
            control[extra_control] = True
        if extra_space:
            space = space.copy()
            space[extra_space] = True
    return control, space


def _codepoints(text: str) -> np.ndarray:
    return np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype="<u4")


def _from_codepoints(cps: np.ndarray) -> str:
    return np.ascontiguousarray(cps, dtype="<u4").tobytes().decode("utf-32-le", "surrogatepass")


def _index_dtype(n: int) -> type[np.signedinteger]:
    return np.int32 if n < 2**31 - 1 else np.int64


def _spread(starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """All indices of the non-empty intervals ``[starts[k], ends[k])``, in order."""
    lengths = ends - starts
    offsets = np.repeat(starts - (np.cumsum(lengths) - lengths), lengths)
    return np.arange(offsets.size, dtype=offsets.dtype) + offsets


def is_markdown(source: str) -> bool:
    """Whether a document named ``source`` is Markdown (by its suffix)."""
    return source.lower().endswith(MARKDOWN_SUFFIXES)


def clean_text(text: str, source: str = "<text>", *, markdown: bool = False) -> Document:
    """Clean ``text`` and return the :class:`Document` with its :class:`CleaningReport`.
    ``markdown``: the text is Markdown, whose syntax is removed too (:func:`markdown_syntax`)."""
    n = len(text)
    cp = _codepoints(text)
    control_lut, space_lut = _char_masks(cp)
    # act[i]: _KEEP, _DROP, or a replacement code; why[i]: the reason code of a change.
    act = np.zeros(n, dtype=np.int8)
    why = np.zeros(n, dtype=np.int8)

    def drop(start: int, end: int, reason: str) -> None:
        a = act[start:end]
        free = a == _KEEP
        a[free] = _DROP
        why[start:end][free] = _REASON_CODE[reason]

    control = control_lut[cp]
    any_dropped = bool(control.any())
    if any_dropped:
        act[control] = _DROP
        why[control] = _REASON_CODE[CONTROL]
    del control

    matches = [(m.start(), m.end(), m.group(1)) for m in _READING_RE.finditer(text)]
    toned_readings = sum(1 for _, _, body in matches if _is_reading(body, toned_only=True))
    toned_only = toned_readings < 3
    spans = [(s, e) for s, e, body in matches if _is_reading(body, toned_only=toned_only)]
    if spans:
        starts, ends = np.array(spans, dtype=_index_dtype(n)).T
        reading = _spread(starts, ends)
        reading = reading[act[reading] == _KEEP]
        act[reading] = _DROP
        why[reading] = _REASON_CODE[PINYIN]
        any_dropped = True

    if markdown:
        for start_, end_ in markdown_syntax(text):
            drop(start_, end_, MARKDOWN)
            any_dropped = True

    # Lines are judged as a reader sees them: without the readings just removed.
    start = 0
    for m in itertools.chain(_LINE_BREAK_RE.finditer(text), (None,)):
        end = n if m is None else m.start()
        if end > start:
            if any_dropped and act[start:end].any():
                visible = _from_codepoints(cp[start:end][act[start:end] == _KEEP])
            else:
                visible = text[start:end]
            reason = _classify_line(visible)
            if reason:
                drop(start, end, reason)
        if m is not None:
            start = m.end()

    _normalise_whitespace(cp, act, why, space_lut)
    return _assemble(text, source, cp, act, why)


_MD_FENCE = re.compile(r"^[ \t]{0,3}(?:`{3,}|~{3,})[^\n]*$", re.M)
_MD_RULE = re.compile(r"^[ \t]{0,3}(?:(?:\*[ \t]*){3,}|(?:-[ \t]*){3,}|(?:_[ \t]*){3,}|={3,}[ \t]*)$", re.M)
_MD_HEADING = re.compile(r"^([ \t]{0,3}#{1,6})(?:[ \t]+|$)", re.M)
_MD_HEADING_CLOSE = re.compile(r"[ \t]+#+[ \t]*$", re.M)
_MD_QUOTE = re.compile(r"^(?:[ \t]{0,3}>[ \t]?)+", re.M)
_MD_BULLET = re.compile(r"^[ \t]*[-*+][ \t]+(?:\[[ xX]\][ \t]+)?", re.M)
_MD_REF_DEF = re.compile(r"^[ \t]{0,3}\[[^\]\n]+\]:[ \t]*\S+[^\n]*$", re.M)
# ![alt](target "title") and [text](target "title"): the alt text and the link text stay
_MD_LINK = re.compile(r"(!?\[)([^\]\n]*)(\]\([^)\n]*\)|\]\[[^\]\n]*\])")
_MD_AUTOLINK = re.compile(r"(<)((?:https?|ftp|mailto):[^>\s]+)(>)")
_MD_CODE = re.compile(r"(`+)([^`\n]+?)(\1)")
_MD_STRONG = re.compile(r"(\*\*|__|~~)(?=\S)([^\n]*?\S)(\1)")
_MD_EMPHASIS = re.compile(r"(?<![\w*])(\*)(?=[^\s*])([^*\n]*?[^\s*])(\*)(?![\w*])"
                          r"|(?<![\w_])(_)(?=[^\s_])([^_\n]*?[^\s_])(_)(?![\w_])")


def markdown_syntax(text: str) -> list[tuple[int, int]]:
    """The spans of ``text`` that are Markdown syntax, not content: heading marks (``#``, closing
    ``#``s, setext and thematic rule lines), code fences and code marks, quote marks, list
    bullets (``-``, ``*``, ``+``, task boxes; ordered numbers are content), emphasis marks
    (``**``, ``__``, ``*``, ``_``, ``~~``), link and image syntax (``[``, ``](target)``, ``![``;
    the text and the alt text stay), reference definitions and autolink brackets. Each is removed
    by rule and reported, so the original stays reconstructible and offsets exact."""
    spans: list[tuple[int, int]] = []
    for rx in (_MD_FENCE, _MD_RULE, _MD_REF_DEF):
        spans.extend(m.span() for m in rx.finditer(text))
    spans.extend(m.span(1) for m in _MD_HEADING.finditer(text))
    spans.extend(m.span() for m in _MD_HEADING_CLOSE.finditer(text)
                 if _MD_HEADING.match(text, text.rfind("\n", 0, m.start()) + 1))
    spans.extend(m.span() for m in _MD_QUOTE.finditer(text))
    spans.extend(m.span() for m in _MD_BULLET.finditer(text) if not _MD_RULE.match(text, m.start()))
    code: list[tuple[int, int]] = []
    for m in _MD_CODE.finditer(text):
        spans.extend((m.span(1), m.span(3)))
        code.append(m.span(2))

    def in_code(pos: int) -> bool:
        return any(a <= pos < b for a, b in code)

    for m in _MD_LINK.finditer(text):
        if not in_code(m.start()):
            spans.extend((m.span(1), m.span(3)))
    for m in _MD_AUTOLINK.finditer(text):
        if not in_code(m.start()):
            spans.extend((m.span(1), m.span(3)))
    for rx in (_MD_STRONG, _MD_EMPHASIS):
        for m in rx.finditer(text):
            if in_code(m.start()):
                continue
            groups = [i for i in range(1, (rx.groups or 0) + 1) if m.group(i) is not None]
            spans.extend((m.span(groups[0]), m.span(groups[-1])))
    return sorted((a, b) for a, b in spans if b > a)


@lru_cache(maxsize=65536)
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


def _fold_long(text: str) -> str:
    """:func:`fold`, for long text too: OpenCC on the whole text, then the per-character
    width and case folding through a table of the distinct characters instead of a Python
    call per character. Falls back to :func:`fold` if :mod:`rag.normalize` changes shape."""
    fold_char = getattr(_normalize, "_fold_char", None)
    if fold_char is None or len(text) < _LONG_LINE:
        return fold(text)
    simplified = _normalize.to_simplified(text)
    cps = _codepoints(simplified)
    distinct = np.flatnonzero(np.bincount(cps)).tolist()
    folded = [ord(fold_char(chr(c))) for c in distinct]
    if folded == distinct:
        return simplified
    table = np.arange(distinct[-1] + 1, dtype="<u4")
    table[distinct] = folded
    return _from_codepoints(table[cps])


def _classify_line(line: str) -> str | None:
    stripped = line.strip()
    if not stripped:
        return None
    folded = _fold_long(stripped)
    sentence = bool(_SENTENCE_END.search(folded))
    if not sentence and _is_stuffing(folded, sentence=False):
        return STUFFING
    if sentence:
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


_STUFF_QUOTE = re.compile(r"[：:“”\"]")
_STUFF_LONG_ITEM = re.compile(r"[^|｜、,，/／\s]{13}")  # an item longer than 12 characters
_STUFF_STRONG_SEP = re.compile(r"[|｜、]")
_STUFF_HAN_ONLY = re.compile(rf"[{_HAN}|｜、,，/／\s]*")


def _is_stuffing(folded: str, *, sentence: bool | None = None) -> bool:
    """A run of many short names joined by |, 、, commas or spaces, with no sentence in it."""
    if sentence is None:
        sentence = bool(_SENTENCE_END.search(folded))
    if sentence or _STUFF_QUOTE.search(folded) or _STUFF_LONG_ITEM.search(folded):
        return False
    items = [t for t in _STUFF_SPLIT.split(folded) if t]
    if len(items) < 8:
        return False
    lengths = [len(t) for t in items]
    if max(lengths) > 12 or sum(lengths) / len(lengths) > 6:
        return False
    # |, ｜ and 、 are separators wherever they occur.
    if _STUFF_STRONG_SEP.search(folded):
        return True
    # Joined only by spaces or commas: only lists of Han names, since a run of short English
    # words without punctuation is just as likely an ordinary sentence. (Every character is
    # a separator or part of an item, so: every character is a separator or Han.)
    return _STUFF_HAN_ONLY.fullmatch(folded) is not None


def _is_navigation(folded: str) -> bool:
    if len(folded) > 120:
        return False
    parts = [p for p in _NAV_SPLIT.split(folded) if p.strip()]
    if len(parts) < 3 or len(_NAV_SPLIT.findall(folded)) < 2:
        return False
    return all(len(p.strip()) <= 10 for p in parts)


def _normalise_whitespace(cp: np.ndarray, act: np.ndarray, why: np.ndarray, space_lut: np.ndarray) -> None:
    """Within what survives: trim lines, collapse runs of spaces, keep paragraph breaks.

    A run of whitespace among the kept characters (dropped characters in between do not
    break it) is dropped at the very start or end; otherwise it keeps its first one or two
    line breaks (as "\n"), or, without line breaks, its first character (as " ").
    Everything else in the run is dropped.
    """
    kept = act == _KEEP
    idx = np.flatnonzero(space_lut[cp] & kept)  # the kept whitespace characters
    if idx.size == 0:
        return
    # Two neighbours in ``idx`` are in one run when only dropped characters lie between.
    kept_from = np.add.reduceat(kept, idx, dtype=np.int32)  # kept in [idx[k], idx[k+1])
    first_of_run = np.ones(idx.size, dtype=bool)
    first_of_run[1:] = kept_from[:-1] != 1
    firsts = np.flatnonzero(first_of_run)  # indices into ``idx``
    lasts = np.append(firsts[1:], idx.size) - 1
    run = np.cumsum(first_of_run, dtype=np.int32) - 1
    at_edge = np.zeros(firsts.size, dtype=bool)
    at_edge[0] |= not kept[: idx[0]].any()
    at_edge[-1] |= not kept[idx[-1] + 1:].any()

    ch = cp[idx]
    after = idx + 1
    inside = after < cp.size
    next_is_nl = np.zeros(idx.size, dtype=bool)
    next_is_nl[inside] = cp[after[inside]] == 0x0A
    is_break = (ch == 0x0A) | ((ch == 0x0D) & ~next_is_nl)
    breaks_before = np.concatenate(([0], np.cumsum(is_break, dtype=np.int64)))
    rank = breaks_before[:-1] - breaks_before[firsts][run]  # breaks earlier in the same run
    n_breaks = breaks_before[lasts + 1] - breaks_before[firsts]

    keep_nl = is_break & (rank < 2) & ~at_edge[run]
    keep_sp = first_of_run & (n_breaks[run] == 0) & ~at_edge[run]
    code = _REASON_CODE[WHITESPACE]
    dropped = idx[~(keep_nl | keep_sp)]
    act[dropped] = _DROP
    why[dropped] = code
    to_nl = idx[keep_nl & (ch != 0x0A)]
    act[to_nl] = _TO_NEWLINE
    why[to_nl] = code
    to_sp = idx[keep_sp & (ch != 0x20)]
    act[to_sp] = _TO_SPACE
    why[to_sp] = code


def _assemble(text: str, source: str, cp: np.ndarray, act: np.ndarray, why: np.ndarray) -> Document:
    n = len(text)
    if not act.any():
        report = CleaningReport(source=source, original_chars=n, cleaned_chars=n, edits=())
        return Document(source=source, text=text, report=report)
    out = act != _DROP
    out_cp = cp[out]  # a copy
    out_act = act[out]
    out_cp[out_act == _TO_NEWLINE] = 0x0A
    out_cp[out_act == _TO_SPACE] = 0x20
    cleaned = _from_codepoints(out_cp)
    del out, out_cp, out_act

    # A run of dropped characters with one reason is one edit; a replacement is one edit
    # per character.
    key = why * (act == _DROP)  # the reason where dropped, else 0
    bounds = np.flatnonzero(key[1:] != key[:-1]) + 1
    seg_starts = np.concatenate(([0], bounds))
    dropped = key[seg_starts] != 0
    drop_starts = seg_starts[dropped]
    drop_ends = np.append(bounds, n)[dropped]
    replaced = np.flatnonzero(act >= _TO_NEWLINE)
    starts = np.concatenate((drop_starts, replaced))
    ends = np.concatenate((drop_ends, replaced + 1))
    removed = np.concatenate((drop_ends - drop_starts, np.zeros(replaced.size, dtype=drop_starts.dtype)))
    order = np.argsort(starts, kind="stable")
    starts, ends, removed = starts[order], ends[order], removed[order]
    clean_starts = starts - (np.cumsum(removed) - removed)

    edits = tuple(
        Edit(s, e, text[s:e], _REPLACEMENT.get(a, ""), _REASONS[r], c)
        for s, e, a, r, c in zip(
            starts.tolist(), ends.tolist(), act[starts].tolist(), why[starts].tolist(), clean_starts.tolist()
        )
    )
    report = CleaningReport(source=source, original_chars=n, cleaned_chars=len(cleaned), edits=edits)
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
