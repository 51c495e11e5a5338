"""The store conformance suite on Milvus: Milvus Lite (a local file) here and in CI, or a real
server or cluster with RAG_TEST_MILVUS_URI=milvus://host:19530."""
import os
import re
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


@pytest.mark.parametrize("location", ["", "//", "///"])
def test_a_store_that_says_no_place_is_asked_where_milvus_is(location):
    with pytest.raises(RagError, match="^say where Milvus is: --store milvus:./archive.db"):
        MilvusStore.create(4, location)


@pytest.mark.parametrize("spec, said", [("faiss:", "faiss takes no location after the colon: say just faiss"),
                                        ("faiss:./x", "faiss takes no location"), ("bogus", "unknown vector store 'bogus'")])
def test_a_store_spec_that_names_no_store_rag_has_is_refused_naming_where_it_came_from(spec, said, tmp_path):
    from rag.assembly import is_milvus, with_store
    from rag.config import load_models_config
    from tests.conftest import ROOT

    with pytest.raises(RagError, match="^" + re.escape(f"--store (or RAG_STORE): vector_store = '{spec}' is not valid: {said}")):
        with_store(load_models_config(ROOT / "models.toml"), spec)
    assert is_milvus(with_store(load_models_config(ROOT / "models.toml"), "faiss")) is False
    models = tmp_path / "models.toml"  # in models.toml: said as it is read, naming the file and the table
    models.write_text((ROOT / "models.toml").read_text(encoding="utf-8") + f'\n[retrieval]\nvector_store = "{spec}"\n',
                      encoding="utf-8")
    with pytest.raises(RagError, match="^" + re.escape(f"{models}: [retrieval] vector_store = '{spec}' is not valid: {said}")):
        load_models_config(models)


def test_a_lite_file_must_be_named_db(tmp_path):
    with pytest.raises(RagError, match="must end in .db"):
        MilvusStore.create(4, str(tmp_path / "archive"))


def test_keyword_hits_are_best_first_with_copies_by_id(location):
    import numpy as np

    store = MilvusStore.create(4, location)
    copies = [7, 3, 9, 1, 5]  # one wire story's passage in five articles, added out of order
    texts = ["the president visited Kabul on Monday"] * len(copies) + ["Kabul"]
    store.add(np.array([*copies, 2], dtype=np.int64), np.eye(4, dtype=np.float32)[[0] * 6],
              [{"text": text} for text in texts])
    hits = store.keyword_hits("Kabul", 3, "", [])
    assert [hit["id"] for hit in hits] == [2, 1, 3]  # the short passage scores higher; Milvus Lite negates BM25
    assert hits[0]["score"] > hits[1]["score"] == hits[2]["score"] > 0
