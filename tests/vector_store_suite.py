"""The behaviour every VectorStore must have. A backend's test module subclasses
VectorStoreSuite and says how to make and reload its store (see test_faiss_store.py); the next
backend reuses every test here unchanged (the Haystack way of testing document stores)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rag.retrieval import VectorStore

DIM = 8


def unit(rows) -> np.ndarray:
    rows = np.asarray(rows, dtype=np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def basis(i: int) -> np.ndarray:
    return np.eye(DIM, dtype=np.float32)[i]


class VectorStoreSuite:
    def make(self, dimension: int) -> VectorStore:
        raise NotImplementedError

    def reload(self, folder: Path) -> VectorStore:
        raise NotImplementedError

    @pytest.fixture
    def store(self) -> VectorStore:
        store = self.make(DIM)
        store.add(np.array([10, 20, 30], dtype=np.int64), unit([basis(0), basis(1), basis(0) + basis(1)]))
        return store

    def test_it_follows_the_protocol(self):
        store = self.make(DIM)
        assert isinstance(store, VectorStore) and store.dimension == DIM

    def test_an_empty_store_finds_nothing(self):
        store = self.make(DIM)
        assert len(store) == 0 and store.search(basis(0), 5) == []

    def test_search_gives_caller_ids_best_first_with_cosine_scores(self, store):
        hits = store.search(basis(0), 3)
        assert [i for i, _ in hits] == [10, 30, 20]
        assert [round(s, 4) for _, s in hits] == [1.0, round(float(np.sqrt(0.5)), 4), 0.0]

    def test_asking_for_more_than_is_stored_gives_all(self, store):
        assert len(store.search(basis(1), 50)) == len(store) == 3

    def test_an_id_cannot_be_added_twice(self, store):
        with pytest.raises(ValueError):
            store.add(np.array([20], dtype=np.int64), unit([basis(2)]))

    def test_an_id_given_twice_in_one_add_is_refused_and_nothing_stored(self, store):
        with pytest.raises(ValueError):
            store.add(np.array([40, 40], dtype=np.int64), unit([basis(2), basis(3)]))
        assert len(store) == 3 and 40 not in [i for i, _ in store.search(basis(2), 5)]

    def test_equal_scores_come_back_by_id(self):
        store = self.make(DIM)
        copies = [7, 3, 9, 1, 5]  # one passage stored five times (wire copies), added out of order
        store.add(np.array([*copies, 2], dtype=np.int64), unit([basis(4)] * 5 + [basis(5)]))
        assert [i for i, _ in store.search(basis(4), 3)] == [1, 3, 5]
        assert [i for i, _ in store.search(basis(4), 6)] == [1, 3, 5, 7, 9, 2]

    def test_deleted_ids_are_gone_and_unknown_ones_ignored(self, store):
        assert store.delete([10, 999]) == 1
        assert len(store) == 2 and 10 not in [i for i, _ in store.search(basis(0), 3)]
        store.add(np.array([10], dtype=np.int64), unit([basis(3)]))  # an id can be used again after a delete
        assert store.search(basis(3), 1)[0][0] == 10

    def test_vectors_come_back_by_id(self, store):
        np.testing.assert_allclose(store.vectors([20, 10]), np.stack([basis(1), basis(0)]), atol=1e-6)
        with pytest.raises(KeyError):
            store.vectors([999])

    def test_a_renumbered_copy_holds_the_chosen_vectors_under_their_new_ids(self, store):
        copy = store.renumbered(np.array([30, 10]), np.array([0, 1]))
        assert len(copy) == 2 and copy.dimension == DIM
        np.testing.assert_allclose(copy.vectors([1, 0]), unit([basis(0), basis(0) + basis(1)]), atol=1e-6)
        assert [i for i, _ in copy.search(basis(0), 3)] == [1, 0]
        assert [i for i, _ in store.search(basis(0), 3)] == [10, 30, 20]  # the store is as it was

    def test_a_renumbering_naming_an_id_twice_or_one_not_stored_is_refused(self, store):
        with pytest.raises(ValueError):
            store.renumbered(np.array([10, 20]), np.array([0, 0]))
        with pytest.raises(ValueError):
            store.renumbered(np.array([10, 10]), np.array([0, 1]))
        with pytest.raises(KeyError):
            store.renumbered(np.array([10, 999]), np.array([0, 1]))

    def test_a_saved_store_loads_back_the_same(self, store, tmp_path):
        store.delete([20])
        store.save(tmp_path)
        loaded = self.reload(tmp_path)
        assert len(loaded) == 2 and loaded.dimension == DIM
        query = unit([basis(0) + 0.5 * basis(1)])[0]
        assert loaded.search(query, 3) == store.search(query, 3)

    def test_a_search_can_be_limited_to_some_ids(self, store):
        assert [i for i, _ in store.search(basis(0), 3, allowed=np.array([20, 30]))] == [30, 20]
        assert [i for i, _ in store.search(basis(0), 1, allowed=np.array([20, 30]))] == [30]
        assert store.search(basis(0), 3, allowed=np.array([], dtype=np.int64)) == []
