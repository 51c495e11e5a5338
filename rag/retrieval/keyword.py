"""BM25 over passages, saved with the index as postings: for each word, the passages that hold
it and how often, beside each passage's length in words. Scores are worked out when a question
comes, so nothing stored depends on how many passages there are: an update drops the removed
passages' postings and adds the new ones' (`updated`), where an index of precomputed scores
(bm25s's) had to score every passage of the archive again. The scores are bm25s's own, bit for
bit (its Lucene variant, k1 1.5, b 0.75, its tokenizer and English stop words: tested against it)."""
from __future__ import annotations

import functools
import math
import re
from pathlib import Path

import numpy as np

FOLDER = "keywords"
WORDS, STARTS, PASSAGES, COUNTS, LENGTHS = "words.txt", "starts.npy", "passages.npy", "counts.npy", "lengths.npy"
BM25_K1, BM25_B = 1.5, 0.75  # bm25s's defaults, said once: the Milvus store's BM25 uses them too
WORD = re.compile(r"(?u)\b\w\w+\b")  # bm25s's (and scikit-learn's) token pattern


@functools.cache
def stop_words() -> frozenset[str]:
    """bm25s's English stop words: the Milvus store's analyzer drops the same ones."""
    from bm25s.stopwords import STOPWORDS_EN

    return frozenset(STOPWORDS_EN)


