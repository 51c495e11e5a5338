"""Extractive reader: finds the best answer span in each retrieved passage.

transformers 5 has no question-answering pipeline, so spans are decoded here from the start
and end logits of AutoModelForQuestionAnswering, mapped to characters through the tokenizer's
offset mapping. Scores are raw logit sums, comparable across passages and windows."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rag.config import ModelSpec
from rag.models import load_tokenizer_and_model
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
    def __init__(self, spec: ModelSpec):
        import torch

        self._torch = torch
        self.spec = spec
        self.tokenizer, self.model = load_tokenizer_and_model(spec, "AutoModelForQuestionAnswering")
        self.max_seq_len = int(spec.settings.get("max_seq_len", 384))
        self.stride = int(spec.settings.get("stride", 128))
        self.max_answer_tokens = int(spec.settings.get("max_answer_tokens", 30))

    def read(self, question: str, passages: list[Passage]) -> list[SpanGuess]:
        """One guess per passage (its best span over all its windows), in passage order."""
        if not passages:
            return []
        question = self._clip_question(question)
        windows = self.tokenizer(
            [question] * len(passages),
            [p.text for p in passages],
            truncation="only_second",
            max_length=self.max_seq_len,
            stride=self.stride,
            return_overflowing_tokens=True,
            return_offsets_mapping=True,
            padding=True,
            return_tensors="pt",
        )
        start_logits, end_logits = self._logits(windows)
        best: dict[int, SpanGuess] = {}
        for w, passage_index in enumerate(windows["overflow_to_sample_mapping"].tolist()):
            guess = self._best_in_window(windows, w, start_logits[w], end_logits[w], passages[passage_index], passage_index)
            previous = best.get(passage_index)
            if previous is None:
                best[passage_index] = guess
            else:  # best span over the passage's windows; its null score is the lowest of them
                keep = guess if (guess.span_score > previous.span_score) else previous
                best[passage_index] = SpanGuess(passage_index, keep.start, keep.end, keep.span_score,
                                                min(guess.null_score, previous.null_score))
        return [best[i] for i in range(len(passages))]

    def _clip_question(self, question: str) -> str:
        ids = self.tokenizer(question, add_special_tokens=False)["input_ids"]
        if len(ids) <= MAX_QUESTION_TOKENS:
            return question
        return self.tokenizer.decode(ids[:MAX_QUESTION_TOKENS])

    def _logits(self, windows) -> tuple[np.ndarray, np.ndarray]:
        inputs = {k: windows[k] for k in ("input_ids", "attention_mask", "token_type_ids") if k in windows}
        with self._torch.inference_mode():
            out = self.model(**inputs)
        return out.start_logits.float().numpy(), out.end_logits.float().numpy()

    def _best_in_window(self, windows, w: int, starts: np.ndarray, ends: np.ndarray,
                        passage: Passage, passage_index: int) -> SpanGuess:
        context = np.array([sid == 1 for sid in windows.sequence_ids(w)])
        offsets = windows["offset_mapping"][w].tolist()
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
