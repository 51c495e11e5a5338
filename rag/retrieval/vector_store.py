"""What every vector backend offers: a small protocol, and the factory that picks one by name.

Vectors are unit length and scored by inner product (cosine). Each vector has an integer id
chosen by the caller (the passage's number in the index), so deletes and later adds keep ids."""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterable, Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class VectorStore(Protocol):
    dimension: int

    def __len__(self) -> int:
        """How many vectors are stored."""

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Store `vectors` (n × dimension, float32) under `ids` (n distinct int64, none already
        stored; ValueError otherwise, and nothing is stored)."""

    def delete(self, ids: Iterable[int]) -> int:
        """Remove these ids (unknown ones are ignored); returns how many were removed."""

    def search(self, vector: np.ndarray, k: int, allowed: np.ndarray | None = None) -> list[tuple[int, float]]:
        """The k best (id, score) pairs, best first (equal scores by id); fewer when fewer are stored. With
        `allowed`, only those ids are searched (the filter is part of the search, not applied after it)."""

    def vectors(self, ids: Iterable[int]) -> np.ndarray:
        """The stored vectors of these ids, one row each (KeyError for an unknown id)."""

    def renumbered(self, old_ids: np.ndarray, new_ids: np.ndarray) -> VectorStore:
        """A new store of the vectors stored under `old_ids`, each under the matching `new_ids`,
        without the others; this store is left as it is (KeyError for an unknown old id,
        ValueError for an id named twice). An update keeps the unchanged passages' vectors so."""

    def save(self, folder: Path) -> None:
        """Write the store into `folder` (which exists and is empty of its files); a store that
        keeps its vectors elsewhere (a server) writes there where they are."""


TIES_SEEN = 16  # hits a backend searches past k, so that equal scores at the cut are ordered by id too


def check_new_ids(ids: np.ndarray, stored: Callable[[np.ndarray], bool]) -> None:
    """The protocol's rule for `add`: ids distinct, and none of them `stored` already."""
    if len(np.unique(ids)) != len(ids):
        raise ValueError("an id is given twice")
    if len(ids) and stored(ids):
        raise ValueError("some ids are already stored")


def check_renumbering(old_ids, new_ids) -> tuple[np.ndarray, np.ndarray]:
    """The protocol's rule for `renumbered`: one new id for each old one, no id named twice."""
    old_ids, new_ids = np.asarray(old_ids, dtype=np.int64), np.asarray(new_ids, dtype=np.int64)
    if len(old_ids) != len(new_ids):
        raise ValueError(f"{len(old_ids)} stored ids, {len(new_ids)} new ones")
    for ids in (old_ids, new_ids):
        if len(np.unique(ids)) != len(ids):
            raise ValueError("an id is given twice")
    if len(new_ids) and new_ids.min() < 0:  # FAISS's mark of "no hit": such a vector is never found
        raise ValueError("an id is below 0")
    return old_ids, new_ids


# name -> class with .create(dimension, location), .load(folder) and .release(folder): the last
# frees what a saved store keeps outside its folder, before the folder is deleted; .takes_location
# says whether a spec may name where it lives ("milvus:./archive.db")
VECTOR_STORES: dict[str, Callable[..., VectorStore]] = {}


def parse_store(spec: str) -> tuple[str, str]:
    """"faiss" -> ("faiss", ""); "milvus:./archive.db" -> ("milvus", "./archive.db"); the name
    must be a known backend, and a location only given to one that takes it (ValueError otherwise:
    "faiss:" would be another spelling of "faiss", and an index made with one stale for the other)."""
    name, colon, location = spec.partition(":")
    if name not in VECTOR_STORES:
        raise ValueError(f"unknown vector store {name!r} (known: {', '.join(VECTOR_STORES)})")
    if colon and not getattr(VECTOR_STORES[name], "takes_location", False):
        raise ValueError(f"{name} takes no location after the colon: say just {name}")
    return name, location


def backend(spec: str):
    return VECTOR_STORES[parse_store(spec)[0]]


def make_vector_store(spec: str, dimension: int) -> VectorStore:
    name, location = parse_store(spec)
    return VECTOR_STORES[name].create(dimension, location)


def register(name: str):
    def decorate(cls):
        VECTOR_STORES[name] = cls
        return cls

    return decorate
