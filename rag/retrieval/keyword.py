"""BM25 over passages (bm25s), saved with the index so that loading does not re-index."""
from __future__ import annotations

from pathlib import Path

import numpy as np

FOLDER = "bm25"
NO_KEYWORDS = "\x00"  # tokenize() keeps word characters only, so no question has it
STOPWORDS = "en"  # bm25s's English list
BM25_K1, BM25_B = 1.5, 0.75  # bm25s's defaults, said once: the Milvus store's BM25 uses them too


class KeywordIndex:
    def __init__(self, bm25, size: int):
        self._bm25 = bm25
        self._size = size

    @classmethod
    def build(cls, texts: list[str]) -> KeywordIndex:
        import bm25s

        bm25 = bm25s.BM25(k1=BM25_K1, b=BM25_B)
        if texts:
            # as ids with their vocabulary: indexing the words themselves builds that again, and
            # took 1.7 times as long over an archive's passages
            tokens = bm25s.tokenize(texts, stopwords=STOPWORDS, show_progress=False)
            if not tokens.vocab:  # bm25s cannot index an empty vocabulary: one word no question holds
                tokens = [[NO_KEYWORDS]] * len(texts)
            bm25.index(tokens, show_progress=False)
        return cls(bm25, len(texts))

    @classmethod
    def load(cls, folder: Path, size: int) -> KeywordIndex:
        import bm25s

        path = Path(folder) / FOLDER
        if not path.is_dir():
            raise OSError(f"{FOLDER}/ is missing")
        return cls(bm25s.BM25.load(str(path), show_progress=False, verbosity=0), size)

    def save(self, folder: Path) -> None:
        self._bm25.save(str(Path(folder) / FOLDER), show_progress=False)

    def scores(self, question: str) -> np.ndarray:
        """One BM25 score per passage, in passage order (zeros when no word of the question is known)."""
        tokens = tokenize([question])[0]
        if not tokens or not self._size:
            return np.zeros(self._size)
        return np.asarray(self._bm25.get_scores(tokens), dtype=np.float64)

    def ranking(self, question: str, depth: int, allowed: np.ndarray | None = None) -> tuple[list[int], np.ndarray]:
        """The ids of the `depth` best-scoring passages (of `allowed`, when given) that share a
        word with the question, and every passage's score."""
        scores = self.scores(question)
        ranked = scores
        if allowed is not None:
            ranked = np.zeros_like(scores)
            ranked[allowed] = scores[allowed]
        hits = np.flatnonzero(ranked > 0)
        if len(hits) > depth:  # select before sorting: sorting a million scores costs ~80 ms
            kth = np.partition(ranked[hits], len(hits) - depth)[len(hits) - depth]
            hits = hits[ranked[hits] >= kth]  # ties at the cut stay, so the order is a full sort's
        order = hits[np.lexsort((hits, -ranked[hits]))][:depth]  # best first, then by passage id
        return [int(i) for i in order], scores


def tokenize(texts: list[str]) -> list[list[str]]:
    import bm25s

    return bm25s.tokenize(texts, stopwords=STOPWORDS, return_ids=False, show_progress=False)
