"""FAISS as a VectorStore: inner-product search over unit vectors, with caller ids.

The index type follows the size. Below EXACT_BELOW vectors the search is exact (a flat index:
a few ms at 100k). A store saved with more is turned into an inverted-file index (IVF): the
vectors are split into about 2·√n clusters and a question searches the PROBES nearest ones, so
a search at 1M passages reads ~2.4 % of them. eval/scale.py measures its recall@10 against exact
search in the same run. Saved stores are loaded memory-mapped; a store loaded that way is read
from disk and is copied into memory only if it is written to.

The clusters outlive updates: an update copies the stored index's lists under the passages' new
numbers (`renumbered`) and assigns the new vectors to the clusters as they are; training them
again made an update at 1M passages take 33 s instead of 3 (eval/ivf_update.py). They are
trained again when the added vectors outnumber half of those they were trained for, or when
enough of them fit no cluster well (new subjects: Clusters.outgrown; the script measures both)."""
from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from rag.retrieval.vector_store import TIES_SEEN, check_new_ids, check_renumbering, register

FILE = "vectors.faiss"
CLUSTERS_FILE = "vectors-clusters.json"  # an IVF index's Clusters (absent from one saved before they were kept)
EXACT_BELOW = 100_000  # vectors; from here on a saved store is an IVF index
PROBES = 48  # clusters searched per question (eval/scale.py: recall@10 >= 0.95 at 100k and 1M, with a margin)
TRAINING_POINTS_PER_CLUSTER = 64  # k-means sample: enough for stable clusters, fast at 1M
NEW_SHARE_BEFORE_TRAINING = 0.5  # of the vectors the clusters were trained for; see Clusters.outgrown
FIT_QUANTILE = 0.9  # Clusters.fit: the similarity to the nearest centre that this share of vectors k-means did not train on reach
FIT_SAMPLE = 20_000  # vectors it is measured on: those k-means did not train on, where there are
MIN_FIT_SAMPLE = 1_000  # enough of them


@dataclasses.dataclass(frozen=True)
class Clusters:
    """What an IVF index's k-means clusters were trained for, and how well what was added since fits them."""

    trained_for: int  # vectors in the index when they were trained
    lists: int  # how many clusters
    fit: float | None  # the similarity to its nearest centre that 9 in 10 of the vectors k-means did not train on reached (None: not recorded)
    added_since: int = 0  # vectors assigned to them as they were, since
    strangers: int = 0  # of those, how many are less close to their nearest centre than `fit`

    def outgrown(self) -> bool:
        """Whether to train them again: once the vectors added since outnumber half of those they
        were trained for, or once the added vectors that fit them worse than 1 in 10 of theirs
        did (beyond that 1 in 10) would fill a cluster of their own. New subjects are what such
        vectors are; searches for them lost recall@10 (0.95 against 0.97 and 0.99) in eval/ivf_update.py."""
        if self.fit is None:  # saved before this was kept: trained again at the first update, as every update did
            return self.added_since > 0
        unplaced = self.strangers - (1 - FIT_QUANTILE) * self.added_since
        return self.added_since > NEW_SHARE_BEFORE_TRAINING * self.trained_for or unplaced > self.trained_for / self.lists

    @classmethod
    def from_json(cls, text: str) -> Clusters:
        """As save wrote it (ValueError otherwise: a wrong type would fail a later update, not the load)."""
        fields = json.loads(text)
        counts = ("trained_for", "lists", "added_since", "strangers")
        if (not isinstance(fields, dict) or set(fields) != {*counts, "fit"}
                or not all(type(fields[name]) is int and fields[name] >= 0 for name in counts)
                or not (fields["fit"] is None or type(fields["fit"]) is float)):
            raise ValueError(f"{CLUSTERS_FILE} is not what rag writes")
        return cls(**fields)

    def after_adding(self, count: int, strangers: int) -> Clusters:
        return dataclasses.replace(self, added_since=self.added_since + count, strangers=self.strangers + strangers)


