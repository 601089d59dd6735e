"""One settings home (:mod:`rag.settings`) and one module reading the environment
(:mod:`rag.environment`); the store's fault points call a hook, never an environment variable."""

from __future__ import annotations

import ast
import json
from dataclasses import asdict, fields
from pathlib import Path

import pytest

import rag
from rag import environment
from rag.index import store
from rag.index.store import FAULT_STEPS, current_version, fault_point
from rag.settings import IndexSettings, ReaderSettings, Settings, SpanAnswerSettings, WindowSettings, index_settings

ROOT = Path(__file__).resolve().parent.parent

# What every manifest written so far records under "settings" (format 1): the index part, flat.
OLD_MANIFEST_SETTINGS = {"chunk_chars": 300, "chunk_overlap": 60, "max_file_bytes": 20971520, "mode": "hybrid",
                         "dense_weight": 0.5, "visibility_floor": 0.8, "visibility_full": 0.97, "candidates": 100,
                         "batch_size": 32}


def test_settings_are_composed_of_one_dataclass_per_part() -> None:
    s = Settings()
    assert (s.index, s.reader, s.span, s.windows) == (IndexSettings(), ReaderSettings(), SpanAnswerSettings(),
                                                      WindowSettings())
    assert rag.Settings is Settings and rag.IndexSettings is IndexSettings


def test_the_parts_are_the_classes_their_users_import() -> None:
    from rag.answer import reader, span_answer, span_features

    assert reader.ReaderSettings is ReaderSettings
    assert span_answer.SpanAnswerSettings is SpanAnswerSettings
    assert span_features.WindowSettings is WindowSettings
    assert (span_features.MAX_LENGTH, span_features.MAX_QUESTION_TOKENS, span_features.STRIDE) == (256, 48, 96)


