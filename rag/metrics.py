"""SQuAD-style answer comparison, shared by the pipeline (do two articles agree?) and `rag eval`."""
from __future__ import annotations

import re
import string
import unicodedata
from collections import Counter

SQUAD_PUNCTUATION = frozenset(string.punctuation)  # what the official SQuAD script strips (ASCII only)
NEWS_PUNCTUATION = SQUAD_PUNCTUATION | frozenset("“”‘’–—…")  # news text's typographic marks too
_ARTICLES = re.compile(r"\b(a|an|the)\b")
DASHES = re.compile("[-\u2010-\u2015]")  # the hyphen-minus, hyphens and dashes


def normalize_answer(text: str, punctuation: frozenset[str] = NEWS_PUNCTUATION) -> str:
    text = "".join(ch for ch in text.lower() if ch not in punctuation)
    return " ".join(_ARTICLES.sub(" ", text).split())


def exact_match(prediction: str, gold: str, punctuation: frozenset[str] = NEWS_PUNCTUATION) -> float:
    return float(normalize_answer(prediction, punctuation) == normalize_answer(gold, punctuation))


def f1_score(prediction: str, gold: str, punctuation: frozenset[str] = NEWS_PUNCTUATION) -> float:
    predicted, expected = normalize_answer(prediction, punctuation).split(), normalize_answer(gold, punctuation).split()
    if not predicted or not expected:
        return float(predicted == expected)
    common = sum((Counter(predicted) & Counter(expected)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(predicted), common / len(expected)
    return 2 * precision * recall / (precision + recall)


def best_over(metric, prediction: str, golds: list[str]) -> float:
    return max((metric(prediction, g) for g in golds), default=0.0)


def overlapping_answers(a: str, b: str) -> bool:
    """True when one answer, normalised, is the other or a whole-word part of it
    ("150 kilometers" in "150 kilometers northeast of Kabul"; not "Ahmad Massoud" in
    "Ahmad Shah Massoud")."""
    na, nb = f" {normalize_answer(a)} ", f" {normalize_answer(b)} "
    return bool(na.strip() and nb.strip()) and (na in nb or nb in na)


# punctuation between words, not inside a number: what "Kabul-based" and "dead.[3]" are glued with
GLUING_PUNCTUATION = re.compile(r"(?!(?<=\d)[.,:](?=\d))[" + re.escape("".join(sorted(NEWS_PUNCTUATION))) + "]")


def states_an_answer(text: str, answers: list[str]) -> bool:
    """Does `text` hold one of `answers`, normalised, as whole words, anywhere? (An answer that
    normalises to nothing, like "the", holds nothing.) The text's punctuation is also read as a
    space, as news glues words with it: "Kabul-based" holds "Kabul", and "12 dead.[3]" holds
    "12 dead"; a number's own ("1,200", "12.5", "10:30") stays, so "1,200" does not hold "200"."""
    said = [f" {normalize_answer(text)} ", f" {normalize_answer(GLUING_PUNCTUATION.sub(' ', text))} "]
    return any(a and f" {a} " in words for words in said for a in map(normalize_answer, answers))


def spelled_alike(text: str) -> str:
    """The answer with one Unicode form for each letter (NFKC: "é" precomposed, or an e and a
    combining accent) and hyphens and dashes as spaces ("vice-president", "vice president"), for
    telling which articles say the same thing. Scoring keeps SQuAD's normalisation as it is."""
    return DASHES.sub(" ", unicodedata.normalize("NFKC", text))


def same_answer(a: str, b: str) -> bool:
    """Overlapping, and the shared part is most of both (not a name and a clause that mentions it)."""
    return overlapping_answers(a, b) and f1_score(a, b) >= 0.5


def says_all_of(other: str, answer: str) -> bool:
    """Does `other` say all of `answer`: the same answer (same_answer), the answer whole in it?
    What another article must say to support an answer: "150 kilometers northeast of Kabul"
    supports "150 kilometers", but a bare "Massoud" does not support "Ahmad Massoud" (which
    Massoud? an article whose own reading was "Ahmad Shah Massoud" had been listed as stating it)."""
    said, whole = f" {normalize_answer(other)} ", f" {normalize_answer(answer)} "
    return bool(whole.strip()) and whole in said and f1_score(other, answer) >= 0.5