@register("faiss")
class FaissStore:
    takes_location = False  # it lives in the index folder

    def __init__(self, index, mapped_from: Path | None = None, clusters: Clusters | None = None):
        self._index = index  # a faiss.IndexIDMap2 over a flat index, or a faiss.IndexIVFFlat
        self._mapped_from = mapped_from  # the file it is memory-mapped from, if it is
        self.dimension = index.d
        self.clusters = (clusters or Clusters(index.ntotal, index.nlist, fit=None)) if self._is_ivf else None

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
        clusters = None
        if isinstance(index, faiss.IndexIVF):
            if mapped:  # mapped lists start 32 prefetch threads per search by default: 9x the search itself
                faiss.downcast_InvertedLists(index.invlists).prefetch_nthread = 0
            if (Path(folder) / CLUSTERS_FILE).is_file():
                clusters = Clusters.from_json((Path(folder) / CLUSTERS_FILE).read_text(encoding="utf-8"))
        return cls(index, path if mapped else None, clusters)

    @property
    def kind(self) -> str:
        """"exact" or "ivf": how a search is done."""
        return "ivf" if self._is_ivf else "exact"

    def __len__(self) -> int:
        return self._index.ntotal

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        self._make_writable()
        ids = np.ascontiguousarray(ids, dtype=np.int64)  # add_core reads it through a pointer
        vectors = np.ascontiguousarray(vectors, dtype=np.float32).reshape(len(ids), self.dimension)
        check_new_ids(ids, lambda new: bool(np.isin(new, self._stored_ids()).any()))
        if not self._is_ivf:
            self._index.add_with_ids(vectors, ids)
            return
        import faiss

        # each vector's nearest centre, searched once: it assigns the vector and says how well it fits
        nearest, centre = self._index.quantizer.search(vectors, 1)
        assigned = np.ascontiguousarray(centre[:, 0])
        self._index.add_core(len(ids), faiss.swig_ptr(vectors), faiss.swig_ptr(ids), faiss.swig_ptr(assigned))
        if self.clusters is not None:
            self.clusters = self.clusters.after_adding(len(ids), self._strangers(nearest[:, 0]))

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

    def renumbered(self, old_ids: np.ndarray, new_ids: np.ndarray) -> FaissStore:
        """A new store of the vectors stored under `old_ids`, each under the matching new id (the
        others left out); this one is left as it is. An IVF index's clusters are kept, and no vector
        is assigned to them again: its lists are copied, their ids renamed."""
        old_ids, new_ids = check_renumbering(old_ids, new_ids)
        if not self._is_ivf:
            copy = FaissStore.create(self.dimension)
            copy.add(new_ids, self.vectors(old_ids))
            return copy
        index = _renumbered_ivf(self._index, old_ids, new_ids)
        if index.ntotal != len(old_ids):
            raise KeyError(int(np.setdiff1d(old_ids, self._stored_ids())[0]))
        return FaissStore(index, clusters=self.clusters)

    def save(self, folder: Path) -> None:
        import faiss

        self._fit_index_to_size()
        faiss.write_index(self._index, str(Path(folder) / FILE))
        if self.clusters is not None:
            (Path(folder) / CLUSTERS_FILE).write_text(json.dumps(dataclasses.asdict(self.clusters)), encoding="utf-8")

    def _fit_index_to_size(self) -> None:
        """Exact below EXACT_BELOW vectors; from there on IVF, its clusters trained again when outgrown."""
        import faiss

        if self._is_ivf and len(self) < EXACT_BELOW:
            ids, rows = self._everything()
            self._index = faiss.IndexIDMap2(faiss.IndexFlatIP(self.dimension))
            self._index.add_with_ids(rows(np.arange(len(ids))), ids)
            self.clusters = None
        elif len(self) >= EXACT_BELOW and (not self._is_ivf or self.clusters.outgrown()):
            self._index, self.clusters = _trained_ivf(*self._everything())
        else:
            return
        self._mapped_from = None

    def _strangers(self, nearest: np.ndarray) -> int:
        """How many vectors, by their similarity to their `nearest` centre, fit less than Clusters.fit."""
        if self.clusters.fit is None:
            return 0
        return int((nearest < self.clusters.fit).sum())

    def _everything(self) -> tuple[np.ndarray, Callable[[np.ndarray], np.ndarray]]:
        """Every stored id, and what reads the vectors of some of them (by position in those ids):
        a part at a time, never a second copy of them all (1.5 GB at 1M)."""
        import faiss

        if not self._is_ivf:
            n = len(self)
            stored = faiss.rev_swig_ptr(faiss.downcast_index(self._index.index).get_xb(), n * self.dimension)
            return faiss.vector_to_array(self._index.id_map), stored.reshape(n, self.dimension).__getitem__
        ids, index = self._stored_ids(), self._index  # this index's, even once self._index is its successor
        return ids, lambda at: index.reconstruct_batch(ids[at]).reshape(len(at), self.dimension)

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


