"""FAISS as a VectorStore: exact inner-product search over unit vectors, with caller ids."""
from __future__ import annotations

from pathlib import Path
from typing import Iterable

import numpy as np

from rag.retrieval.vector_store import register

FILE = "vectors.faiss"


@register("faiss")
class FaissStore:
    def __init__(self, index):
        self._index = index  # a faiss.IndexIDMap2 (it can give vectors back by id)
        self.dimension = index.d

    @classmethod
    def create(cls, dimension: int) -> FaissStore:
        import faiss

        return cls(faiss.IndexIDMap2(faiss.IndexFlatIP(dimension)))

    @classmethod
    def load(cls, folder: Path) -> FaissStore:
        import faiss

        path = Path(folder) / FILE
        if not path.is_file():
            raise OSError(f"{FILE} is missing")
        index = faiss.read_index(str(path))
        if not isinstance(index, faiss.IndexIDMap2):
            raise ValueError(f"{FILE} is not an id-mapped index")
        return cls(index)

    def __len__(self) -> int:
        return self._index.ntotal

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        ids = np.asarray(ids, dtype=np.int64)
        vectors = np.ascontiguousarray(vectors, dtype=np.float32).reshape(len(ids), self.dimension)
        if len(ids) and self._known(ids).any():
            raise ValueError("some ids are already stored")
        self._index.add_with_ids(vectors, ids)

    def delete(self, ids: Iterable[int]) -> int:
        return int(self._index.remove_ids(np.asarray(list(ids), dtype=np.int64)))

    def search(self, vector: np.ndarray, k: int, allowed: np.ndarray | None = None) -> list[tuple[int, float]]:
        import faiss

        k = min(k, len(self) if allowed is None else len(allowed))
        if k < 1:
            return []
        params = None
        if allowed is not None:
            params = faiss.SearchParameters(sel=faiss.IDSelectorBatch(np.asarray(allowed, dtype=np.int64)))
        scores, ids = self._index.search(np.asarray(vector, dtype=np.float32).reshape(1, -1), k, params=params)
        return [(int(i), float(s)) for i, s in zip(ids[0], scores[0]) if i >= 0]

    def vectors(self, ids: Iterable[int]) -> np.ndarray:
        rows = []
        for i in ids:
            try:
                rows.append(self._index.reconstruct(int(i)))
            except RuntimeError:
                raise KeyError(i) from None
        return np.array(rows, dtype=np.float32).reshape(len(rows), self.dimension)

    def save(self, folder: Path) -> None:
        import faiss

        faiss.write_index(self._index, str(Path(folder) / FILE))

    def _known(self, ids: np.ndarray) -> np.ndarray:
        import faiss

        stored = faiss.vector_to_array(self._index.id_map) if len(self) else np.zeros(0, dtype=np.int64)
        return np.isin(ids, stored)
