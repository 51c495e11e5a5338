"""FAISS as a VectorStore: inner-product search over unit vectors, with caller ids.

The index type follows the size. Below EXACT_BELOW vectors the search is exact (a flat index:
a few ms at 100k). A store saved with more is turned into an inverted-file index (IVF): the
vectors are split into about 2·√n clusters and a question searches the PROBES nearest ones, so
a search at 1M passages reads ~2.4 % of them. eval/scale.py measures its recall@10 against exact
search in the same run. Saved stores are loaded memory-mapped; a store loaded that way is read
from disk and is copied into memory only if it is written to."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Iterable

import numpy as np

from rag.retrieval.vector_store import TIES_SEEN, check_new_ids, register

FILE = "vectors.faiss"
EXACT_BELOW = 100_000  # vectors; from here on a saved store is an IVF index
PROBES = 48  # clusters searched per question (eval/scale.py: recall@10 >= 0.95 at 100k and 1M, with a margin)
TRAINING_POINTS_PER_CLUSTER = 64  # k-means sample: enough for stable clusters, fast at 1M


@register("faiss")
class FaissStore:
    takes_location = False  # it lives in the index folder

    def __init__(self, index, mapped_from: Path | None = None):
        self._index = index  # a faiss.IndexIDMap2 over a flat index, or a faiss.IndexIVFFlat
        self._mapped_from = mapped_from  # the file it is memory-mapped from, if it is
        self.dimension = index.d

    @classmethod
    def create(cls, dimension: int, location: str = "") -> FaissStore:
        import faiss

        if location:
            raise ValueError("the faiss store lives in the index folder: it takes no location")
        return cls(faiss.IndexIDMap2(faiss.IndexFlatIP(dimension)))

    @classmethod
    def release(cls, folder: Path) -> None:
        """Nothing outside the folder to free."""

    @classmethod
    def load(cls, folder: Path, mapped: bool = True) -> FaissStore:
        import faiss

        path = Path(folder) / FILE
        if not path.is_file():
            raise OSError(f"{FILE} is missing")
        index = faiss.read_index(str(path), _mmap_flags(path) if mapped else 0)
        if not isinstance(index, (faiss.IndexIDMap2, faiss.IndexIVFFlat)):
            raise ValueError(f"{FILE} is neither an id-mapped flat index nor an IVF index")
        if mapped and isinstance(index, faiss.IndexIVF):
            # mapped lists start 32 prefetch threads per search by default: 9x the search itself
            faiss.downcast_InvertedLists(index.invlists).prefetch_nthread = 0
        return cls(index, path if mapped else None)

    @property
    def kind(self) -> str:
        """"exact" or "ivf": how a search is done."""
        return "ivf" if self._is_ivf else "exact"

    def __len__(self) -> int:
        return self._index.ntotal

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        self._make_writable()
        ids = np.asarray(ids, dtype=np.int64)
        vectors = np.ascontiguousarray(vectors, dtype=np.float32).reshape(len(ids), self.dimension)
        check_new_ids(ids, lambda new: bool(np.isin(new, self._stored_ids()).any()))
        self._index.add_with_ids(vectors, ids)

    def delete(self, ids: Iterable[int]) -> int:
        self._make_writable()
        return int(self._index.remove_ids(np.asarray(list(ids), dtype=np.int64)))

    def search(self, vector: np.ndarray, k: int, allowed: np.ndarray | None = None) -> list[tuple[int, float]]:
        searchable = len(self) if allowed is None else len(allowed)
        k = min(k, searchable)
        if k < 1:
            return []
        query = np.asarray(vector, dtype=np.float32).reshape(1, -1)
        deeper = min(k + TIES_SEEN, searchable)
        scores, ids = self._index.search(query, deeper, params=self._search_parameters(allowed))
        # FAISS leaves equal scores (copies of one passage) in no set order: by id, as Milvus does
        return sorted(((int(i), float(s)) for i, s in zip(ids[0], scores[0]) if i >= 0), key=lambda hit: (-hit[1], hit[0]))[:k]

    def vectors(self, ids: Iterable[int]) -> np.ndarray:
        ids = np.fromiter(ids, dtype=np.int64)
        if not len(ids):
            return np.zeros((0, self.dimension), dtype=np.float32)
        try:  # one call for all: one call per vector was a second of every update at 50k passages
            return self._index.reconstruct_batch(ids).reshape(len(ids), self.dimension)
        except RuntimeError:
            stored = set(self._stored_ids().tolist())
            missing = next((int(i) for i in ids if int(i) not in stored), None)
            if missing is None:
                raise
            raise KeyError(missing) from None

    def save(self, folder: Path) -> None:
        import faiss

        if not self._is_ivf and len(self) >= EXACT_BELOW:
            self._index = _ivf_from_flat(self._index)
        faiss.write_index(self._index, str(Path(folder) / FILE))

    @property
    def _is_ivf(self) -> bool:
        import faiss

        return isinstance(self._index, faiss.IndexIVF)

    def _search_parameters(self, allowed: np.ndarray | None):
        import faiss

        selector = None if allowed is None else faiss.IDSelectorBatch(np.asarray(allowed, dtype=np.int64))
        if not self._is_ivf:
            return faiss.SearchParameters(sel=selector)
        probes = PROBES
        if allowed is not None:  # a narrow filter leaves few of its ids in the nearest clusters: probe more
            probes = PROBES * math.ceil(len(self) / max(len(allowed), 1))
        return faiss.SearchParametersIVF(sel=selector, nprobe=min(probes, self._index.nlist))

    def _stored_ids(self) -> np.ndarray:
        import faiss

        if not len(self):
            return np.zeros(0, dtype=np.int64)
        if not self._is_ivf:
            return faiss.vector_to_array(self._index.id_map)
        lists = self._index.invlists
        return np.concatenate([faiss.rev_swig_ptr(lists.get_ids(n), lists.list_size(n)).copy()
                               for n in range(self._index.nlist)])

    def _make_writable(self) -> None:
        """A memory-mapped index is read-only: read it into memory before the first write."""
        if self._mapped_from is not None:
            import faiss

            self._index = faiss.read_index(str(self._mapped_from))
            self._mapped_from = None


def _ivf_from_flat(flat):
    """The same vectors and ids in an IVF index, trained on a sample of them."""
    import faiss

    n, dimension = flat.ntotal, flat.d
    vectors = faiss.rev_swig_ptr(faiss.downcast_index(flat.index).get_xb(), n * dimension).reshape(n, dimension)
    ids = faiss.vector_to_array(flat.id_map)
    clusters = max(1, int(2 * math.sqrt(n)))
    ivf = faiss.IndexIVFFlat(faiss.IndexFlatIP(dimension), dimension, clusters, faiss.METRIC_INNER_PRODUCT)
    ivf.set_direct_map_type(faiss.DirectMap.Hashtable)  # vectors by id, and deletes
    sample = np.random.default_rng(0).choice(n, min(n, TRAINING_POINTS_PER_CLUSTER * clusters), replace=False)
    ivf.train(vectors[np.sort(sample)])
    for start in range(0, n, 65_536):  # in slices: no second full copy of the vectors
        ivf.add_with_ids(vectors[start:start + 65_536], ids[start:start + 65_536])
    return ivf


def _mmap_flags(path: Path) -> int:
    """How FAISS can map this file: an IVF's lists with IO_FLAG_MMAP, a flat index's codes with
    IO_FLAG_MMAP_IFC (FAISS >= 1.9); the two do not combine, so the file's type code decides."""
    import faiss

    with path.open("rb") as f:
        ivf = f.read(4) in (b"IwFl", b"IvFl")
    return faiss.IO_FLAG_MMAP if ivf else getattr(faiss, "IO_FLAG_MMAP_IFC", 0)
