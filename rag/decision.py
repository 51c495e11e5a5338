"""The answer-or-abstain decision: P(answer is right) from the evidence for it (rag.evidence)."""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

from rag.evidence import Evidence
from rag.limits import check_limits

FEATURES = tuple(f.name for f in dataclasses.fields(Evidence))  # each has a weight of that name below


def answered_at(confidence: float, threshold: float) -> bool:
    """The rule, written once: `rag eval`'s table of other thresholds decides as `rag` does."""
    return confidence >= threshold


@dataclass(frozen=True)
class Abstention:
    """A logistic model over the candidate's evidence; answer only at or above `threshold`.
    Fitted by eval/tune_abstention.py into the [reader.abstention] table of models.toml; a
    feature without a weight there weighs nothing, but for the margin, which weighs 1 unless the
    table says otherwise (with no table at all: answer when the best span beats "no answer")."""

    bias: float = 0.0
    margin: float = 1.0
    span_score: float = 0.0
    dense_score: float = 0.0
    agreeing_articles: float = 0.0
    agreeing_passages: float = 0.0
    corroborating_articles: float = 0.0
    reciprocal_rank: float = 0.0
    question_overlap: float = 0.0
    repeats_question: float = 0.0
    type_match: float = 0.0
    unmentioned_names: float = 0.0
    threshold: float = field(default=0.5, metadata={"min": 0.0, "max": 1.0})  # a probability
    fitted_for: str = ""  # the fingerprint of the reader it was fitted for ("" when not recorded)

    def __post_init__(self):
        check_limits(self)

    def confidence(self, evidence: Evidence) -> float:
        z = self.bias + sum(getattr(self, name) * getattr(evidence, name) for name in FEATURES)
        if math.isnan(z):  # a model gave no number: never a confident answer (min() would make it 50)
            return 0.0
        return 1.0 / (1.0 + math.exp(-max(-50.0, min(50.0, z))))

    def answers(self, confidence: float) -> bool:
        """Whether a candidate of this confidence is answered, not declined."""
        return answered_at(confidence, self.threshold)

    @classmethod
    def from_weights(cls, weights, threshold: float, fitted_for: str = "") -> Abstention:
        """From [bias, *one weight per FEATURES name]."""
        names = ("bias", *FEATURES)
        if len(weights) != len(names):
            raise ValueError(f"{len(weights)} weights for {len(names)} names ({', '.join(names)})")
        return cls(**dict(zip(names, map(float, weights))), threshold=threshold, fitted_for=fitted_for)
