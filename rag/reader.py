"""Extractive reader: finds the best answer span in each retrieved passage.

transformers 5 has no question-answering pipeline, so spans are decoded here from the start
and end logits of an AutoModelForQuestionAnswering (run by rag.models), mapped to characters
through the tokenizer's offsets. Scores are raw logit sums, comparable across passages and windows."""
from __future__ import annotations

import unicodedata
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable

import numpy as np

from rag.config import MAX_QUESTION_TOKENS, ModelSpec
from rag.corpus import line_ends
from rag.errors import RagError
from rag.models import load_for_inference, model_json, pad_encodings
from rag.schema import Passage

RUNNERS_UP = 4  # spans kept per passage besides its best: another passage may agree with one of them


def _check_window_fits(spec: ModelSpec) -> None:
    """A window longer than the model has positions for would crash it at the first long
    passage: refused from its config.json, before the (first-run) export."""
    config = model_json(spec, "config.json") or {}  # none at all is said where the model loads
    positions = config.get("max_position_embeddings")
    if "roberta" in str(config.get("model_type", "")) and positions:  # its positions start after the padding id
        positions -= (config.get("pad_token_id") or 1) + 1
    if positions and spec.settings.max_seq_len > positions:
        raise RagError(f"[reader] max_seq_len = {spec.settings.max_seq_len} is past what the reader at "
                       f"{spec.resolve()} takes ({positions} tokens): set it to at most {positions}")


@dataclass(frozen=True)
class SpanGuess:
    passage_index: int
    start: int  # character offsets into the passage's article, not into the passage
    end: int
    span_score: float
    null_score: float
    runners_up: tuple[tuple[int, int, float], ...] = ()  # (start, end, span score), best first