class KeywordIndex:
    """Postings in word order: the passages holding word w are `passages[starts[w]:starts[w + 1]]`,
    each `counts` times; `lengths[p]` is passage p's number of words (stop words left out)."""

    def __init__(self, words: list[str], starts: np.ndarray, passages: np.ndarray, counts: np.ndarray,
                 lengths: np.ndarray):
        if len(starts) != len(words) + 1 or starts[-1] != len(passages) or len(passages) != len(counts):
            raise ValueError("the keyword index's files disagree in size")
        self.words = words
        self._ids = {word: n for n, word in enumerate(words)}
        self._starts, self._passages, self._counts, self._lengths = starts, passages, counts, lengths
        # as bm25s works it out: a mean of integers is exact, in whatever order they are summed
        self._mean_length = float(np.asarray(lengths).mean()) if len(lengths) else 0.0

    @property
    def size(self) -> int:
        return len(self._lengths)

    @classmethod
    def build(cls, texts: list[str]) -> KeywordIndex:
        ids: dict[str, int] = {}
        words, passages, counts, lengths = _postings(texts, ids)
        return cls._from_postings(list(ids), words, passages, counts, lengths)

    def updated(self, old_ids: np.ndarray, new_ids: np.ndarray, added: dict[int, str], size: int) -> KeywordIndex:
        """The index of `size` passages where passage `new_ids[i]` is this index's `old_ids[i]`
        (unchanged), and the passages of `added` (new id: text) are new: only they are read.
        This index's other passages are gone."""
        added_ids = np.fromiter(added, dtype=np.int64, count=len(added))
        if len(old_ids) + len(added_ids) != size or len(set(new_ids.tolist()) | set(added_ids.tolist())) != size:
            raise ValueError("an update must place every passage once")
        new_of_old = np.full(self.size, -1, dtype=np.int64)
        new_of_old[old_ids] = new_ids
        moved = new_of_old[self._passages]
        kept = moved >= 0
        ids = dict(self._ids)
        words, passages, counts, lengths = _postings(list(added.values()), ids)
        # the kept postings stay in word order; each new one goes in at the end of its word's
        kept_before = np.concatenate([[0], np.cumsum(kept)])[np.asarray(self._starts)]
        kept_before = np.concatenate([kept_before, np.full(len(ids) - len(self.words), kept_before[-1])])
        places = kept_before[words + 1]
        starts = kept_before + np.concatenate([[0], np.cumsum(np.bincount(words, minlength=len(ids)))])
        all_lengths = np.zeros(size, dtype=np.int32)
        all_lengths[new_ids] = np.asarray(self._lengths)[old_ids]
        all_lengths[added_ids] = lengths
        return KeywordIndex(list(ids), starts.astype(np.int64),
                            np.insert(moved[kept].astype(np.int32), places, added_ids[passages].astype(np.int32)),
                            np.insert(np.asarray(self._counts)[kept], places, counts.astype(np.int32)), all_lengths)

    @classmethod
    def _from_postings(cls, words: list[str], word_of: np.ndarray, passage_of: np.ndarray, counts: np.ndarray,
                       lengths: np.ndarray) -> KeywordIndex:
        order = np.argsort(word_of, kind="stable")
        starts = np.concatenate([[0], np.cumsum(np.bincount(word_of, minlength=len(words)))]).astype(np.int64)
        return cls(words, starts, passage_of[order].astype(np.int32), counts[order].astype(np.int32),
                   np.asarray(lengths, dtype=np.int32))

    @classmethod
    def load(cls, folder: Path, size: int) -> KeywordIndex:
        """The saved index, its arrays memory-mapped (loading is instant; the pages a question
        touches are read then)."""
        path = Path(folder) / FOLDER
        if not path.is_dir():
            raise OSError(f"{FOLDER}/ is missing")
        text = (path / WORDS).read_text(encoding="utf-8")
        words = text.split("\n")[:-1]  # a word holds no line break: it is word characters only
        arrays = [np.load(path / name, mmap_mode="r") for name in (STARTS, PASSAGES, COUNTS, LENGTHS)]
        index = cls(words, *arrays)
        if index.size != size:
            raise ValueError(f"the keyword index holds {index.size} passages, not {size}")
        return index

    def save(self, folder: Path) -> None:
        path = Path(folder) / FOLDER
        path.mkdir()
        (path / WORDS).write_text("".join(word + "\n" for word in self.words), encoding="utf-8")
        for name, array in ((STARTS, self._starts), (PASSAGES, self._passages), (COUNTS, self._counts),
                            (LENGTHS, self._lengths)):
            np.save(path / name, np.asarray(array))

    def scores(self, question: str) -> np.ndarray:
        """One BM25 score per passage, in passage order (zeros when no word of the question is known)."""
        scores = np.zeros(self.size, dtype=np.float32)  # summed in float32, word by word, as bm25s sums them
        for word in tokenize([question])[0]:  # a word asked twice counts twice, as in bm25s
            if word in self._ids:
                self._add_word(scores, self._ids[word])
        return scores.astype(np.float64)

    def _add_word(self, scores: np.ndarray, word: int) -> None:
        start, end = self._starts[word], self._starts[word + 1]
        if start == end:  # a word only removed passages held
            return
        passages = np.asarray(self._passages[start:end])
        counts = np.asarray(self._counts[start:end], dtype=np.float32)
        held_by = end - start
        idf = np.float32(math.log(1 + (self.size - held_by + 0.5) / (held_by + 0.5)))
        norm = self._length_norms[passages]
        scores[passages] += (idf * (counts / (norm + counts))).astype(np.float32)

    @functools.cached_property
    def _length_norms(self) -> np.ndarray:
        """Each passage's k1·(1 − b + b·length/mean length): the same operations, in the same order
        and types, as bm25s's index makes its scores with. Worked out at the first question, not
        at loading."""
        return BM25_K1 * ((1 - BM25_B) + BM25_B * np.asarray(self._lengths) / np.float64(self._mean_length))

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
    """Each text's words as bm25s cuts them: lower case, two word characters or more, stop words out."""
    stop = stop_words()
    return [[word for word in WORD.findall(text.lower()) if word not in stop] for text in texts]


def _postings(texts: list[str], ids: dict[str, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The postings of `texts` (word id, text number, count: in word order) and each text's length;
    a word not in `ids` yet is given the next id."""
    stop = stop_words()
    found: list[int] = []
    lengths = np.zeros(len(texts), dtype=np.int64)
    for n, text in enumerate(texts):
        said = [ids.setdefault(word, len(ids)) for word in WORD.findall(text.lower()) if word not in stop]
        found.extend(said)
        lengths[n] = len(said)
    text_of = np.repeat(np.arange(len(texts), dtype=np.int64), lengths)
    # one key per (word, text), in word order: counting equal keys gives each word's count in each text
    texts_count = max(len(texts), 1)
    keys, counts = np.unique(np.asarray(found, dtype=np.int64) * texts_count + text_of, return_counts=True)
    return keys // texts_count, keys % texts_count, counts, lengths
