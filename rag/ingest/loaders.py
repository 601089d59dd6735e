"""From paths to text: which files, which encoding or format, how big.

Plain text (``.txt``, ``.md``) is decoded with its encoding detected, never assumed, and never
lossily: a file that cannot be decoded exactly is refused with its name and the reason. HTML,
PDF and Word files go through :mod:`rag.ingest.extractors`. Every refusal is a :class:`DocumentError`
naming the file, so one bad file never stops the others.

Detection (:func:`decode_bytes`): a byte-order mark decides; else bytes that are strict UTF-8
(and hold no NUL) are UTF-8; else charset-normalizer proposes encodings, and the first whose
strict decode it measures as clean text is used: its *chaos* (share of suspicious characters)
at most :data:`CHAOS_MAX`, and for single-byte code pages, whose guesses decode anything, a
*coherence* (fit to a language's letter frequencies) of at least :data:`COHERENCE_MIN` once
the text is long enough to measure. Among guesses the detector cannot tell apart (short texts,
where it measures no language) a decode using scripts foreign to its encoding's language loses
(kana in a GBK decode, Hanja mixed into Hangul), then Chinese, Japanese, Korean, Unicode and
common Windows code pages are preferred in that order. Thresholds and their measurements:
``tests/test_loaders.py`` and the notes on the constants.
"""

from __future__ import annotations

import codecs
import hashlib
import os
import re
import stat
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from charset_normalizer import CharsetMatch, from_bytes
from charset_normalizer.cd import mb_encoding_languages
from charset_normalizer.utils import is_multi_byte_encoding

from rag.ingest import extractors
from rag.errors import DocumentError, TextDecodingError

TEXT_SUFFIXES: tuple[str, ...] = (".txt", ".md")
HTML_SUFFIXES: tuple[str, ...] = (".html", ".htm")
SUPPORTED_SUFFIXES: tuple[str, ...] = TEXT_SUFFIXES + HTML_SUFFIXES + (".pdf", ".docx")

# Declared HTML charsets we decode with a superset: GB2312 and GBK are subsets of GB18030, Big5
# of big5hkscs.
_DECLARED_SUPERSET = {"gb2312": "gb18030", "gbk": "gb18030", "big5": "big5hkscs", "ascii": "utf-8"}

#: Most chaos (charset-normalizer's mess ratio) a decode may show. Measured on the samples of
#: tests/test_loaders.py: every correct decode of real text (Chinese, Japanese, Korean, mixed
#: Chinese/English, UTF-16 without BOM, paragraphs and short lines) 0.000, Western code pages
#: up to 0.03; wrong decodes (Korean read as GBK, Japanese as EUC-KR, ...) 0.15 to 0.18, and
#: random characters of a valid encoding (Hanzi in GBK or Big5, UTF-16) 0.16 to 0.20.
CHAOS_MAX = 0.10
#: Least coherence a single-byte decode must reach, once measurable. Measured: real French,
#: German, Spanish, Russian, Greek, Turkish text 0.48 to 0.77; junk that a code page maps to
#: letters (a run of 0xFF, text followed by binary) 0.0. CJK decodes are not held to it: the
#: detector's Chinese table has 100 characters, so short or mixed Chinese text measures 0.
COHERENCE_MIN = 0.30
#: The detector's TOO_SMALL_SEQUENCE: with fewer letters it measures no language, and inputs
#: of fewer bytes are too short for its measures (random 8 to 31 bytes pass them at times).
_SMALL = 32
#: Guesses this close in chaos and coherence are told apart by scripts and preference.
_TIE_CHAOS = 0.01
_TIE_COHERENCE = 0.05
#: Single-byte guesses are ranked by coherence - 3 x chaos, ties (within 0.03) by preference.
#: The detector's own first guess for short French is the Baltic cp775 (chaos 0.010, coherence
#: 0.60) over cp1252 (0.027, 0.77); weights 1 to 5 with this band decode French, German,
#: Spanish, Turkish, Greek and Russian samples right; 0 or 8 do not.
_SINGLE_BYTE_CHAOS_WEIGHT = 3.0
_SINGLE_BYTE_TIE = 0.03

