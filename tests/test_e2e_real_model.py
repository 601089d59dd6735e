"""End to end with the real packaged model: build the seed index, ask, check answers and offsets."""

import json
from pathlib import Path

import pytest

import rag
from rag.normalize import fold

pytestmark = pytest.mark.slow

QUESTIONS = [
    ("前三季度规模以上工业增加值同比增长多少？", "5.8%"),
    ("國家技術轉移區域中心有幾個？", "12个"),
    ("今年以来平台助企融资新增多少？", "2900亿元"),
    ("哪四个行业对工业生产增长的贡献率接近一半？", "电子、有色、化工、汽车"),
]


@pytest.fixture(scope="module")
def real_qa(tmp_path_factory, seed_path: Path):
    index = tmp_path_factory.mktemp("real-index")
    info = rag.build_index([seed_path], index_dir=index)
    assert info.chunks > 0 and info.model
    return rag.load(index)


@pytest.mark.parametrize("question,gold", QUESTIONS)
def test_real_model_answers_with_citations(real_qa, question, gold):
    ans = real_qa.ask(question)
    assert ans.found
    assert fold(gold) in fold(ans.text)
    for c in ans.citations:
        assert real_qa.document(c.source).text[c.start:c.end] == c.quote


@pytest.mark.parametrize("question", ["今年全国GDP同比增长多少？", "灵璧县属于哪个省？"])
def test_real_model_refuses(real_qa, question):
    ans = real_qa.ask(question)
    assert not ans.found and not ans.citations


def test_manifest_records_real_model(real_qa):
    m = json.loads((real_qa.version_path / "manifest.json").read_text(encoding="utf-8"))
    assert m["model"] == real_qa.embedder.name and m["dimension"] == real_qa.embedder.dimension


def test_chat_upload_embeds_with_sentence_transformers(tmp_path: Path, seed_path: Path) -> None:
    """The chat answers on the plain-torch e5 runtime; an upload is embedded with
    sentence-transformers like every build, and then answered from."""
    import shutil

    from rag.encoder.e5_runtime import E5Embedder
    from rag.index.embedding import SentenceTransformerEmbedder
    from rag.ui.service import QAService
    from rag.ui.uploads import Upload

    docs = tmp_path / "docs"
    docs.mkdir()
    shutil.copy(seed_path, docs / seed_path.name)
    rag.build_index([docs], index_dir=tmp_path / "index")
    svc = QAService(tmp_path / "index", docs, tmp_path / "uploads")
    svc.load()
    assert isinstance(svc.current().embedder, E5Embedder)
    note = tmp_path / "museum.txt"
    note.write_text("The city museum was founded in 1887 by Anna Berg. It opens at 10 am on Saturdays.", encoding="utf-8")
    result = svc.add_uploads([Upload("museum.txt", note)])
    assert result.ok, result
    assert isinstance(svc._writer_embedder, SentenceTransformerEmbedder)
    assert isinstance(svc.current().embedder, E5Embedder)
    ans = svc.ask("Who founded the city museum?")
    assert ans.found and "Anna Berg" in ans.text
