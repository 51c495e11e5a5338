"""Question in, ranked passages out, from a Milvus archive: the date filter is a Milvus filter
expression, the keyword ranking is Milvus's BM25, and the two rankings are fused by the
project's rrf() ("rrf", the default: see the README for the measurement) or by Milvus's own
RRF ranker in one hybrid search ("milvus")."""
from __future__ import annotations

import numpy as np

from rag.dates import DateRange
from rag.retrieval.fusion import first_distinct, rrf, search_depth
from rag.retrieval.milvus_store import MILVUS_MAX_LIMIT, MilvusFailed, day_number
from rag.schema import Passage, RetrievedPassage

FUSIONS = ("rrf", "milvus")
HIT_FIELDS = ["doc_id", "start", "end", "version"]


def date_filter(dates: DateRange | None) -> str:
    """DateRange.holds_each as a Milvus filter expression over the passages' day numbers
    (undated articles, day 0, never match one)."""
    if dates is None:
        return ""
    clauses = ["day > 0"]
    if dates.since:
        clauses.append(f"day >= {day_number(dates.since)}")
    if dates.until:
        clauses.append(f"day <= {day_number(dates.until)}")
    return " and ".join(clauses)


class MilvusRetriever:
    def __init__(self, embedder, archive, articles, rrf_k: int, candidates: int, fusion: str = "rrf"):
        if fusion not in FUSIONS:
            raise ValueError(f"fusion must be one of {FUSIONS}")
        self.embedder = embedder
        self.archive = archive
        self.articles = articles  # rag.milvus_archive.ArchiveArticles: the texts passages are sliced from
        self.rrf_k = rrf_k
        self.candidates = candidates
        self.fusion = fusion

    @property
    def passage_count(self) -> int:
        return self.archive.count()[1]

    def retrieve(self, question: str, k: int, dates: DateRange | None = None) -> list[RetrievedPassage]:
        try:
            return self._retrieve(question, k, dates)
        except MilvusFailed:
            if not self.archive.follow_alias():  # not rebuilt meanwhile (by another machine): it stands
                raise
            return self._retrieve(question, k, dates)

    def _retrieve(self, question: str, k: int, dates: DateRange | None) -> list[RetrievedPassage]:
        query = np.asarray(self.embedder.encode([question])[0], dtype=np.float32)
        depth = search_depth(k, self.candidates)
        where = date_filter(dates)
        store = self.archive.passages
        if self.fusion == "milvus":  # fused inside Milvus: rows of versions no reader sees still take part
            # depth, not k, fused hits: those of hidden versions and copies leave their places to the next
            fused = store.hybrid_hits(query, question, depth, depth, self.rrf_k, where, HIT_FIELDS)
            ranked = [(hit, hit["score"]) for hit in fused]
            dense, keyword = {}, {}
            markers = self.archive.markers({hit["doc_id"] for hit in fused})
        else:
            markers = {}
            dense = self._present_ranking(lambda d: store.dense_hits(query, d, where, HIT_FIELDS), depth, markers)
            keyword = self._present_ranking(lambda d: store.keyword_hits(question, d, where, HIT_FIELDS), depth, markers)
            scores = rrf([list(dense), list(keyword)], self.rrf_k)
            hits = dense | keyword
            ranked = [(hits[i], scores[i]) for i in sorted(scores, key=lambda i: (-scores[i], i))]
        passages = self._present(ranked, k, markers)
        cosines = self._cosines(query, [hit for hit, _, _ in passages], dense)
        return [RetrievedPassage(passage, score, cosines[hit["id"]],
                                 keyword[hit["id"]]["score"] if hit["id"] in keyword else 0.0)
                for hit, score, passage in passages]

    def _present_ranking(self, search, depth: int, markers: dict) -> dict[int, dict]:
        """`search(d)`'s hits of present versions only, `depth` of them where there are so many
        (searched deeper while rows no reader sees take places), by id in rank order. Only those
        are ranked, as the FAISS index holds only those: rows a crashed or concurrent write left
        must not move the passages readers do see. `markers` gains the articles' markers (None for
        an article with none)."""
        fetch = depth
        while True:
            hits = search(fetch)
            unseen = {hit["doc_id"] for hit in hits} - set(markers)
            found = self.archive.markers(unseen)
            markers.update({doc_id: found.get(doc_id) for doc_id in unseen})  # None: no marker, asked once
            shown = [hit for hit in hits if _present_version(hit, markers)]
            if len(shown) >= depth or len(hits) < fetch or fetch >= MILVUS_MAX_LIMIT:
                return {hit["id"]: hit for hit in shown[:depth]}
            fetch = min(MILVUS_MAX_LIMIT, 2 * fetch)

    def _present(self, ranked: list, k: int, markers: dict) -> list[tuple[dict, float, Passage]]:
        """The first k hits of the version of their article that is present now (a crashed or
        concurrent write may have left others, which no reader sees), each with its passage
        sliced from that version's text, as every citation is; a passage whose text an earlier
        one has is passed over."""
        def sliced():  # lazily: an article's text is fetched only while places are left
            for hit, score in ranked:
                document = self.articles.at(markers[hit["doc_id"]]) if _present_version(hit, markers) else None
                if document is not None:
                    start, end = int(hit["start"]), int(hit["end"])
                    yield hit, score, Passage(hit["doc_id"], start, end, document.text[start:end])

        return first_distinct(sliced(), k, lambda found: found[2].text)

    def _cosines(self, query: np.ndarray, hits: list[dict], dense: dict) -> dict[int, float]:
        """Each hit's cosine: from the dense search, or (for a keyword-only hit) from its vector."""
        cosines = {i: hit["score"] for i, hit in dense.items()}
        missing = [hit["id"] for hit in hits if hit["id"] not in cosines]
        if missing:
            cosines.update(zip(missing, (self.archive.passages.vectors(missing) @ query).tolist()))
        return cosines


def _present_version(hit: dict, markers: dict) -> bool:
    """Is this row of the version of its article that readers see now?"""
    marker = markers.get(hit["doc_id"])
    return marker is not None and marker.version == hit["version"]