#: Preferred names among guesses that decode alike or tie: Chinese first (rag's corpus), then
#: Japanese, Korean, Unicode, then common Windows and ISO code pages. Others follow.
_PREFERENCE = (
    "gb18030", "gbk", "gb2312", "big5", "big5hkscs", "cp950", "hz",
    "cp932", "shift_jis", "euc_jp", "euc_jis_2004", "shift_jis_2004", "euc_jisx0213", "shift_jisx0213",
    "iso2022_jp", "cp949", "euc_kr", "johab", "iso2022_kr",
    "utf_8", "utf_16_le", "utf_16_be", "utf_16", "utf_32_le", "utf_32_be", "utf_32",
    "cp1252", "latin_1", "iso8859_15", "cp1250", "iso8859_2", "cp1251", "koi8_r", "koi8_u", "cp1253",
    "iso8859_7", "cp1254", "iso8859_9", "cp1257", "iso8859_13", "cp1255", "iso8859_8", "cp1256",
    "iso8859_6", "cp874", "tis_620", "cp1258",
)
_RANK = {name: i for i, name in enumerate(_PREFERENCE)}

_BOMS = (
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF32_LE, "utf-32"),  # before UTF-16: FF FE 00 00 starts with FF FE
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)


@dataclass(frozen=True)
class RawDocument:
    """A decoded file, before cleaning."""

    source: str
    text: str
    encoding: str
    sha256: str


def source_name(path: Path) -> str:
    """The name a document is known by: its path relative to the working folder if inside it."""
    resolved = path.resolve()
    try:
        return resolved.relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return resolved.as_posix()


def collect_paths(paths: Sequence[str | os.PathLike[str]]) -> tuple[list[Path], list[DocumentError]]:
    """Expand files and folders into the supported files they hold, sorted, without duplicates.

    Returns the files and the problems found (a missing path, a link that leaves its folder,
    an unsupported file named explicitly), so one bad path never stops the others.
    """
    files: list[Path] = []
    problems: list[DocumentError] = []
    seen: set[Path] = set()

    def add(p: Path) -> None:
        rp = p.resolve()
        if rp in seen:
            return
        seen.add(rp)
        try:  # the name is a source in the index's UTF-8 JSON and in every citation
            str(p).encode("utf-8")
        except UnicodeEncodeError:
            problems.append(DocumentError(ascii(str(p))[1:-1], "the file name is not valid UTF-8 text; rename the file"))
            return
        files.append(p)

    for raw in paths:
        p = Path(raw)
        if not p.exists():
            problems.append(DocumentError(str(p), "no such file or folder"))
        elif p.is_dir():
            root = p.resolve()
            links: list[Path] = []
            for child in sorted(p.rglob("*")):
                if any(part.startswith(".") for part in child.relative_to(p).parts):
                    continue
                if child.is_symlink() and not _inside(child.resolve(), root):
                    if child.is_dir() or child.suffix.lower() in SUPPORTED_SUFFIXES:
                        problems.append(DocumentError(str(child), "symbolic link points outside the corpus folder"))
                    continue
                if child.is_dir() or child.suffix.lower() not in SUPPORTED_SUFFIXES:
                    continue
                if child.is_symlink():
                    links.append(child)  # after the real files, so a file is known by its own name
                else:
                    add(child)
            for child in links:
                add(child)
        elif p.suffix.lower() not in SUPPORTED_SUFFIXES:
            problems.append(
                DocumentError(str(p), f"unsupported file type {p.suffix or '(none)'}; supported: {', '.join(SUPPORTED_SUFFIXES)}")
            )
        else:
            add(p)
    return files, problems


def _inside(path: Path, root: Path) -> bool:
    try:
        path.relative_to(root)
        return True
    except ValueError:
        return False


