"""`rag eval --baseline FILE`: how this run differs from an earlier one, question by question.

The gold set is small (64 questions, 46 answerable: one answer moves F1 by about 2 points), so
each change comes with a 95 % interval from a paired bootstrap over the questions: both runs are
scored on the same resampled questions, so what they share cancels, and the interval says
whether the change is more than a question or two that happened to go the other way."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable

import numpy as np

from rag.errors import BadInput, RagError
from rag.gold import GoldQuestion
from rag.metrics import best_over, f1_score
from rag.pipeline import validate_question

BOOTSTRAP_SAMPLES = 10_000
# Each measure a change is shown for, and which questions it is a mean over.
MEASURES = (("F1", "f1", True), ("abstention recall", "abstention_recall", False),
            ("false-abstention rate", "false_abstention_rate", True))


def load_baseline(path: Path, questions: list[GoldQuestion]) -> dict[str, str | None]:
    """The earlier run's answer to each gold question (None where it declined), from a
    `rag eval --predictions` file, by question text."""
    answers: dict[str, str | None] = {}
    number = 0
    try:
        # a byte-order mark is read past; only "\n" ends a line (a U+2028 in a cited sentence does not)
        lines = Path(path).read_text(encoding="utf-8-sig").split("\n")
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            row = json.loads(line)
            answer = None if row["abstained"] else row["answer"]
            if not isinstance(row["question"], str) or not isinstance(answer, (str, type(None))):
                raise TypeError("a question or an answer that is not text")
            answers[_key(row["question"])] = answer
    except OSError as exc:
        raise RagError(f"cannot read the baseline {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise RagError(f"{path} is not UTF-8 text, so not a `rag eval --predictions` file") from None
    except (ValueError, KeyError, TypeError, AttributeError):
        raise RagError(f"{path}:{number}: not a `rag eval --predictions` line (one `rag ask --json` object a line)") from None
    missing = [q.question for q in questions if _key(q.question) not in answers]
    if missing:
        raise RagError(f"{path} has no answer to {len(missing)} of the {len(questions)} gold questions "
                       f"(first: {missing[0]!r}); make it with `rag eval --predictions` on the same gold file")
    return {q.id: answers[_key(q.question)] for q in questions}


def _key(question: str) -> str:
    """The question as the pipeline kept it (rag.pipeline.validate_question: invisible characters
    dropped, spaces collapsed), so a gold question matches its own predictions."""
    try:
        return validate_question(question)
    except BadInput:
        return question  # a question rag would refuse matches nothing


def scores(gold: GoldQuestion, answer: str | None) -> dict[str, float]:
    """One question's part of each measure (0-100): F1 and false abstention for an answerable
    question, abstention recall for one the articles do not answer."""
    if not gold.answerable:
        return {"abstention_recall": 100.0 * (answer is None)}
    return {"f1": 100.0 * best_over(f1_score, answer, gold.answers) if answer else 0.0,
            "false_abstention_rate": 100.0 * (answer is None)}


def compare(questions: list[GoldQuestion], now: dict[str, str | None], before: dict[str, str | None]) -> dict:
    """Each measure before and now, the change with its 95 % interval, and every question whose
    answer changed, declined or not, each better, worse or the same in what it is worth (a wrong
    answer that becomes a decline moves the false-abstention rate, not F1). Answers by gold id;
    None is a declined question."""
    rows = []
    for label, key, answerable in MEASURES:
        asked = [q for q in questions if q.answerable == answerable]
        then = np.array([scores(q, before[q.id])[key] for q in asked])
        later = np.array([scores(q, now[q.id])[key] for q in asked])
        low, high = paired_interval(then, later)
        rows.append({"measure": label, "key": key, "baseline": _mean(then), "now": _mean(later),
                     "change": _mean(later - then), "interval": [low, high]})
    changed = []
    for q in questions:
        if before[q.id] == now[q.id]:
            continue
        then, later = _worth(q, before[q.id]), _worth(q, now[q.id])
        verdict = "better" if later > then else "worse" if later < then else "same"
        changed.append({"id": q.id, "question": q.question, "baseline": before[q.id], "now": now[q.id], "verdict": verdict})
    return {"measures": rows, "changed": changed}


def _worth(gold: GoldQuestion, answer: str | None) -> float:
    """What a question's answer is worth: its F1 when answerable, 100 for declining one that is not."""
    part = scores(gold, answer)
    return part["f1"] if gold.answerable else part["abstention_recall"]


def paired_interval(before, after, samples: int = BOOTSTRAP_SAMPLES) -> tuple[float | None, float | None]:
    """The 95 % interval of the change in the mean, resampling the questions (the same ones for both runs)."""
    change = np.asarray(after, dtype=float) - np.asarray(before, dtype=float)
    if not len(change):
        return None, None
    rng = np.random.default_rng(0)  # the same interval for the same runs
    means = change[rng.integers(0, len(change), size=(samples, len(change)))].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return round(float(low), 1), round(float(high), 1)


def _mean(values: Iterable[float]) -> float | None:
    values = list(values)
    return round(float(np.mean(values)), 1) if values else None
