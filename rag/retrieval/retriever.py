"""Question in, ranked passages out: the question's embedding, dense and keyword rankings,
fused by reciprocal rank."""
from __future__ import annotations

from typing import Mapping

import numpy as np

from rag.dates import DateRange
from rag.retrieval.fusion import first_distinct, rrf, search_depth
from rag.retrieval.keyword import KeywordIndex
from rag.retrieval.vector_store import VectorStore
from rag.schema import Document, Passage, RetrievedPassage


class Retriever:
    def __init__(self, embedder, passages: list[Passage | None], vectors: VectorStore, keywords: KeywordIndex,
                 documents: Mapping[str, Document], rrf_k: int, candidates: int, searchable: np.ndarray | None = None):
        self.embedder = embedder
        self.passages = passages  # passage i has vector id i and keyword row i
        # the ids of the passages that may be found (None: every one): an index out of date that
        # answers as it is leaves out those of articles edited or removed since (None in `passages`);
        # where none is left out (articles were only added), a search needs no filter, which costs time
        self.searchable = None if searchable is not None and len(searchable) == len(passages) else searchable
        self.vectors = vectors
        self.keywords = keywords
        self.rrf_k = rrf_k
        self.candidates = candidates  # how deep each ranking goes before fusion
        self.documents = documents  # for the passages' dates
        self._passage_dates = None  # each passage's article date, made on the first dated question

    @property
    def passage_count(self) -> int:
        return len(self.passages) if self.searchable is None else len(self.searchable)

    def retrieve(self, question: str, k: int, dates: DateRange | None = None) -> list[RetrievedPassage]:
        """The k best passages (of articles dated within `dates`, when given)."""
        allowed = self._allowed(dates)
        if allowed is not None and not len(allowed):
            return []
        query = self.embedder.encode([question])[0]
        searchable = len(self.passages) if allowed is None else len(allowed)
        depth = min(searchable, search_depth(k, self.candidates))
        while True:
            dense = dict(self.vectors.search(query, depth, allowed))
            keyword_ids, bm25 = self.keywords.ranking(question, depth, allowed)
            fused = rrf([list(dense), keyword_ids], self.rrf_k)
            best = first_distinct(sorted(fused, key=lambda i: (-fused[i], i)), k, lambda i: self.passages[i].text)
            if len(best) == k or depth == searchable:
                break
            depth = min(searchable, 2 * depth)  # copies took the places: search deeper for k distinct passages
        missing = [i for i in best if i not in dense]
        if missing:  # a keyword-only hit still needs its cosine as evidence
            dense.update(zip(missing, (self.vectors.vectors(missing) @ np.asarray(query).ravel()).tolist()))
        return [RetrievedPassage(self.passages[i], fused[i], float(dense[i]), float(bm25[i])) for i in best]

    def _allowed(self, dates: DateRange | None) -> np.ndarray | None:
        """Ids of the passages a search may return: the searchable ones of articles dated within
        `dates`, when given (a passage left out of the search is taken as undated, so no range
        holds it); None when it may return any."""
        return self._passages_dated(dates) if dates else self.searchable

    def _passages_dated(self, dates: DateRange) -> np.ndarray:
        """Ids of the passages whose article's date is in the range (undated articles never are)."""
        if self._passage_dates is None:  # a passage left out of the search (None) is taken as undated
            self._passage_dates = np.array(["" if p is None else self.documents[p.doc_id].date or "" for p in self.passages])
        return np.flatnonzero(dates.holds_each(self._passage_dates))
