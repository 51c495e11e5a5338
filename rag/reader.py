"""Extractive reader: finds the best answer span in each retrieved passage.

transformers 5 has no question-answering pipeline, so spans are decoded here from the start
and end logits of an AutoModelForQuestionAnswering (run by rag.models), mapped to characters
through the tokenizer's offsets. Scores are raw logit sums, comparable across passages and windows."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from rag.config import ModelSpec
from rag.models import load_for_inference, pad_encodings
from rag.schema import Passage

MAX_QUESTION_TOKENS = 96  # keeps room for the passage in a 384-token window


@dataclass(frozen=True)
class SpanGuess:
    passage_index: int
    start: int  # character offsets into the passage's article, not into the passage
    end: int
    span_score: float
    null_score: float


class Reader:
    def __init__(self, spec: ModelSpec, on_export: Callable[[str], None] = lambda msg: None):
        self.spec = spec
        self.model = load_for_inference(spec, "AutoModelForQuestionAnswering", on_export)
        # two tokenizers, each configured once: reading mutates no shared state, so concurrent
        # questions (rag serve) are safe without a lock
        self.tokenizer = self.model.tokenizer
        self.tokenizer.enable_truncation(max_length=spec.settings.max_seq_len, stride=spec.settings.stride,
                                         strategy="only_second")
        self._question_tokenizer = _copy(self.tokenizer)
        self._question_tokenizer.no_truncation()  # the windows' only_second truncation refuses a lone question
        self.max_seq_len = spec.settings.max_seq_len
        self.stride = spec.settings.stride
        self.max_answer_tokens = spec.settings.max_answer_tokens

    def read(self, question: str, passages: list[Passage]) -> list[SpanGuess]:
        """One guess per passage (its best span over all its windows), in passage order."""
        if not passages:
            return []
        windows = self.windows(question, passages)
        start_logits, end_logits = self.model.run(pad_encodings([w for _, w in windows]))
        best: dict[int, SpanGuess] = {}
        for row, (passage_index, window) in enumerate(windows):
            guess = self._best_in_window(window, start_logits[row], end_logits[row], passages[passage_index], passage_index)
            previous = best.get(passage_index)
            if previous is None:
                best[passage_index] = guess
            else:  # best span over the passage's windows; its null score is the lowest of them
                keep = guess if (guess.span_score > previous.span_score) else previous
                best[passage_index] = SpanGuess(passage_index, keep.start, keep.end, keep.span_score,
                                                min(guess.null_score, previous.null_score))
        return [best[i] for i in range(len(passages))]

    def windows(self, question: str, passages: list[Passage]) -> list[tuple[int, object]]:
        """(passage index, encoding) for every window the reader reads: the (clipped) question
        and a stretch of the passage, consecutive stretches overlapping by `stride` tokens."""
        question = self._clip_question(question)
        encodings = self.tokenizer.encode_batch([(question, p.text) for p in passages])
        return [(i, window) for i, e in enumerate(encodings) for window in [e, *e.overflowing]]

    def _clip_question(self, question: str) -> str:
        offsets = self._question_tokenizer.encode(question, add_special_tokens=False).offsets
        if len(offsets) <= MAX_QUESTION_TOKENS:
            return question
        return question[:offsets[MAX_QUESTION_TOKENS - 1][1]]

    def _best_in_window(self, window, starts: np.ndarray, ends: np.ndarray,
                        passage: Passage, passage_index: int) -> SpanGuess:
        context = np.array([sid == 1 for sid in window.sequence_ids])
        offsets = window.offsets
        null_score = float(starts[0] + ends[0])
        token_ids = np.flatnonzero(context)
        # every (start, end) pair of context tokens with end >= start and a bounded length
        scores = starts[token_ids][:, None] + ends[token_ids][None, :]
        gap = token_ids[None, :] - token_ids[:, None]
        scores = np.where((gap >= 0) & (gap < self.max_answer_tokens), scores, -np.inf)
        i, j = np.unravel_index(int(np.argmax(scores)), scores.shape)
        char_start, char_end = offsets[token_ids[i]][0], offsets[token_ids[j]][1]
        return SpanGuess(passage_index, passage.start + char_start, passage.start + char_end,
                         float(scores[i, j]), null_score)


def _copy(tokenizer):
    from tokenizers import Tokenizer

    return Tokenizer.from_str(tokenizer.to_str())