def read_bytes(path: str | os.PathLike[str], *, max_bytes: int, source: str | None = None) -> bytes:
    """The bytes of one regular file, its size checked against ``max_bytes`` before reading."""
    p = Path(path)
    name = source or source_name(p)
    try:
        st = p.stat()
    except OSError as exc:
        raise DocumentError(name, f"cannot read: {exc.strerror or exc}") from exc
    if not stat.S_ISREG(st.st_mode):
        raise DocumentError(name, "not a regular file")
    if st.st_size > max_bytes:
        raise DocumentError(name, f"file is {st.st_size} bytes, over the {max_bytes}-byte limit")
    try:
        with open(p, "rb") as f:
            data = f.read(max_bytes + 1)
    except OSError as exc:
        raise DocumentError(name, f"cannot read: {exc.strerror or exc}") from exc
    if len(data) > max_bytes:
        raise DocumentError(name, f"file grew past the {max_bytes}-byte limit while being read")
    return data


def read_document(path: str | os.PathLike[str], *, max_bytes: int, source: str | None = None) -> RawDocument:
    """Read one file and turn it into text, refusing it with a :class:`DocumentError` when unusable."""
    p = Path(path)
    name = source or source_name(p)
    data = read_bytes(p, max_bytes=max_bytes, source=name)
    return document_from_bytes(data, p.suffix, name)


def document_from_bytes(data: bytes, suffix: str, name: str) -> RawDocument:
    """Text of a file's bytes by its type (``suffix``): decoded text, or extracted HTML, PDF, DOCX."""
    if not data.strip():
        raise DocumentError(name, "file is empty or holds only whitespace")
    kind = suffix.lower()
    if kind in TEXT_SUFFIXES or not kind:
        text, encoding = decode_bytes(data, name)
    elif kind in HTML_SUFFIXES:
        html, charset = decode_html(data, name)
        text, encoding = extractors.html_main_text(html, name), f"html/{charset}"
    elif kind == ".pdf":
        text, encoding = extractors.pdf_text(data, name), "pdf"
    elif kind == ".docx":
        text, encoding = extractors.docx_text(data, name), "docx"
    else:
        raise DocumentError(name, f"unsupported file type {suffix}; supported: {', '.join(SUPPORTED_SUFFIXES)}")
    if not text.strip():
        raise DocumentError(name, "file is empty or holds only whitespace")
    return RawDocument(source=name, text=text, encoding=encoding, sha256=hashlib.sha256(data).hexdigest())


