import numpy as np
import pytest

from rag.retrieval import FaissStore, faiss_store, make_vector_store
from tests.vector_store_suite import VectorStoreSuite


class TestFaissStore(VectorStoreSuite):
    """Exact search: what an index below faiss_store.EXACT_BELOW passages uses."""

    def make(self, dimension):
        return make_vector_store("faiss", dimension)

    def reload(self, folder):
        return FaissStore.load(folder)


class TestFaissIvfStore(VectorStoreSuite):
    """The same behaviour from the IVF index a big archive gets, loaded memory-mapped."""

    @pytest.fixture(autouse=True)
    def _small_threshold(self, monkeypatch, tmp_path_factory):
        monkeypatch.setattr(faiss_store, "EXACT_BELOW", 500)
        self.folder = tmp_path_factory.mktemp("ivf")

    def make(self, dimension):
        filler = np.random.default_rng(1).standard_normal((600, dimension)).astype(np.float32)
        store = make_vector_store("faiss", dimension)
        store.add(np.arange(10**6, 10**6 + 600), filler / np.linalg.norm(filler, axis=1, keepdims=True))
        store.save(self.folder)
        ivf = FaissStore.load(self.folder)
        assert ivf.kind == "ivf"
        ivf.delete(range(10**6, 10**6 + 600))
        return ivf

    def reload(self, folder):
        return FaissStore.load(folder)


def clustered(n, dimension=32, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((50, dimension))
    rows = centres[rng.integers(0, 50, n)] + 0.7 * rng.standard_normal((n, dimension))
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture
def big(monkeypatch, tmp_path):
    """20k clustered vectors saved past a lowered threshold: an IVF store, and its exact twin."""
    monkeypatch.setattr(faiss_store, "EXACT_BELOW", 10_000)
    vectors = clustered(20_000)
    exact = make_vector_store("faiss", vectors.shape[1])
    exact.add(np.arange(len(vectors)), vectors)
    exact.save(tmp_path)
    return FaissStore.load(tmp_path), FaissStore.load(tmp_path, mapped=False), vectors


def test_a_store_saved_past_the_threshold_is_ivf_and_keeps_recall(big):
    ivf, _, vectors = big
    exact = make_vector_store("faiss", vectors.shape[1])
    exact.add(np.arange(len(vectors)), vectors)
    assert ivf.kind == "ivf" and exact.kind == "exact" and len(ivf) == len(vectors)
    queries = clustered(100, seed=7)
    overlap = [len({i for i, _ in ivf.search(q, 10)} & {i for i, _ in exact.search(q, 10)}) / 10 for q in queries]
    assert np.mean(overlap) >= 0.95


def test_a_narrow_filter_on_ivf_still_finds_the_best_of_the_allowed(big):
    ivf, _, vectors = big
    allowed = np.arange(0, 20_000, 97)  # about 1 in 100 vectors, scattered over every cluster
    for query in clustered(20, seed=3):
        best = allowed[np.argsort(-(vectors[allowed] @ query))[:5]]
        assert [i for i, _ in ivf.search(query, 5, allowed)] == best.tolist()


def test_a_mapped_store_is_copied_into_memory_before_a_write(big, tmp_path):
    mapped, _, vectors = big
    assert mapped.delete([0, 1]) == 2 and len(mapped) == len(vectors) - 2
    assert len(FaissStore.load(tmp_path)) == len(vectors)  # the saved file is untouched
    np.testing.assert_allclose(mapped.vectors([5]), vectors[5:6], atol=1e-6)
