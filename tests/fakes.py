"""Stand-ins for the two models, so that retrieval, the decision, agreement between articles,
metrics and rendering can be tested in milliseconds (the simonw/llm way). They honour the same
small interfaces as rag.embedder.Embedder and rag.reader.Reader."""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

import numpy as np

from rag.reader import SpanGuess

WORD = re.compile(r"\w+")


@dataclass(frozen=True)
class FakeSpec:
    id: str = "fake/bag-of-words"

    def fingerprint(self) -> str:
        return "fake-1"


class FakeEmbedder:
    """A hashed bag of lower-cased words, unit length: texts sharing words are close."""

    dimension = 64
    spec = FakeSpec()

    def __init__(self):
        self.encoded = 0  # how many texts were embedded, to check what an update re-embeds

    def encode(self, texts: list[str], on_batch=None) -> np.ndarray:
        rows = np.zeros((len(texts), self.dimension), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in WORD.findall(text.lower()):
                rows[row, int(hashlib.md5(word.encode()).hexdigest(), 16) % self.dimension] += 1.0
        norms = np.linalg.norm(rows, axis=1, keepdims=True)
        self.encoded += len(texts)
        if on_batch:
            on_batch(len(texts))
        return rows / np.clip(norms, 1e-12, None)


class FakeReader:
    """Finds the first of its scripted answers that a passage holds and scores it `confident`
    over "no answer" (`surer`: other margins for some answers); a passage with none of them gets
    its first word, scored below "no answer"."""

    def __init__(self, answers: list[str], confident: float = 8.0, surer: dict[str, float] | None = None):
        self.answers = answers
        self.confident = confident
        self.surer = surer or {}

    def read(self, question: str, passages, breaks=None, closed=None) -> list[SpanGuess]:
        guesses = []
        for i, passage in enumerate(passages):
            found = next(((passage.text.find(a), a) for a in self.answers if a in passage.text), None)
            if found:
                start = passage.start + found[0]
                guesses.append(SpanGuess(i, start, start + len(found[1]), self.surer.get(found[1], self.confident) + 2.0, 2.0))
            else:
                first = WORD.search(passage.text)
                start = passage.start + (first.start() if first else 0)
                guesses.append(SpanGuess(i, start, start + len(first.group()) if first else start + 1, 1.0, 6.0))
        return guesses
