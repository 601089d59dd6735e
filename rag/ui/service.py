"""The loaded index behind the UI: one :class:`rag.QA` object, swapped atomically.

* The model and index are loaded once (:meth:`QAService.load`), not per question.
* Questions run concurrently against whichever QA object is current when they start.
* Adding documents holds a write lock (one index write at a time; the store's writer lock also
  keeps other processes out), saves the uploads into the managed folder, adds them with
  :meth:`rag.IndexWriter.add` (only new passages are embedded; the new version is published
  atomically), loads it, and only then swaps it in. On any failure the saved uploads are removed
  again and the working index and QA object stay as they were.
* Removing a document: an upload is removed from the index and its saved file deleted; a file
  of the documents folder is *excluded* instead (:mod:`rag.index.exclusions`: recorded beside the
  index, then removed from it; the file is kept, and the start-up sync does not add it back).
  Restoring it clears the record and adds the file again. The record is changed first and put
  back when the index write fails, so the record always says what the next sync will do.
* The index is a folder or a ``postgresql://`` (``postgres://``) URL (:func:`rag.index.folder_store.index_location`);
  everything above works the same on both, except excluding: the record of excluded documents
  is a file beside a folder index, and a database index keeps none (the writer's sync reads it
  from a folder only). On a database the chat therefore offers only uploads for removal; a
  file of the documents folder leaves the index when it leaves the folder (at the next start).
  Messages name a database by its URL with any password masked (:func:`rag.index.folder_store.shown_location`).
* Progress is the library's one callback, ``(stage, done, total)`` (:class:`rag.types.Progress`):
  the writer's stages, and around them :data:`STAGES` of the service's own. The chat's
  progress bar adapts it (:func:`rag.ui.handlers.progress_bar`).

Library code: nothing here prints.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rag.encoder.e5_runtime import E5Embedder
from rag.index.embedding import Embedder, load_embedder
from rag.index.exclusions import Exclusion, exclude, read_exclusions, restore
from rag.index.folder_store import index_location, shown_location
from rag.index.writer import IndexWriter
from rag.errors import DocumentError, RagError
from rag.pipeline import QA, clean_file, load
from rag.settings import K_DEFAULT
from rag.answer.conversation import MAX_TURNS, Turn
from rag.types import Answer, CleaningReport, Progress

from rag.ui.uploads import RefusedUpload, SavedUpload, Upload, UploadBatch, remove_saved, save_uploads

#: The stages :meth:`QAService.add_uploads` reports around the index writer's (read, chunk,
#: embed, bm25, write), in order; each is one step (``done`` 0 of 1, "done" 1 of 1).
STAGES = ("check", "model", "load", "done")


class ServiceNotReady(RagError):
    """The index is still loading, or loading it failed."""


#: why a database index cannot exclude a file of the documents folder
_NO_RECORD = ("a database index keeps no record of excluded documents (that record is a file beside a folder "
              "index), so the next start would index it again: remove the file from the documents folder "
              "instead, and the next start drops it from the index")


@dataclass(frozen=True)
class DocumentOverview:
    source: str
    chunks: int
    chars: int
    encoding: str
    report: CleaningReport


@dataclass(frozen=True)
class IndexOverview:
    index_dir: str
    version: str
    model: str
    created: str
    build_seconds: float
    chunks: int
    mode: str
    documents: tuple[DocumentOverview, ...]


@dataclass(frozen=True)
class AddResult:
    """What adding a batch of uploads did. ``error`` is set when the batch failed as a whole
    (the working index is then unchanged)."""

    added: tuple[SavedUpload, ...] = ()
    refused: tuple[RefusedUpload, ...] = ()
    error: str | None = None
    documents: int = 0
    chunks: int = 0
    seconds: float = 0.0
    warnings: tuple[str, ...] = field(default=())

    @property
    def ok(self) -> bool:
        return self.error is None and bool(self.added)

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "added": [{"name": s.name, "saved_as": s.path.name, "sha256": s.sha256, "encoding": s.encoding,
                       "chars": s.chars} for s in self.added],
            "refused": [asdict(r) for r in self.refused],
            "error": self.error,
            "documents": self.documents,
            "chunks": self.chunks,
            "seconds": round(self.seconds, 3),
            "warnings": list(self.warnings),
        }


@dataclass(frozen=True)
class RemoveResult:
    """What removing one document did; ``error`` says why nothing changed. ``excluded``: a file
    of the documents folder, kept on disk and recorded as excluded (an upload's file is deleted)."""

    source: str
    ok: bool
    error: str | None = None
    documents: int = 0
    chunks: int = 0
    excluded: bool = False


@dataclass(frozen=True)
class RestoreResult:
    """What restoring an excluded document did; ``error`` says why nothing changed, ``note``
    what else the user should know (the file is gone from the folder: only the record was cleared)."""

    source: str
    ok: bool
    error: str | None = None
    documents: int = 0
    chunks: int = 0
    note: str | None = None


@dataclass(frozen=True)
class ExcludedDocument:
    """A documents-folder file taken out of the index: since when (UTC), and whether the
    file is still in the folder."""

    source: str
    excluded_at: str
    present: bool


def _silent(stage: str, done: int, total: int) -> None:
    return None


def _reason(exc: BaseException) -> str:
    return str(exc) if isinstance(exc, RagError) else f"{exc.__class__.__name__}: {exc}"


def _warm_up(qa: QA) -> None:
    """First questions pay for lazy initialisation (tokenizer dictionaries, model graph)."""
    for q in ("前三季度增长多少？", "How many are there?"):
        try:
            qa.ask(q, k=3)
        except RagError:
            pass


class QAService:
    """Holds the current :class:`QA` and serialises index writes."""

    def __init__(self, index_dir: str | os.PathLike[str], docs_dir: str | os.PathLike[str],
                 uploads_dir: str | os.PathLike[str], *, model: str | None = None) -> None:
        #: the index: a folder (a Path) or a database URL (the str as given, :func:`index_location`)
        self.index_dir: Path | str = index_location(index_dir)
        #: the index as messages name it (a database URL's password masked)
        self.location = shown_location(self.index_dir)
        self.docs_dir = Path(docs_dir)
        self.uploads_dir = Path(uploads_dir)
        self.model = model
        self._qa: QA | None = None
        self._error: str | None = None
        self._ready = threading.Event()
        self._swap_lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._writer_embedder: Embedder | None = None

    @property
    def index_folder(self) -> Path | None:
        """The index folder; None for a database index (which keeps no record of excluded documents)."""
        return self.index_dir if isinstance(self.index_dir, Path) else None

    # -- loading -------------------------------------------------------------------------

    def source_paths(self) -> list[Path]:
        """The folders the index is built from: the documents and, once it exists, the uploads."""
        paths = [self.docs_dir]
        if self.uploads_dir.is_dir():
            paths.append(self.uploads_dir)
        return paths

    def load(self, qa: QA | None = None) -> QA:
        """Load the index (or take ``qa``), warm it up and make it current."""
        try:
            qa = qa if qa is not None else load(self.index_dir)
            _warm_up(qa)
        except RagError as exc:
            self._error = str(exc)
            self._ready.set()
            raise
        except Exception as exc:  # noqa: BLE001 - shown to the user in words, not as a traceback
            self._error = f"cannot load the index: {exc.__class__.__name__}: {exc}"
            self._ready.set()
            raise ServiceNotReady(self._error) from exc
        self._swap(qa)
        return qa

    def load_in_background(self) -> threading.Thread:
        def target() -> None:
            try:
                self.load()
            except RagError:
                pass  # kept in self._error and shown in the UI

        thread = threading.Thread(target=target, name="rag-ui-load", daemon=True)
        thread.start()
        return thread

    def _swap(self, qa: QA) -> None:
        with self._swap_lock:
            old, self._qa = self._qa, qa
            self._error = None
        self._ready.set()
        if old is not None and old is not qa:
            old.close()  # a database index's connection; a request still on it reconnects

    @property
    def ready(self) -> bool:
        return self._ready.is_set() and self._qa is not None

    @property
    def error(self) -> str | None:
        return self._error

    def current(self, timeout: float = 300.0) -> QA:
        """The current QA object, waiting for the first load to finish."""
        if not self._ready.wait(timeout):
            raise ServiceNotReady("the index is still loading; try again in a moment")
        with self._swap_lock:
            qa = self._qa
        if qa is None:
            raise ServiceNotReady(f"the index could not be loaded: {self._error or 'unknown error'}")
        return qa

    # -- questions -----------------------------------------------------------------------

    def ask(self, question: str, k: int = K_DEFAULT, mode: str | None = None) -> Answer:
        """:meth:`rag.QA.ask` on the current index (which refuses a bad ``k`` or ``mode``)."""
        return self.current().ask(question, k=k, mode=mode)

    def converse(self, question: str, turns: Sequence[Turn] = (), k: int = K_DEFAULT,
                 mode: str | None = None) -> tuple[Answer, tuple[Turn, ...]]:
        """:meth:`ask` as the next turn of a conversation (``turns``: the earlier ones); returns
        the answer and the turns with this one."""
        conv = self.current().conversation(turns)
        answer = conv.ask(question, k=k, mode=mode)
        return answer, conv.turns

    def ask_after(self, question: str, history: Sequence[str], k: int = K_DEFAULT, mode: str | None = None) -> Answer:
        """:meth:`ask` after the earlier questions ``history`` (oldest first; the last
        :data:`rag.answer.conversation.MAX_TURNS` count), which are asked again in order."""
        conv = self.current().conversation()
        for earlier in list(history)[-MAX_TURNS:]:
            conv.ask(earlier, k=k, mode=mode)
        return conv.ask(question, k=k, mode=mode)

    def document_text(self, source: str) -> str:
        return self.current().document(source).text

    def overview(self) -> IndexOverview:
        qa = self.current()
        m = qa.manifest
        docs = []
        for rec in m.documents:
            if getattr(rec, "duplicate_of", None):
                continue  # same content as another document, indexed once under that name
            doc = qa.document(rec.source)
            docs.append(DocumentOverview(rec.source, rec.chunks, len(doc.text), rec.encoding, doc.report))
        return IndexOverview(
            index_dir=self.location, version=qa.version_path.name, model=m.model, created=m.created,
            build_seconds=m.build_seconds, chunks=m.chunks, mode=qa.settings.index.mode, documents=tuple(docs),
        )

    # -- adding documents ----------------------------------------------------------------

    def add_uploads(self, uploads: Sequence[Upload], progress: Progress | None = None) -> AddResult:
        """Save the acceptable uploads, rebuild, load, and swap the new index in."""
        report: Progress = progress or _silent
        with self._write_lock:
            t0 = time.perf_counter()
            qa = self.current()
            report("check", 0, 1)
            known = {r.sha256: r.source for r in qa.manifest.documents}
            batch = save_uploads(uploads, self.uploads_dir, known=known)
            batch = self._drop_unusable(batch)
            if not batch.saved:
                return AddResult(refused=batch.refused, documents=len(qa.sources()),
                                 chunks=qa.chunk_count, seconds=time.perf_counter() - t0)
            try:
                new_qa, warnings, late = self._rebuild(qa, batch, report)
            except Exception as exc:  # noqa: BLE001 - any failure leaves the index as it was
                remove_saved(batch)
                reason = str(exc) if isinstance(exc, RagError) else f"{exc.__class__.__name__}: {exc}"
                return AddResult(refused=batch.refused, error=f"the index was not changed: {reason}",
                                 documents=len(qa.sources()), chunks=qa.chunk_count,
                                 seconds=time.perf_counter() - t0)
            self._swap(new_qa)
            report("done", 1, 1)
            added = tuple(s for s in batch.saved if s.path.exists())  # those the build refused were removed
            return AddResult(added=added, refused=batch.refused + late, documents=len(new_qa.sources()),
                             chunks=new_qa.chunk_count, seconds=time.perf_counter() - t0, warnings=warnings)

    def removable(self) -> list[str]:
        """The documents the chat may remove: every indexed one. Uploads (files in the uploads
        folder, :meth:`is_upload`) are deleted; the documents folder's files are excluded and kept.
        On a database index, which keeps no record of excluded documents, only the uploads."""
        sources = list(self.current().sources())
        return sources if self.index_folder is not None else [s for s in sources if self.is_upload(s)]

    def is_upload(self, source: str) -> bool:
        """``source`` is a file the chat saved in the uploads folder."""
        return self._upload_file(source) is not None

    def _upload_file(self, source: str) -> Path | None:
        if not self.uploads_dir.is_dir():
            return None
        path = self.uploads_dir / Path(source).name
        try:  # the source names that very file (sources are paths, relative to the working folder or absolute)
            same = Path(source).resolve() == path.resolve() and path.resolve().parent == self.uploads_dir.resolve()
        except (OSError, ValueError):
            return None
        return path if same and path.is_file() else None

    def _docs_file(self, source: str) -> Path | None:
        """The file of the documents folder that ``source`` names, if it is one and is there."""
        try:
            path = Path(source)
            path.resolve().relative_to(self.docs_dir.resolve())
        except (OSError, ValueError, RuntimeError):
            return None
        return path if path.is_file() else None

    def remove_document(self, source: str) -> RemoveResult:
        """Take a document out of the index; the chat switches to the new index once it is
        loaded. An upload's saved file is deleted; a file of the documents folder is kept and
        recorded as excluded, so that the next start does not index it again (:meth:`restore_document`
        undoes it). A failure leaves the index, the record and the file as they were."""
        with self._write_lock:
            qa = self.current()
            if source not in qa.sources():
                return RemoveResult(source, False, f"{source} is not in the index")
            if len(qa.sources()) == 1:
                return RemoveResult(source, False, f"{source} is the only document in the index: add another one "
                                                   "before removing it")
            path = self._upload_file(source)
            if path is None:
                folder = self.index_folder
                if folder is None:
                    return RemoveResult(source, False, f"{source} was not removed: {_NO_RECORD}")
                return self._exclude(qa, folder, source)
            try:
                IndexWriter(self.index_dir, embedder=qa.embedder).remove([source])
                new_qa = load(self.index_dir, embedder=qa.embedder)
            except RagError as exc:
                return RemoveResult(source, False, f"the index was not changed: {exc}")
            self._swap(new_qa)
            path.unlink(missing_ok=True)
            return RemoveResult(source, True, None, len(new_qa.sources()), new_qa.chunk_count)

    def _exclude(self, qa: QA, folder: Path, source: str) -> RemoveResult:
        sha = next((r.sha256 for r in qa.manifest.documents if r.source == source), "")
        try:
            exclude(folder, [Exclusion(source, sha)])
        except RagError as exc:
            return RemoveResult(source, False, f"the index was not changed: {exc}")
        try:
            IndexWriter(self.index_dir, embedder=qa.embedder).remove([source])
            new_qa = load(self.index_dir, embedder=qa.embedder)
        except Exception as exc:  # noqa: BLE001 - any failure: the record is put back, the index is as it was
            return RemoveResult(source, False, f"the index was not changed: {_reason(exc)}"
                                               f"{self._unrecord(folder, source)}")
        self._swap(new_qa)
        return RemoveResult(source, True, None, len(new_qa.sources()), new_qa.chunk_count, excluded=True)

    def _unrecord(self, folder: Path, source: str) -> str:
        """Take ``source`` off the record again after a failed removal; what went wrong, if anything."""
        try:
            restore(folder, [source])
        except RagError as exc:
            return f" (and the record of excluded documents could not be put back: {exc})"
        return ""

    def excluded(self) -> tuple[ExcludedDocument, ...]:
        """The documents-folder files taken out of the index, oldest first (none on a database
        index, which keeps no record). Raises :class:`rag.index.exclusions.ExclusionRecordError`
        when the record is unreadable."""
        folder = self.index_folder
        if folder is None:
            return ()
        return tuple(ExcludedDocument(e.source, e.excluded_at, self._docs_file(e.source) is not None
                                      or Path(e.source).is_file())
                     for e in read_exclusions(folder))

    def restore_document(self, source: str, progress: Progress | None = None) -> RestoreResult:
        """Index an excluded file of the documents folder again and clear its record; the chat
        switches to the new index once it is loaded. When the file is no longer there only
        the record is cleared. A failure leaves the index and the record as they were."""
        report: Progress = progress or _silent
        with self._write_lock:
            qa = self.current()
            folder = self.index_folder
            if folder is None:
                return RestoreResult(source, False, f"{source} is not excluded: a database index keeps no record "
                                                    "of excluded documents")
            entry = next((e for e in read_exclusions(folder) if e.source == source), None)
            if entry is None:
                return RestoreResult(source, False, f"{source} is not excluded")
            path = self._docs_file(source)
            if path is None and Path(source).is_file():
                path = Path(source)
            restore(folder, [source])
            if path is None:
                return RestoreResult(source, True, None, len(qa.sources()), qa.chunk_count,
                                     note=f"{source} is no longer in the documents folder: nothing was indexed, "
                                          "the record is cleared")
            try:
                result = IndexWriter(self.index_dir, embedder=self._writer(qa, report), progress=report).add([path])
                if result.errors:
                    raise result.errors[0]
                report("load", 0, 1)
                new_qa = load(self.index_dir, embedder=qa.embedder)
            except Exception as exc:  # noqa: BLE001 - any failure: it stays excluded, the index as it was
                try:
                    exclude(folder, [entry])
                except RagError as again:
                    return RestoreResult(source, False, f"the index was not changed: {_reason(exc)} (and the record "
                                                        f"of excluded documents could not be put back: {again})")
                return RestoreResult(source, False, f"the index was not changed, {source} stays excluded: "
                                                    f"{_reason(exc)}")
            self._swap(new_qa)
            report("done", 1, 1)
            return RestoreResult(source, True, None, len(new_qa.sources()), new_qa.chunk_count)

    def _drop_unusable(self, batch: UploadBatch) -> UploadBatch:
        """Refuse saved files that clean down to nothing (all markup, widgets or stuffing)."""
        kept: list[SavedUpload] = []
        refused = list(batch.refused)
        for s in batch.saved:
            reason: str | None = None
            try:
                if not clean_file(s.path).text.strip():
                    reason = "no text is left after cleaning (only markup, widgets or whitespace)"
            except DocumentError as exc:
                reason = exc.reason
            if reason:
                s.path.unlink(missing_ok=True)
                refused.append(RefusedUpload(s.name, reason))
            else:
                kept.append(s)
        return UploadBatch(tuple(kept), tuple(refused))

    def _writer(self, qa: QA, report: Progress) -> Embedder:
        """The model index writes embed with: sentence-transformers, as for every build. The
        QA's own embedder when it is one; for the packaged e5, which answers on its plain-torch
        runtime, sentence-transformers is loaded on the first upload and kept."""
        if not isinstance(qa.embedder, E5Embedder):
            return qa.embedder
        if self._writer_embedder is None:
            report("model", 0, 1)
            self._writer_embedder = load_embedder(qa.embedder.name, precision=qa.manifest.precision)
        return self._writer_embedder

    def _rebuild(
        self, qa: QA, batch: UploadBatch, report: Progress
    ) -> tuple[QA, tuple[str, ...], tuple[RefusedUpload, ...]]:
        writer = IndexWriter(self.index_dir, embedder=self._writer(qa, report), progress=report)
        result = writer.add([s.path for s in batch.saved])
        saved = {s.path.resolve(): s for s in batch.saved}
        late: list[RefusedUpload] = []
        warnings: list[str] = list(result.warnings)
        for e in result.errors:
            s = saved.get(Path(e.path).resolve())
            if s is None:
                warnings.append(str(e))
            else:  # refused by the build itself (not indexed): forget the saved copy
                s.path.unlink(missing_ok=True)
                late.append(RefusedUpload(s.name, e.reason))
        report("load", 0, 1)
        new_qa = load(self.index_dir, embedder=qa.embedder)
        _warm_up(new_qa)
        return new_qa, tuple(warnings), tuple(late)
