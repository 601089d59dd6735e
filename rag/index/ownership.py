"""What in an index folder is rag's: markers, version names, the ``CURRENT`` pointer, claiming
a folder, and removing only what rag provably wrote.

Ownership: rag deletes only what it provably wrote. A writer refuses a folder that is neither
new, empty (placeholder files such as a README aside), marked, nor an index that an earlier
rag wrote (one of its versions proves it), and so never writes into someone else's folder.
Inside an index, a folder is rag's when it carries the version marker, or, for indexes written
before markers existed, when it is named ``v-<6 digits>-<time>-<8 hex>``, its manifest verifies
and it holds nothing the manifest does not list. Writers start by removing what a crashed
writer left (:func:`tidy`): marked (or empty) ``.tmp-*`` folders, pointer temporaries, and
rag's versions newer than the one a sound ``CURRENT`` names (renamed but never published).
Everything else in the folder is left alone. Removing a folder deletes its marker last, so a
removal cut short is still recognised next time. ``CURRENT``, the markers and pointer
temporaries are never opened, written or truncated through a symbolic or hard link: such a
marker is refused (:class:`UnsafeIndexPathError`), and a linked ``CURRENT`` counts as broken.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import time
import uuid
from pathlib import Path

from rag import fs
from rag.errors import IndexError_, IndexWriteError, NotAnIndexError, UnsafeIndexPathError
from rag.index.manifest import MANIFEST, read_manifest

POINTER = "CURRENT"


LOCK = ".lock"


INDEX_MARKER = ".rag-index"


VERSION_MARKER = ".rag-version"



_INDEX_MARKER_TEXT = "rag index folder: rag wrote this file when it created (or adopted) the folder\n"


VERSION_MARKER_TEXT = "rag index version: rag wrote this file first, before anything else in this folder\n"


# What a version folder of rag's is called (``v-<seq>-<time>-<id>``, see :func:`next_name`),
# its temporary folder, and a temporary of CURRENT: only such names, and only when what they
# hold proves it too, are ever removed.
_VERSION_NAME = re.compile(r"v-\d{6}-\d{8}T\d{6}-[0-9a-f]{8}")


TEMP_PREFIX = ".tmp-v-"


#: the record of documents excluded on purpose (:mod:`rag.index.exclusions`), and its temporaries
EXCLUSIONS = "excluded.json"
_EXCLUSIONS_TEMP = re.compile(r"\.excluded\.json\.[0-9a-f]{8}\.tmp")
_POINTER_TEMP_NAME = re.compile(r"\.CURRENT\.[0-9a-f]{8}")


# Files a repository keeps in a folder that is empty otherwise (like this project's index/README.md):
# a folder holding only these is as good as empty. rag never writes or removes them.
_PLACEHOLDERS = frozenset({"README", "README.md", "README.txt", "README.rst", ".gitkeep", ".keep", ".gitignore"})


def version_key(name: str) -> tuple[int, str]:
    """Versions sort by their sequence number (``v-000012-...``); older names sort first."""
    parts = name.split("-")
    if len(parts) >= 2 and len(parts[1]) == 6 and parts[1].isdigit():
        return int(parts[1]), name
    return 0, name


def version_folders(index_dir: Path) -> list[Path]:
    """Version folders, newest first."""
    return sorted((p for p in index_dir.glob("v-*") if p.is_dir()), key=lambda p: version_key(p.name), reverse=True)


def read_pointer(index_dir: Path) -> str | None:
    """The version CURRENT names; None when there is no CURRENT, "" when it cannot be read
    (not text, not a plain file, or a symbolic link: it is never read through one)."""
    try:
        fd = os.open(index_dir / POINTER, os.O_RDONLY | fs.O_NOFOLLOW | fs.O_CLOEXEC | fs.O_NONBLOCK)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError:
        return ""
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return ""
        return os.read(fd, 4096).decode("utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return ""
    finally:
        os.close(fd)


def sound_name(name: str | None) -> bool:
    """``name`` can be a version folder's name (no path, no hidden or special name)."""
    return name is not None and name != "" and "/" not in name and not name.startswith(".") and "\x00" not in name