def test_no_settings_dataclass_outside_the_settings_home() -> None:
    # the span model's shape (SpanModelConfig) belongs to the model, not to the settings
    found = []
    for path in sorted((ROOT / "rag").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (isinstance(node, ast.ClassDef) and node.name.endswith(("Settings", "Config"))
                    and node.name != "SpanModelConfig" and path.name != "settings.py"):
                found.append(f"{path.relative_to(ROOT)}: {node.name}")
    assert not found


def test_defaults_unchanged() -> None:
    # the approximate-index settings came later: a manifest without them reads as today's defaults
    assert asdict(IndexSettings()) == {**OLD_MANIFEST_SETTINGS, "ann_min_chunks": 20_000, "ann_recall": 0.99}
    assert IndexSettings.from_dict(OLD_MANIFEST_SETTINGS) == IndexSettings()
    assert asdict(ReaderSettings()) == {"min_coverage": 0.15, "max_missing": 0.3, "min_dense": 0.78,
                                        "support_ratio": 0.9, "w_cov": 0.65, "w_chunk": 0.3, "w_near": 0.0,
                                        "w_rank": 0.2, "w_novelty": 0.1, "w_name": 0.1, "w_kind": 0.08,
                                        "kind_penalty": 0.1, "typed_kinds": ("number", "date", "ordinal"),
                                        "pinyin_gate": True}
    assert asdict(SpanAnswerSettings()) == {"passages": 3, "override_gap": 6.0, "alternatives": 2, "span_weight": 0.3,
                                            "who_is_roles": True}
    assert WindowSettings().to_dict() == {"max_length": 256, "max_question_tokens": 48, "stride": 96}


def test_from_dict_reads_an_old_manifest_and_its_own_layout() -> None:
    old = dict(OLD_MANIFEST_SETTINGS, chunk_chars=120, mode="bm25")
    s = Settings.from_dict(old)
    assert s.index == IndexSettings(chunk_chars=120, mode="bm25") == IndexSettings.from_dict(old)
    assert (s.reader, s.span, s.windows) == (ReaderSettings(), SpanAnswerSettings(), WindowSettings())
    assert Settings.from_dict({}) == Settings()
    assert Settings.from_dict({"chunk_chars": 99, "unknown": 1}).index.chunk_chars == 99
    custom = Settings().with_overrides(chunk_chars=200, min_dense=0.5, passages=4, stride=64)
    data = custom.to_dict()
    assert set(data) == {"index", "reader", "span", "windows"}
    assert json.loads(json.dumps(data)) == data and Settings.from_dict(data) == custom


def test_with_overrides_changes_the_part_that_has_the_field() -> None:
    s = Settings().with_overrides(chunk_chars=120, chunk_overlap=None, min_dense=0.5, span_weight=0.0)
    assert s.index == IndexSettings(chunk_chars=120)
    assert s.reader == ReaderSettings(min_dense=0.5) and s.span == SpanAnswerSettings(span_weight=0.0)
    with pytest.raises(TypeError, match="no_such"):
        Settings().with_overrides(no_such=1)
    names = [f.name for part in (IndexSettings, ReaderSettings, SpanAnswerSettings, WindowSettings)
             for f in fields(part)]
    assert len(names) == len(set(names))  # one part per name
    assert index_settings(s) == s.index and index_settings(s.index) is s.index and index_settings(None) is None


def test_the_manifest_records_the_index_part_in_its_old_layout(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    text = "The old bridge was built in 1890. It is 300 metres long."
    (tmp_path / "docs" / "a.txt").write_text(text, encoding="utf-8")
    index = tmp_path / "index"
    # a whole Settings is accepted; its index part is what the index records
    rag.IndexWriter(index, model="test-hash", settings=Settings().with_overrides(chunk_chars=120)).sync(
        [tmp_path / "docs"])
    m = json.loads((current_version(index) / "manifest.json").read_text(encoding="utf-8"))
    assert m["settings"] == dict(OLD_MANIFEST_SETTINGS, chunk_chars=120, ann_min_chunks=20_000, ann_recall=0.99)
    qa = rag.load(index)
    assert qa.settings == Settings(index=IndexSettings(chunk_chars=120))
    assert qa.retriever.settings is qa.settings.index and qa.reader.settings is qa.settings.reader


# --------------------------------------------------------------------------- the environment


def _reads_environment(path: Path) -> list[int]:
    lines = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Attribute) and node.attr in ("environ", "getenv", "environb", "putenv", "unsetenv"):
            lines.append(node.lineno)
        elif isinstance(node, ast.ImportFrom) and node.module == "os" and any(
                a.name in ("environ", "getenv") for a in node.names):
            lines.append(node.lineno)
    return lines


def test_only_rag_environment_reads_the_environment() -> None:
    found = [f"{p.relative_to(ROOT)}:{line}" for p in sorted((ROOT / "rag").rglob("*.py"))
             if p.name != "environment.py" for line in _reads_environment(p)]
    assert not found, "read the environment through rag.environment:\n" + "\n".join(found)


def test_environment_reads_at_call_time(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(environment.READER_DIR, raising=False)
    assert environment.reader_dir() is None
    monkeypatch.setenv(environment.READER_DIR, "")
    assert environment.reader_dir() is None
    monkeypatch.setenv(environment.READER_DIR, str(tmp_path))
    assert environment.reader_dir() == tmp_path
    monkeypatch.setenv(environment.PRECISION, "  ")
    assert environment.precision() is None
    monkeypatch.setenv(environment.PRECISION, " bf16 ")
    assert environment.precision() == "bf16"
    monkeypatch.delenv(environment.HUB_OFFLINE, raising=False)
    assert environment.hub_offline()
    monkeypatch.setenv(environment.HUB_OFFLINE, "0")
    assert not environment.hub_offline()
    monkeypatch.setenv(environment.CACHE_DIR, str(tmp_path / "c"))
    assert environment.cache_dir() == tmp_path / "c"
    assert environment.child_environment({"X_RAG_TEST": "1"})["X_RAG_TEST"] == "1"


def test_defaults_never_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOKENIZERS_PARALLELISM", "true")
    monkeypatch.delenv("HF_HUB_DISABLE_TELEMETRY", raising=False)
    environment.set_offline_defaults()
    assert environment.variables()["TOKENIZERS_PARALLELISM"] == "true"
    assert environment.variables()["HF_HUB_DISABLE_TELEMETRY"] == "1"


# --------------------------------------------------------------------------- fault injection


def test_fault_points_call_the_installed_hook(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[str] = []
    monkeypatch.setattr(store, "fault_hook", seen.append)
    fault_point("after-manifest")
    assert seen == ["after-manifest"]
    monkeypatch.setattr(store, "fault_hook", None)
    fault_point("after-manifest")  # nothing installed: nothing happens
    assert seen == ["after-manifest"]


def test_a_writer_passes_every_fault_step_and_no_variable_kills_it(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("RAG_FAULT_STEP", "start")  # the variable of old: read by nothing now
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.txt").write_text("The city library opens at 9 am on weekdays.", encoding="utf-8")
    index = tmp_path / "index"
    rag.IndexWriter(index, model="test-hash").sync([tmp_path / "docs"])  # two versions: the next one prunes
    seen: list[str] = []
    monkeypatch.setattr(store, "fault_hook", seen.append)
    (tmp_path / "docs" / "b.txt").write_text("The museum opens at 10 am on Sundays.", encoding="utf-8")
    rag.IndexWriter(index, model="test-hash").sync([tmp_path / "docs"])
    (tmp_path / "docs" / "c.txt").write_text("The gallery opens at 11 am.", encoding="utf-8")
    rag.IndexWriter(index, model="test-hash").sync([tmp_path / "docs"])
    assert set(seen) == set(FAULT_STEPS)
