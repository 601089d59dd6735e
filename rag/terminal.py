"""Text safe to print on a terminal.

File names, source names, question ids and error messages come from outside: a file may be
named ``"\\x1b]0;owned\\x07report.txt"``. Printed raw, such a name retitles the window, moves the
cursor, recolours the screen, reorders the line (bidi overrides) or fakes a line of its own.
:func:`escape` shows every such character as a visible escape instead (``\\x1b``, ``\\u202e``);
:func:`escape_json` does the same inside JSON text, where the escape (``\\u009b``) keeps the JSON
valid and equal to what was meant.

Escaped: C0 controls (newline and tab kept on request), DEL, C1 controls, the bidi marks,
embeddings, overrides and isolates, the line and paragraph separators, and lone surrogates (a
file name that is not valid UTF-8, which could not be printed at all).

:func:`say` is the one print of the command line (:mod:`rag.cli`, :mod:`rag.evaluation.cli`); library
modules never print. :func:`progress_printer` is the one progress display on a terminal (the
command line's builds and the chat app's start-up sync).
"""

from __future__ import annotations

import re
import sys
from typing import TextIO

from rag.types import Progress

__all__ = ["escape", "escape_json", "progress_printer", "say"]

_BIDI_AND_SEPARATORS = "\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029"
_SURROGATES = "\ud800-\udfff"
_UNSAFE = re.compile(f"[\x00-\x1f\x7f-\x9f{_BIDI_AND_SEPARATORS}{_SURROGATES}]")
_UNSAFE_BUT_LINES = re.compile(f"[\x00-\x08\x0b-\x1f\x7f-\x9f{_BIDI_AND_SEPARATORS}{_SURROGATES}]")
# json.dumps already writes C0 controls as \u00XX; these it leaves raw with ensure_ascii=False
_UNSAFE_IN_JSON = re.compile(f"[\x7f-\x9f{_BIDI_AND_SEPARATORS}{_SURROGATES}]")
_NAMED = {"\n": "\\n", "\t": "\\t", "\r": "\\r"}


def _visible(match: re.Match[str]) -> str:
    c = match.group()
    code = ord(c)
    return _NAMED.get(c) or (f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")


def escape(text: str, *, keep_newlines: bool = False) -> str:
    """``text`` with every control character shown as an escape. ``keep_newlines`` keeps
    newlines and tabs (for multi-line output); without it the result is a single line."""
    return (_UNSAFE_BUT_LINES if keep_newlines else _UNSAFE).sub(_visible, text)


def escape_json(text: str) -> str:
    """JSON text (from ``json.dumps(..., ensure_ascii=False)``) with DEL, C1 controls, bidi
    controls, separators and lone surrogates written as ``\\uXXXX`` escapes: still the same JSON
    value, but nothing in it drives the terminal. Readable text (CJK and the like) stays as is."""
    return _UNSAFE_IN_JSON.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def say(text: str = "", *, err: bool = False) -> None:
    """Print ``text`` on stdout (stderr with ``err``), newlines kept and every other control
    character escaped. For the command line only: library code never prints."""
    print(escape(text, keep_newlines=True), file=sys.stderr if err else sys.stdout)


def progress_printer(stream: TextIO, indent: str = "") -> Progress:
    """A :class:`rag.types.Progress` callback that shows each stage on ``stream`` as
    ``{indent}  read: 3/10 (30%)``, rewriting the line (``\\r``) until the stage is done, and only
    when its percentage changes. Stage names are escaped like everything else printed."""
    last: dict[str, int] = {}

    def progress(stage: str, done: int, total: int) -> None:
        if total <= 0:
            return
        pct = int(100 * done / total)
        if last.get(stage) == pct:
            return
        last[stage] = pct
        stream.write(f"{indent}{escape(stage):>6}: {done}/{total} ({pct}%)" + ("\n" if done >= total else "\r"))
        stream.flush()

    return progress
