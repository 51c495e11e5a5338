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
        self.monkeypatch = monkeypatch
        self.folder = tmp_path_factory.mktemp("ivf")

    def make(self, dimension):
        filler = np.random.default_rng(1).standard_normal((600, dimension)).astype(np.float32)
        store = make_vector_store("faiss", dimension)
        store.add(np.arange(10**6, 10**6 + 600), filler / np.linalg.norm(filler, axis=1, keepdims=True))
        store.save(self.folder)
        ivf = FaissStore.load(self.folder)
        assert ivf.kind == "ivf"
        ivf.delete(range(10**6, 10**6 + 600))
        self.monkeypatch.setattr(faiss_store, "EXACT_BELOW", 1)  # saved with a few vectors, it stays IVF
        return ivf

    def reload(self, folder):
        loaded = FaissStore.load(folder)
        assert loaded.kind == "ivf"
        return loaded


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


def _folder(path):
    path.mkdir()
    return path


def _spy_on_training(monkeypatch) -> list[int]:
    """The sizes k-means clusters are trained for, from here on."""
    trained = []
    real = faiss_store._trained_ivf
    monkeypatch.setattr(faiss_store, "_trained_ivf", lambda ids, rows: trained.append(len(ids)) or real(ids, rows))
    return trained


def test_an_update_keeps_the_clusters_and_finds_what_exact_search_finds(big, monkeypatch, tmp_path):
    """An update renumbers the passages it keeps: their vectors move to new ids without k-means
    (a minute of every update at 1M passages) and without being assigned to a cluster again."""
    mapped, _, vectors = big
    trained = _spy_on_training(monkeypatch)
    kept = np.random.default_rng(5).permutation(20_000)[:15_000]  # a quarter removed, the rest shuffled
    updated = mapped.renumbered(kept, np.arange(15_000))
    new = clustered(22_000)[20_000:]  # more on the same subjects
    updated.add(np.arange(15_000, 17_000), new)
    updated.save(_folder(tmp_path / "saved"))
    loaded = FaissStore.load(tmp_path / "saved")
    assert trained == [] and loaded.kind == "ivf" and len(loaded) == 17_000
    assert (loaded.clusters.trained_for, loaded.clusters.added_since) == (20_000, 2_000)
    everything = np.concatenate([vectors[kept], new])
    np.testing.assert_allclose(loaded.vectors([0, 14_999, 15_000]), everything[[0, 14_999, 15_000]], atol=1e-6)
    overlap = [len({i for i, _ in loaded.search(q, 10)} & set(np.argsort(-(everything @ q))[:10].tolist())) / 10
               for q in clustered(100, seed=7)]
    assert np.mean(overlap) >= 0.95
    assert len(FaissStore.load(tmp_path)) == 20_000  # the stored index is as it was


def test_the_clusters_are_trained_again_once_the_vectors_added_since_outnumber_half_of_them(big, monkeypatch, tmp_path):
    mapped, _, _ = big
    trained = _spy_on_training(monkeypatch)
    updated = mapped.renumbered(np.arange(20_000), np.arange(20_000))
    more = clustered(31_000)[20_000:]  # on the same subjects
    updated.add(np.arange(20_000, 30_000), more[:10_000])  # half of 20,000: not yet
    updated.save(_folder(tmp_path / "half"))
    assert trained == [] and FaissStore.load(tmp_path / "half").clusters.added_since == 10_000
    updated.add(np.array([30_000]), more[10_000:10_001])
    updated.save(_folder(tmp_path / "more"))
    assert trained == [30_001]
    clusters = FaissStore.load(tmp_path / "more").clusters
    assert (clusters.trained_for, clusters.added_since, clusters.strangers) == (30_001, 0, 0)


def test_the_clusters_are_trained_again_once_vectors_on_new_subjects_would_fill_one(big, monkeypatch, tmp_path):
    """Vectors far from every centre (new subjects) are searched for with lower recall until
    the clusters are trained again; a few of them are not worth a minute of k-means at 1M."""
    mapped, _, _ = big
    trained = _spy_on_training(monkeypatch)
    updated = mapped.renumbered(np.arange(20_000), np.arange(20_000))
    other_subjects = clustered(1_000, seed=11)  # other centres
    updated.add(np.arange(20_000, 20_040), other_subjects[:40])  # fewer than a cluster holds (20,000 / 282)
    updated.save(_folder(tmp_path / "few"))
    assert trained == [] and updated.clusters.strangers >= 36
    updated.add(np.arange(20_040, 21_000), other_subjects[40:])
    updated.save(_folder(tmp_path / "many"))
    assert trained == [21_000]
    loaded = FaissStore.load(tmp_path / "many")
    everything = np.concatenate([clustered(20_000), other_subjects])
    overlap = [len({i for i, _ in loaded.search(q, 10)} & set(np.argsort(-(everything @ q))[:10].tolist())) / 10
               for q in clustered(100, seed=11)[::-1]]
    assert np.mean(overlap) >= 0.95


def test_an_index_saved_before_its_clusters_were_recorded_trains_them_at_its_first_update(big, monkeypatch, tmp_path):
    mapped, _, _ = big
    (tmp_path / faiss_store.CLUSTERS_FILE).unlink()
    trained = _spy_on_training(monkeypatch)
    older = FaissStore.load(tmp_path)
    assert older.clusters.fit is None
    updated = older.renumbered(np.arange(19_999), np.arange(19_999))
    updated.save(_folder(tmp_path / "unchanged"))
    assert trained == []  # nothing added: nothing to place
    updated.add(np.array([19_999]), clustered(20_000)[-1:])
    updated.save(_folder(tmp_path / "updated"))
    assert trained == [20_000] and FaissStore.load(tmp_path / "updated").clusters.fit is not None


def test_an_ivf_index_that_shrinks_below_the_threshold_is_saved_exact(big, tmp_path):
    mapped, _, vectors = big
    smaller = mapped.renumbered(np.arange(9_000), np.arange(9_000))
    smaller.save(_folder(tmp_path / "smaller"))
    loaded = FaissStore.load(tmp_path / "smaller")
    assert loaded.kind == "exact" and loaded.clusters is None and len(loaded) == 9_000
    assert not (tmp_path / "smaller" / faiss_store.CLUSTERS_FILE).exists()
    np.testing.assert_allclose(loaded.vectors([8_999]), vectors[8_999:9_000], atol=1e-6)


@pytest.mark.parametrize("written", ['{"trained_for": 20000, "lists": 282, "fit": "0.5", "added_since": 0, "strangers": 0}',
                                     '{"trained_for": 20000, "lists": 282, "fit": 0.5, "added_since": -1, "strangers": 0}',
                                     '{"trained_for": 20000, "fit": 0.5}', '[]'])
def test_a_clusters_record_rag_did_not_write_is_refused_on_loading(big, tmp_path, written):
    """Read as it is, a wrong type would fail the next update halfway, not the load (which the
    index treats as a damaged index, built again)."""
    (tmp_path / faiss_store.CLUSTERS_FILE).write_text(written, encoding="utf-8")
    with pytest.raises(ValueError):
        FaissStore.load(tmp_path)


def test_a_negative_new_id_is_refused():
    """-1 is FAISS's "no hit": a vector stored under it would never be found."""
    store = make_vector_store("faiss", 32)
    store.add(np.arange(3), clustered(3))
    with pytest.raises(ValueError):
        store.renumbered(np.arange(3), np.array([-1, 0, 1]))