_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_-]+)""", re.IGNORECASE)


def decode_html(data: bytes, name: str) -> tuple[str, str]:
    """Decode an HTML file: by detection like plain text, else by its declared ``<meta charset>``."""
    try:
        return decode_bytes(data, name)
    except DocumentError as detected:
        m = _META_CHARSET.search(data[:4096])
        if not m:
            raise
        declared = m.group(1).decode("ascii").lower().replace("-", "_")
        codec = _DECLARED_SUPERSET.get(declared, declared)
        try:
            return data.decode(codec), codec
        except LookupError:
            raise DocumentError(name, f"{detected.reason}; its declared charset {declared!r} is unknown") from None
        except UnicodeDecodeError as exc:
            raise DocumentError(name, f"invalid {codec} bytes at offset {exc.start} (the declared charset): {exc.reason}") from exc


def decode_bytes(data: bytes, name: str) -> tuple[str, str]:
    """Decode ``data`` exactly, detecting its encoding. Returns (text, encoding name).

    Raises :class:`~rag.errors.TextDecodingError` (a DocumentError naming the file and the
    reason) when no encoding gives coherent text.
    """
    if not data:
        return "", "utf-8"
    for bom, codec in _BOMS:
        if data.startswith(bom):
            text = _strict(data, codec, name)
            if "\x00" in text or not _plausible(text):
                raise TextDecodingError(name, f"looks like a binary file, not text (it starts with a {codec} mark)")
            return text, codec
    if b"\x00" not in data:
        try:
            return data.decode("utf-8"), "utf-8"
        except UnicodeDecodeError:
            pass
    matches = list(from_bytes(data))
    decoded = [(m, clean) for m in matches if (clean := _clean_decode(data, m)) is not None]
    if decoded:
        match, text = _choose(decoded)
        return text, codecs.lookup(_name(match)).name
    raise TextDecodingError(name, _refusal(data, matches))


def _clean_decode(data: bytes, match: CharsetMatch) -> str | None:
    """The strict decode of ``data`` by ``match`` if it is clean text by the measures, else None."""
    if match.chaos > CHAOS_MAX:
        return None
    if match.encoding in ("utf_16", "utf_32"):  # BOM-less guesses of these are the _le/_be ones
        return None
    try:
        text = data.decode(match.encoding)
    except (UnicodeDecodeError, LookupError):
        return None
    if "\x00" in text or not _plausible(text):
        return None
    if not is_multi_byte_encoding(match.encoding) and match.coherence < COHERENCE_MIN and _measurable(text):
        return None
    if len(data) < _SMALL and not _common_scripts(text):
        return None  # too short for the measures: only text in everyday scripts passes
    return text


def _choose(decoded: list[tuple[CharsetMatch, str]]) -> tuple[CharsetMatch, str]:
    """The detector's first clean guess, unless others tie with it: then the one whose scripts
    fit its language, then the preferred encoding (see :data:`_PREFERENCE`)."""
    first = decoded[0][0]
    if not is_multi_byte_encoding(first.encoding):
        single = [(i, m, t) for i, (m, t) in enumerate(decoded) if not is_multi_byte_encoding(m.encoding)]
        best = max(_single_byte_score(m) for _, m, _ in single)
        tied = [c for c in single if _single_byte_score(c[1]) >= best - _SINGLE_BYTE_TIE]
        _, match, text = min(tied, key=lambda c: (_rank(_name(c[1])), c[0]))
        return match, text
    tied = [(i, m, t) for i, (m, t) in enumerate(decoded)
            if abs(m.chaos - first.chaos) <= _TIE_CHAOS and abs(m.coherence - first.coherence) <= _TIE_COHERENCE]
    if len(tied) == 1:
        return decoded[0]
    _, match, text = min(tied, key=lambda c: (_foreign_scripts(c[1].encoding, c[2]), _rank(_name(c[1])), c[0]))
    return match, text


def _single_byte_score(match: CharsetMatch) -> float:
    return match.coherence - _SINGLE_BYTE_CHAOS_WEIGHT * match.chaos


def _name(match: CharsetMatch) -> str:
    """The preferred name among the encodings that decode these bytes to the same text."""
    return min(match.could_be_from_charset, key=_rank)


def _rank(encoding: str) -> int:
    return _RANK.get(encoding, len(_RANK))


_HAN = re.compile("[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_KANA = re.compile("[\u3041-\u30ff\uff66-\uff9f]")
_HANGUL = re.compile("[\uac00-\ud7a3]")
_JAMO = re.compile("[\u3131-\u318e]")


def _script_counts(text: str, sample: int = 1 << 16) -> tuple[int, int, int, int]:
    """(Han, kana, Hangul syllables, Hangul jamo) characters in the first ``sample`` of ``text``."""
    head = text[:sample]
    return tuple(len(rx.findall(head)) for rx in (_HAN, _KANA, _HANGUL, _JAMO))  # type: ignore[return-value]


def _foreign_scripts(encoding: str, text: str) -> int:
    """1 if ``text`` uses scripts that its encoding's language does not write with (the sign
    of a wrong guess between East Asian encodings), else 0."""
    languages = mb_encoding_languages(encoding)
    if not languages:
        return 0
    han, kana, hangul, jamo = _script_counts(text)
    if languages[0] == "Chinese":
        return int(kana + hangul + jamo > 0)
    if languages[0] == "Japanese":
        return int(hangul + jamo > 0 or (han > 0 and kana == 0))
    if languages[0] == "Korean":
        return int(kana > 0 or jamo > hangul // 10 or han * 10 > han + hangul)
    return 0


def _measurable(text: str) -> bool:
    """Long enough for a coherence to mean something: enough letters, or so long that text in
    a letter-based script would have them (a run of symbols is not text)."""
    return len(text) >= 2 * _SMALL or sum(1 for ch in text if ch.isalpha()) >= _SMALL


def _common_scripts(text: str) -> bool:
    """Every character printable ASCII, whitespace, or from a block everyday CJK or European
    text uses (a guard for inputs too short for the detector's measures)."""
    for ch in text:
        cp = ord(ch)
        if 0x20 <= cp < 0x7F or ch in "\t\n\r":
            continue
        if not any(lo <= cp <= hi for lo, hi in _COMMON_BLOCKS):
            return False
    return True


_COMMON_BLOCKS = (
    (0x00A0, 0x017F), (0x0370, 0x03FF), (0x0400, 0x04FF), (0x2000, 0x206F), (0x3000, 0x30FF),
    (0x3131, 0x318E), (0x4E00, 0x9FFF), (0xAC00, 0xD7A3), (0xFF01, 0xFF9F),
)


_WIDE = frozenset({"utf_16_le", "utf_16_be", "utf_32_le", "utf_32_be"})


def _refusal(data: bytes, matches: list[CharsetMatch]) -> str:
    """Why nothing decoded: binary, garbled under the best guess, or not coherent text."""
    if not matches:
        if b"\x00" in data:
            return "looks like a binary file (it contains NUL bytes), not text"
        return "cannot decode as text: no encoding charset-normalizer knows decodes it (not text?)"
    best = matches[0]
    guess = codecs.lookup(best.encoding).name
    if b"\x00" in data and not (best.encoding in _WIDE and best.chaos <= CHAOS_MAX):
        return "looks like a binary file (it contains NUL bytes), not text"
    if best.chaos > CHAOS_MAX:
        return (f"cannot decode as text: its likeliest encoding, {guess}, gives garbled text "
                f"({best.chaos:.0%} suspicious characters; at most {CHAOS_MAX:.0%} allowed)")
    if not is_multi_byte_encoding(best.encoding) and best.coherence < COHERENCE_MIN:
        return (f"cannot decode as text: its likeliest encoding, {guess}, gives text that is not coherent "
                f"in any language (coherence {best.coherence:.0%}, at least {COHERENCE_MIN:.0%} needed)")
    return (f"cannot decode as text: its likeliest encoding, {guess}, gives control or private-use "
            "characters, or too little text to identify the encoding")


def _strict(data: bytes, codec: str, name: str) -> str:
    try:
        return data.decode(codec)
    except UnicodeDecodeError as exc:
        raise TextDecodingError(name, f"invalid {codec} bytes at offset {exc.start}: {exc.reason}") from exc


#: Control characters (Unicode category Cc: U+0000-001F, U+007F-009F) other than tab, line
#: feed, form feed and carriage return; private-use characters; U+FFFD, U+FFFE, U+FFFF.
_DEBRIS = re.compile("[\x00-\x08\x0b\x0e-\x1f\x7f-\x9f\ue000-\uf8ff\ufffd\ufffe\uffff]")


def _plausible(text: str) -> bool:
    """Reject decodes that produce control characters or private-use debris."""
    if not text:
        return False
    return sum(1 for _ in _DEBRIS.finditer(text)) / len(text) < 0.001


def iter_readable(files: Iterable[Path], *, max_bytes: int) -> Iterable[RawDocument | DocumentError]:
    """Read each file, yielding either the document or the error that refused it."""
    for f in files:
        try:
            yield read_document(f, max_bytes=max_bytes)
        except DocumentError as exc:
            yield exc
