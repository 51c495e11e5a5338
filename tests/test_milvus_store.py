"""The store conformance suite on Milvus: Milvus Lite (a local file) here and in CI, or a real
server or cluster with RAG_TEST_MILVUS_URI=milvus://host:19530."""
import os
import time

import pytest

from rag.errors import RagError
from tests.vector_store_suite import VectorStoreSuite

pytest.importorskip("pymilvus", reason="pip install -e '.[milvus]' to test the Milvus store")
pytest.importorskip("milvus_lite", reason="pip install -e '.[milvus]' to test the Milvus store")
from rag.retrieval.milvus_store import POINTER, MilvusStore  # noqa: E402


@pytest.fixture(scope="module")
def location(tmp_path_factory):
    return os.environ.get("RAG_TEST_MILVUS_URI", "milvus:" + str(tmp_path_factory.mktemp("milvus") / "suite.db")).partition(":")[2]


class TestMilvusStore(VectorStoreSuite):
    @pytest.fixture(autouse=True)
    def _where(self, location):
        self.location = location

    def make(self, dimension):
        return MilvusStore.create(dimension, self.location)

    def reload(self, folder):
        return MilvusStore.load(folder)


def test_a_released_build_drops_its_collection(location, tmp_path):
    store = MilvusStore.create(4, location)
    store.save(tmp_path)
    assert (tmp_path / POINTER).is_file()
    MilvusStore.release(tmp_path)
    with pytest.raises(OSError, match="is gone"):
        MilvusStore.load(tmp_path)


def test_an_unreachable_server_is_one_line_within_the_timeout():
    started = time.time()
    with pytest.raises(RagError, match=r"cannot reach Milvus at http://127\.0\.0\.1:9 .*--store faiss"):
        MilvusStore.create(4, "//127.0.0.1:9")
    assert time.time() - started < 15


def test_a_lite_file_must_be_named_db(tmp_path):
    with pytest.raises(RagError, match="must end in .db"):
        MilvusStore.create(4, str(tmp_path / "archive"))


@pytest.mark.integration
def test_the_gold_questions_get_faiss_answers_from_milvus(models, pipeline, tmp_path):
    """Same articles, same models, the vectors in Milvus Lite: the same answers and citations."""
    from rag.assembly import build_pipeline, with_store
    from rag.gold import load_gold
    from tests.conftest import ROOT, SEEDS

    on_milvus = build_pipeline(with_store(models, f"milvus:{tmp_path / 'gold.db'}"), SEEDS, tmp_path / "index",
                               embedder=pipeline.retriever.embedder, reader=pipeline.reader)
    assert on_milvus.retriever.vectors.__class__ is MilvusStore
    differ = []
    for q in load_gold(ROOT / "eval" / "gold.jsonl"):
        a, b = pipeline.ask(q.question), on_milvus.ask(q.question)
        if (a.text, a.citation) != (b.text, b.citation):
            differ.append(q.id)
    assert differ == []


@pytest.mark.integration
def test_rag_ask_and_add_with_a_milvus_store(tmp_path, seeds_copy):
    from tests.conftest import read_source, run_rag

    store = ["--store", f"milvus:{tmp_path / 'archive.db'}", "--index-dir", str(tmp_path / "index"), "--seeds", str(seeds_copy)]
    result = run_rag("ask", "--json", "Who leads the resistance in the Panjshir Valley?", *store)
    assert result.returncode == 0, result.stderr
    import json

    answer = json.loads(result.stdout)
    c = answer["citation"]
    assert read_source(c["doc_id"], seeds_copy)[c["start"]:c["end"]] == answer["answer"]
    extra = tmp_path / "new" / "valley-note.txt"
    extra.parent.mkdir()
    extra.write_text(" date 2021-09-06 The Taliban said they had taken the Panjshir valley on Monday.\n", encoding="utf-8")
    added = run_rag("add", str(extra), *store)
    assert added.returncode == 0 and "1 embedded" in added.stderr, added.stderr
    unreachable = run_rag("ask", "Who?", "--store", "milvus://127.0.0.1:9", "--index-dir", str(tmp_path / "other"), timeout=60)
    assert unreachable.returncode == 1 and "cannot reach Milvus at http://127.0.0.1:9" in unreachable.stderr
    assert unreachable.stderr.strip().splitlines()[-1].startswith("error: cannot reach") and "Traceback" not in unreachable.stderr