def _marked(folder: Path) -> bool:
    """``folder`` is a real folder holding rag's version marker: rag created it."""
    return fs.is_real_dir(folder) and fs.is_plain_file(folder / VERSION_MARKER)


def _legacy_version(folder: Path) -> bool:
    """A version written before markers existed, provably by rag: named as rag names versions,
    its manifest reads and its digest verifies, and it holds nothing its manifest does not
    list (no other file, no link)."""
    if not _VERSION_NAME.fullmatch(folder.name) or not fs.is_real_dir(folder):
        return False
    try:
        manifest = read_manifest(folder)
    except IndexError_:
        return False
    listed = set(manifest.files) | {MANIFEST}
    for root, dirs, files in os.walk(folder):
        base = Path(root)
        for d in dirs:
            if not fs.is_real_dir(base / d):
                return False  # a link to a folder
        for f in files:
            p = base / f
            if not fs.is_plain_file(p) or p.relative_to(folder).as_posix() not in listed:
                return False
    return True


def owned_version(folder: Path) -> bool:
    """``folder`` (a ``v-*`` entry of an index) is a version rag provably wrote."""
    return _marked(folder) or _legacy_version(folder)


def _owned_temp(entry: Path) -> bool:
    """``entry`` is a temporary a writer of rag's left: a ``.tmp-v-*`` folder with the version
    marker (or empty: killed before the marker), or a ``.CURRENT.<8 hex>`` plain file."""
    if entry.name.startswith(TEMP_PREFIX):
        return _marked(entry) or (fs.is_real_dir(entry) and not os.listdir(entry))
    return bool(_POINTER_TEMP_NAME.fullmatch(entry.name)) and fs.is_plain_file(entry)


def remove_owned(entry: Path) -> bool:
    """Remove a folder (or pointer temporary) rag wrote. A folder loses its marker last (one
    that had none, a pre-marker version, gets one first), so a removal cut short by a kill
    leaves a folder still recognised as rag's. Returns whether it is gone."""
    if not fs.is_real_dir(entry):
        try:
            entry.unlink()
        except FileNotFoundError:
            pass
        except OSError:
            return False
        return True
    marker = entry / VERSION_MARKER
    if not fs.is_plain_file(marker):
        try:
            fs.create_file(marker, VERSION_MARKER_TEXT)
        except OSError:
            pass
    try:
        for child in sorted(os.listdir(entry)):
            if child == VERSION_MARKER:
                continue
            p = entry / child
            if fs.is_real_dir(p):
                shutil.rmtree(p)  # never follows a link inside
            else:
                p.unlink()
        marker.unlink(missing_ok=True)
        entry.rmdir()
    except OSError:
        return False
    return True


def _adoptable(index_dir: Path) -> tuple[bool, list[str]]:
    """Whether a folder without the index marker may be used as an index: it holds one of rag's
    versions (a pre-marker index, perhaps one that lost CURRENT) or a legacy single-version
    manifest, or nothing but what rag or a repository puts into an empty folder (the lock,
    CURRENT, temporaries, placeholders). Returns that and the names that are not rag's."""
    foreign: list[str] = []
    ours = False
    for name in sorted(os.listdir(index_dir)):
        p = index_dir / name
        if name.startswith("v-") and owned_version(p):
            ours = True
        elif name == MANIFEST and fs.is_plain_file(p):
            try:
                read_manifest(index_dir)
                ours = True
            except IndexError_:
                foreign.append(name)
        elif (name in (LOCK, POINTER, EXCLUSIONS) or _EXCLUSIONS_TEMP.fullmatch(name)) and fs.is_plain_file(p):
            continue
        elif name in _PLACEHOLDERS and fs.is_plain_file(p):
            continue
        elif _owned_temp(p) or (name.startswith(TEMP_PREFIX) and fs.is_real_dir(p)):
            continue  # a crashed writer's (one of before markers, too: kept, but no sign of foreign data)
        else:
            foreign.append(name)
    return ours or not foreign, foreign


