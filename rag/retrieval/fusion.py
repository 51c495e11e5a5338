"""Reciprocal rank fusion (Cormack, Clarke and Büttcher, 2009)."""
from __future__ import annotations

from typing import Callable, Hashable, Iterable, Sequence, TypeVar

T = TypeVar("T")

RRF_K = 60  # the paper's constant: dampens the weight of the very first ranks
DEPTH_PER_PASSAGE = 4  # each ranking goes at least this many times deeper than the passages asked for


def search_depth(k: int, candidates: int) -> int:
    """How deep the dense and keyword rankings go before they are fused, for k passages: the
    settings' `candidates`, or deeper for a large k (the same for every store)."""
    return max(DEPTH_PER_PASSAGE * k, candidates)


def rrf(rankings: Iterable[Sequence[Hashable]], k: int = RRF_K) -> dict[Hashable, float]:
    """Each item's fused score: the sum over rankings of 1 / (k + rank), ranks from 1. Items
    missing from a ranking get nothing from it."""
    fused: dict[Hashable, float] = {}
    for ranking in rankings:
        for rank, item in enumerate(ranking, 1):
            fused[item] = fused.get(item, 0.0) + 1.0 / (k + rank)
    return fused


def first_distinct(ranked: Iterable[T], k: int, text_of: Callable[[T], str]) -> list[T]:
    """The first k items whose text differs from every earlier one's: a passage copied word for
    word (a wire story that two papers ran) is read once, and leaves its place to another."""
    kept, seen = [], set()
    for item in ranked:
        text = text_of(item)
        if text not in seen:
            seen.add(text)
            kept.append(item)
            if len(kept) == k:
                break
    return kept
