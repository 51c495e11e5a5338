"""The answer-or-abstain decision: P(answer is right) from the reader's evidence."""
from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Abstention:
    """A logistic model over the reader's margin over "no answer", its span score and the
    retrieval similarity; answer only at or above `threshold`. Fitted by eval/tune_abstention.py
    into the [reader.abstention] table of models.toml."""

    bias: float = 0.0
    margin: float = 1.0
    span_score: float = 0.0
    dense_score: float = 0.0
    threshold: float = 0.5
    fitted_for: str = ""  # the fingerprint of the reader it was fitted for ("" when not recorded)

    def confidence(self, margin: float, span_score: float, dense_score: float) -> float:
        z = self.bias + self.margin * margin + self.span_score * span_score + self.dense_score * dense_score
        return 1.0 / (1.0 + math.exp(-max(-50.0, min(50.0, z))))