class Reader:
    def __init__(self, spec: ModelSpec, on_export: Callable[[str], None] = lambda msg: None):
        self.spec = spec
        _check_window_fits(spec)
        self.model = load_for_inference(spec, "AutoModelForQuestionAnswering", on_export)
        # a question's windows run side by side, as many at once as the runtime is worth (one per
        # core on ONNX Runtime): a window is too small to keep every core busy alone, so five
        # finish in ~80-90 % of the time they take one after another (README, "Speed")
        self._read_pool = ThreadPoolExecutor(self.model.side_by_side, thread_name_prefix="rag-read") \
            if self.model.side_by_side > 1 else None
        # two tokenizers, each configured once: reading mutates no shared state, so concurrent
        # questions (rag serve) are safe without a lock
        self.tokenizer = self.model.tokenizer
        self.tokenizer.enable_truncation(max_length=spec.settings.max_seq_len, stride=spec.settings.stride,
                                         strategy="only_second")
        self._question_tokenizer = _copy(self.tokenizer)
        self._question_tokenizer.no_truncation()  # the windows' only_second truncation refuses a lone question
        self.max_answer_tokens = spec.settings.max_answer_tokens

    def read(self, question: str, passages: list[Passage], breaks: list[list[int]] | None = None,
             closed: list[list[tuple[int, int]]] | None = None) -> list[SpanGuess]:
        """One guess per passage (its best span over all its windows), in passage order. No span
        crosses a line break that ends a run of text: `breaks`, per passage, as offsets into its
        text (corpus.line_ends_in), else found in the passage's text alone; nor touches what is
        `closed`, per passage, (start, end) offsets into its text (corpus.date_lines_in)."""
        if not passages:
            return []
        breaks = breaks if breaks is not None else [line_ends(passage.text) for passage in passages]
        closed = closed if closed is not None else [[] for _ in passages]
        spans: dict[int, list[tuple[float, int, int]]] = {}
        null: dict[int, float] = {}
        windows = self.windows(question, passages)
        for (passage_index, window), ((starts,), (ends,)) in zip(windows, self._logits(windows)):
            found, null_score = self._spans_in_window(window, starts, ends, passages[passage_index], breaks[passage_index],
                                                      closed[passage_index])
            spans.setdefault(passage_index, []).extend(found)
            # a passage's null score is the lowest of its windows': one window may well hold the answer
            null[passage_index] = min(null_score, null.get(passage_index, null_score))
        return [self._guess(i, spans[i], null[i]) for i in range(len(passages))]

    def _logits(self, windows: list[tuple[int, object]]):
        """Each window's start and end logits, in order. One window a run: a batch pads every
        window to the longest (~15 % of a question's tokens), and on the CPU a batch buys nothing
        back (README, "Speed")."""
        run = lambda item: self.model.run(pad_encodings([item[1]]))  # noqa: E731
        return self._read_pool.map(run, windows) if self._read_pool else map(run, windows)

    @staticmethod
    def _guess(passage_index: int, spans: list[tuple[float, int, int]], null_score: float) -> SpanGuess:
        """The passage's best span over all its windows, and its distinct runners-up."""
        ranked, seen = [], set()
        for score, start, end in sorted(spans, key=lambda s: (-s[0], s[1], s[2])):
            if (start, end) not in seen:  # overlapping windows find the same span twice
                seen.add((start, end))
                ranked.append((start, end, score))
        (start, end, score), rest = ranked[0], ranked[1:RUNNERS_UP + 1]
        return SpanGuess(passage_index, start, end, score, null_score, tuple(rest))

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

    def _spans_in_window(self, window, starts: np.ndarray, ends: np.ndarray, passage: Passage,
                         breaks: list[int], closed: list[tuple[int, int]]) -> tuple[list[tuple[float, int, int]], float]:
        """The window's best spans (score, start, end in article characters), and its null score."""
        context = np.array([sid == 1 for sid in window.sequence_ids])
        offsets = window.offsets
        null_score = float(starts[0] + ends[0])
        token_ids = np.flatnonzero(context)
        # every (start, end) pair of context tokens with end >= start, a bounded length, and in one
        # run of text: a headline and the body's first words ("Steve Kerr⏎⏎Stephen Douglas Kerr"),
        # or a list item and the next ("December⏎2."), are no answer, while a hard-wrapped line
        # ("Ahmad⏎Massoud") may be crossed
        scores = starts[token_ids][:, None] + ends[token_ids][None, :]
        gap = token_ids[None, :] - token_ids[:, None]
        begins = np.array([offsets[t][0] for t in token_ids])
        run = np.searchsorted(breaks, begins, side="right")  # which run each token is in
        shut = _inside(begins, closed)  # tokens no answer may start or end at
        allowed = (gap >= 0) & (gap < self.max_answer_tokens) & (run[:, None] == run[None, :]) & ~shut[:, None] & ~shut[None, :]
        scores = np.where(allowed, scores, -np.inf).ravel()
        keep = min(RUNNERS_UP + 1, len(scores))
        top = np.argpartition(-scores, keep - 1)[:keep]
        found = []
        for flat in top[np.argsort(-scores[top], kind="stable")]:
            if not np.isfinite(scores[flat]):
                break
            i, j = divmod(int(flat), len(token_ids))
            end = _past_combining_marks(passage.text, offsets[token_ids[j]][1])
            found.append((float(scores[flat]), passage.start + offsets[token_ids[i]][0], passage.start + end))
        return found, null_score


def _inside(offsets: np.ndarray, ranges: list[tuple[int, int]]) -> np.ndarray:
    """Which of these character offsets fall in one of the (start, end) ranges."""
    inside = np.zeros(len(offsets), dtype=bool)
    for start, end in ranges:
        inside |= (offsets >= start) & (offsets < end)
    return inside


def _past_combining_marks(text: str, end: int) -> int:
    """The span's end moved past the accents the tokenizer strips: "René" written as an e and a
    combining acute ends after the accent, so the answer is what the article says."""
    while end < len(text) and unicodedata.combining(text[end]):
        end += 1
    return end


def _copy(tokenizer):
    from tokenizers import Tokenizer

    return Tokenizer.from_str(tokenizer.to_str())