def _trained_ivf(ids: np.ndarray, rows: Callable[[np.ndarray], np.ndarray]) -> tuple[object, Clusters]:
    """The vectors of these ids (`rows` reads them by position) in an IVF index, its clusters
    trained on a sample of them."""
    import faiss

    n, dimension = len(ids), rows(np.arange(1)).shape[1]
    clusters = max(1, int(2 * math.sqrt(n)))
    ivf = faiss.IndexIVFFlat(faiss.IndexFlatIP(dimension), dimension, clusters, faiss.METRIC_INNER_PRODUCT)
    ivf.set_direct_map_type(faiss.DirectMap.Hashtable)  # vectors by id, and deletes
    rng = np.random.default_rng(0)
    sample = np.sort(rng.choice(n, min(n, TRAINING_POINTS_PER_CLUSTER * clusters), replace=False))
    ivf.train(rows(sample))
    for start in range(0, n, 65_536):  # in slices: no second full copy of the vectors
        ivf.add_with_ids(rows(np.arange(start, min(n, start + 65_536))), ids[start:start + 65_536])
    # the fit of vectors k-means did not see, as later ones will be (those it saw sit closer to its centres)
    unseen = np.setdiff1d(np.arange(n), sample)
    measured = unseen if len(unseen) >= MIN_FIT_SAMPLE else np.arange(n)
    nearest, _ = ivf.quantizer.search(rows(np.sort(rng.choice(measured, min(len(measured), FIT_SAMPLE), replace=False))), 1)
    return ivf, Clusters(n, clusters, fit=float(np.quantile(nearest[:, 0], 1 - FIT_QUANTILE)))


def _renumbered_ivf(ivf, old_ids: np.ndarray, new_ids: np.ndarray):
    """A copy of `ivf` with the same clusters, holding the entries of `old_ids` under `new_ids`
    (those it does not hold are missing from it: the caller checks the count)."""
    import faiss

    order = np.argsort(old_ids)
    known, renamed = old_ids[order], new_ids[order]
    copy = faiss.IndexIVFFlat(faiss.clone_index(ivf.quantizer), ivf.d, ivf.nlist, ivf.metric_type)
    lists, width = ivf.invlists, ivf.code_size
    for cluster in range(ivf.nlist if len(known) else 0):
        count = lists.list_size(cluster)
        if not count:
            continue
        ids = faiss.rev_swig_ptr(lists.get_ids(cluster), count)
        at = np.searchsorted(known, ids).clip(max=len(known) - 1)
        kept = known[at] == ids
        if kept.any():
            codes = np.ascontiguousarray(faiss.rev_swig_ptr(lists.get_codes(cluster), count * width).reshape(count, width)[kept])
            kept_ids = np.ascontiguousarray(renamed[at[kept]])
            copy.invlists.add_entries(cluster, len(kept_ids), faiss.swig_ptr(kept_ids), faiss.swig_ptr(codes))
            copy.ntotal += len(kept_ids)
    copy.set_direct_map_type(faiss.DirectMap.Hashtable)  # built from the lists: vectors by id, and deletes
    return copy


def _mmap_flags(path: Path) -> int:
    """How FAISS can map this file: an IVF's lists with IO_FLAG_MMAP, a flat index's codes with
    IO_FLAG_MMAP_IFC (FAISS >= 1.9); the two do not combine, so the file's type code decides."""
    import faiss

    with path.open("rb") as f:
        ivf = f.read(4) in (b"IwFl", b"IvFl")
    return faiss.IO_FLAG_MMAP if ivf else getattr(faiss, "IO_FLAG_MMAP_IFC", 0)
