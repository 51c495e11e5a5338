"""BM25 over passages, saved with the index as postings: for each word, the passages that hold
it and how often, beside each passage's length in words. Scores are worked out when a question
comes, so nothing stored depends on how many passages there are: an update drops the removed
passages' postings and adds the new ones' (`updated`), where an index of precomputed scores
(bm25s's) had to score every passage of the archive again. The scores are bm25s's own, bit for
bit (its Lucene variant, k1 1.5, b 0.75, its tokenizer and English stop words: tested against it)."""
from __future__ import annotations

import functools
import hashlib
import math
import re
from pathlib import Path

import numpy as np

FOLDER = "keywords"
WORDS, STARTS, PASSAGES, COUNTS, LENGTHS, RULES = ("words.txt", "starts.npy", "passages.npy", "counts.npy", "lengths.npy",
                                                   "rules.txt")
BM25_K1, BM25_B = 1.5, 0.75  # bm25s's defaults, said once: the Milvus store's BM25 uses them too
WORD = re.compile(r"(?u)\b\w\w+\b")  # bm25s's (and scikit-learn's) token pattern


@functools.cache
def stop_words() -> frozenset[str]:
    """bm25s's English stop words: the Milvus store's analyzer drops the same ones."""
    from bm25s.stopwords import STOPWORDS_EN

    return frozenset(STOPWORDS_EN)


@functools.cache
def word_rules() -> str:
    """A fingerprint of how texts are cut into words. Kept postings are never cut again, so an
    index cut by other rules (another word pattern, a bm25s with other stop words) is built again."""
    said = "\n".join([WORD.pattern, *sorted(stop_words())])
    return hashlib.sha256(said.encode("utf-8")).hexdigest()[:16]


class WordRulesChanged(ValueError):
    """The saved postings were cut into words by other rules than today's."""


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
        words, passages, counts, lengths = _postings(texts, ids)  # in word order already
        starts = np.concatenate([[0], np.cumsum(np.bincount(words, minlength=len(ids)))])
        return cls(list(ids), starts.astype(np.int64), passages.astype(np.int32), counts.astype(np.int32),
                   lengths.astype(np.int32))

    def updated(self, old_ids: np.ndarray, new_ids: np.ndarray, added: dict[int, str], size: int) -> KeywordIndex:
        """The index of `size` passages where passage `new_ids[i]` is this index's `old_ids[i]`
        (unchanged), and the passages of `added` (new id: text) are new: only they are read.
        This index's other passages are gone, and so are the words only they held."""
        old_ids, new_ids = np.asarray(old_ids, dtype=np.int64), np.asarray(new_ids, dtype=np.int64)
        added_ids = np.fromiter(added, dtype=np.int64, count=len(added))
        placed = np.concatenate([new_ids, added_ids])
        if (len(old_ids) != len(new_ids) or len(placed) != size or len(np.unique(placed)) != size
                or (size and (placed.min() < 0 or placed.max() >= size))
                or (len(old_ids) and (old_ids.min() < 0 or old_ids.max() >= self.size))):
            raise ValueError("an update must place every passage once, and take only passages this index holds")
        new_of_old = np.full(self.size, -1, dtype=np.int64)
        new_of_old[old_ids] = new_ids
        moved = new_of_old[np.asarray(self._passages)]
        kept = moved >= 0
        ids = dict(self._ids)
        words, passages, counts, lengths = _postings(list(added.values()), ids)
        # the kept postings stay in word order; each new one goes in at the end of its word's
        kept_before = np.concatenate([[0], np.cumsum(kept)])[np.asarray(self._starts)]
        kept_before = np.concatenate([kept_before, np.full(len(ids) - len(self.words), kept_before[-1])])
        places = kept_before[words + 1]
        held_by = np.diff(kept_before) + np.bincount(words, minlength=len(ids))
        alive = held_by > 0  # a word only removed passages held is dropped
        all_lengths = np.zeros(size, dtype=np.int32)
        all_lengths[new_ids] = np.asarray(self._lengths)[old_ids]
        all_lengths[added_ids] = lengths
        return KeywordIndex([word for word, held in zip(ids, alive) if held],
                            np.concatenate([[0], np.cumsum(held_by[alive])]).astype(np.int64),
                            np.insert(moved[kept].astype(np.int32), places, added_ids[passages].astype(np.int32)),
                            np.insert(np.asarray(self._counts)[kept], places, counts.astype(np.int32)), all_lengths)

    @classmethod
    def load(cls, folder: Path, size: int) -> KeywordIndex:
        """The saved index, its postings memory-mapped (the pages a question touches are read then).
        WordRulesChanged when it was cut into words by other rules than today's."""
        path = Path(folder) / FOLDER
        if not path.is_dir():
            raise OSError(f"{FOLDER}/ is missing")
        if (path / RULES).read_text(encoding="utf-8").strip() != word_rules():
            raise WordRulesChanged("its words were cut by other rules (a word pattern or stop words of another version)")
        text = (path / WORDS).read_text(encoding="utf-8")
        words = text.split("\n")[:-1]  # a word holds no line break: it is word characters only
        arrays = [np.load(path / name, mmap_mode="r") for name in (STARTS, PASSAGES, COUNTS, LENGTHS)]
        if any(array.ndim != 1 for array in arrays):
            raise ValueError("the keyword index's files are not lists")
        index = cls(words, *arrays)
        if index.size != size:
            raise ValueError(f"the keyword index holds {index.size} passages, not {size}")
        index._check()
        return index

    def _check(self) -> None:
        """ValueError unless the postings can be read as they say: a file that matches its checksum
        may still have been written wrong, and a question must not fail on it (the whole of each
        file was just read for its checksum, so this costs little more)."""
        starts, passages, counts = (np.asarray(a) for a in (self._starts, self._passages, self._counts))
        if starts[0] != 0 or (np.diff(starts) < 0).any():
            raise ValueError("the keyword index's word starts are out of order")
        if len(passages) and (passages.min() < 0 or passages.max() >= self.size or counts.min() < 1):
            raise ValueError("the keyword index names passages it does not hold")

    def save(self, folder: Path) -> None:
        path = Path(folder) / FOLDER
        path.mkdir()
        (path / RULES).write_text(word_rules() + "\n", encoding="utf-8")
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
    return [_words(text) for text in texts]


def _words(text: str) -> list[str]:
    stop = stop_words()
    return [word for word in WORD.findall(text.lower()) if word not in stop]


def _postings(texts: list[str], ids: dict[str, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The postings of `texts` (word id, text number, count: in word order) and each text's length;
    a word not in `ids` yet is given the next id."""
    found: list[int] = []
    lengths = np.zeros(len(texts), dtype=np.int64)
    for n, text in enumerate(texts):
        said = [ids.setdefault(word, len(ids)) for word in _words(text)]
        found.extend(said)
        lengths[n] = len(said)
    text_of = np.repeat(np.arange(len(texts), dtype=np.int64), lengths)
    # one key per (word, text), in word order: counting equal keys gives each word's count in each text
    texts_count = max(len(texts), 1)
    keys, counts = np.unique(np.asarray(found, dtype=np.int64) * texts_count + text_of, return_counts=True)
    return keys // texts_count, keys % texts_count, counts, lengths