def claim_index_dir(index_dir: Path) -> None:
    """Make sure writers may use ``index_dir``, creating it when it does not exist.

    A new folder gets the index marker first. An existing one is used when it carries the
    marker, or when :func:`_adoptable` (an index of an earlier rag, an empty folder): then it is
    marked. Anything else (someone's folder of files) raises :class:`NotAnIndexError` before
    anything is written into it; a marker that is not a plain file raises
    :class:`UnsafeIndexPathError`.
    """
    try:
        st = os.stat(index_dir)  # the folder itself may be a link: the caller named it
    except FileNotFoundError:
        st = None
    except OSError as exc:
        raise write_error(index_dir, exc) from exc
    if st is None:
        try:
            index_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise write_error(index_dir, exc) from exc
    elif not stat.S_ISDIR(st.st_mode):
        raise NotAnIndexError(f"{index_dir}: not a folder, so not an index; give a new or empty folder")
    marker = index_dir / INDEX_MARKER
    if os.path.lexists(marker):
        if not fs.is_plain_file(marker):
            raise UnsafeIndexPathError(
                f"{marker}: the index marker is a symbolic link or not a plain file; refused "
                "(rag never writes through a link): remove it"
            )
        return
    if st is not None:
        ok, foreign = _adoptable(index_dir)
        if not ok:
            shown = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
            raise NotAnIndexError(
                f"{index_dir}: not an index folder, and not empty (it holds {shown}, which rag did not write); "
                "refusing to write into it: give a new or empty folder, or an index rag built"
            )
    try:
        fs.create_file(marker, _INDEX_MARKER_TEXT)
    except FileExistsError:  # another writer marked it just now
        if not fs.is_plain_file(marker):
            raise UnsafeIndexPathError(f"{marker}: the index marker is a symbolic link or not a plain file; refused") from None
    except OSError as exc:
        raise write_error(index_dir, exc) from exc


def tidy(index_dir: Path) -> list[str]:
    """Remove what a crashed writer provably left: its temporaries (``.tmp-v-*`` folders with
    the version marker or empty, ``.CURRENT.<8 hex>`` files) and versions of rag's that are
    newer than the one a sound ``CURRENT`` names (renamed, never published). Nothing else:
    with CURRENT missing or broken every version is kept (loading recovers the newest intact
    one), and what rag cannot prove it wrote is never touched. Call with the writer lock held.
    Returns the names removed."""
    if not index_dir.is_dir():
        return []
    removed = remove_temporaries(index_dir)
    current = read_pointer(index_dir)
    if not sound_name(current) or not (index_dir / str(current)).is_dir():
        return removed  # no pointer, or a broken one: keep every version for recovery
    seq = version_key(str(current))[0]
    if seq == 0:
        return removed  # not a name rag gives: which versions are newer is unknown
    for p in version_folders(index_dir):
        if version_key(p.name)[0] > seq and owned_version(p) and remove_owned(p):
            removed.append(p.name)
    return removed


def remove_temporaries(index_dir: Path) -> list[str]:
    removed: list[str] = []
    for name in sorted(os.listdir(index_dir)):
        p = index_dir / name
        if (name.startswith(TEMP_PREFIX) or name.startswith(f".{POINTER}.")) and _owned_temp(p) and remove_owned(p):
            removed.append(name)
    return removed


def next_name(index_dir: Path) -> str:
    seq = max((version_key(p.name)[0] for p in index_dir.glob("v-*")), default=0) + 1
    return f"v-{seq:06d}-{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:8]}"


_FAISS_PREFIX = re.compile(r"^Error in .*? at \S+:\d+: (?:Error: '.*?' failed: )?", re.DOTALL)


def write_error(index_dir: Path, exc: BaseException) -> IndexWriteError:
    """The :class:`IndexWriteError` for an ``OSError`` (or a FAISS ``RuntimeError``) raised
    while writing into ``index_dir``: the reason in one line, without FAISS's source location."""
    if isinstance(exc, OSError):
        reason = exc.strerror or str(exc) or exc.__class__.__name__
        if exc.filename is not None:
            name = Path(os.fsdecode(exc.filename)).name
            reason += " (creating the new version)" if name.startswith(".tmp-") else f" (writing {name})"
    else:
        reason = _FAISS_PREFIX.sub("", str(exc)).strip() or exc.__class__.__name__
        reason = re.sub(r"\S*/(\.tmp-[^/\s]+/)?", "", reason)  # folder names (the index is named already)
    return IndexWriteError(index_dir, " ".join(reason.split()))
