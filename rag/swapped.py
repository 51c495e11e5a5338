"""Swapped negatives for reader training: an answerable question made unanswerable in its own
paragraph by putting, in place of a name or number it shares with that paragraph, one that only
other paragraphs of the same article mention.

SQuAD 2.0's writers made many of its unanswerable questions this way (a plausible entity swapped
in), and train-full holds few of them, so the reader answers such questions anyway: on the
calibration articles, 90 % of SQuAD 2.0's own unanswerable questions get a span that beats its
"no answer" (README, "Training a reader", measures it). A swap from the same article keeps the
question on topic, which is what makes it a trap rather than an easy negative."""
from __future__ import annotations

import random
import re
from functools import lru_cache

# A run of capitalised words, joined by the small words that sit inside names ("Bank of England"),
# and a number; neither glued to other letters ("U.S.", "1980s" are left alone).
NOT_NAMES = "The|A|An|This|That|These|Those|It|In|On|At|Of|For|From|By|With|And|Or|But|I"  # capitalised, still not names
NAME = re.compile(rf"(?<![\w.'’])(?!(?:{NOT_NAMES})\b)[A-Z][\w'’-]+(?:\s+(?:(?:of|de|da|von|van)\s+)*[A-Z][\w'’-]+)*(?![\w'’]|\.\w)")
NUMBER = re.compile(r"(?<![\w.,])\d(?:[\d,.]*\d)?(?![\w'’])")
# What comes before a word that opens a sentence: capitalised there, it is often an ordinary word.
SENTENCE_OPENING = re.compile(r"(?:^|[.!?:;][\"'”’)]*\s+)$")


def names_and_numbers(text: str) -> list[re.Match]:
    """The names (capitalised runs, except where a sentence opens) and numbers of a text, in order."""
    names = [m for m in NAME.finditer(text) if not SENTENCE_OPENING.search(text[:m.start()])]
    return sorted(names + list(NUMBER.finditer(text)), key=lambda m: m.start())


@lru_cache(maxsize=4096)  # a paragraph is an "other" paragraph for every question of its article
def _names_and_kinds(text: str) -> tuple[tuple[str, str], ...]:
    return tuple((m.group(), _kind(m.group())) for m in names_and_numbers(text))


def _kind(text: str) -> str:
    """A number swaps for a number of the same shape (a year for a year, "1,600" for "4,000"); a
    name for a name of as many words, which keeps most swaps grammatical."""
    return re.sub(r"\d", "0", text) if text[0].isdigit() else f"{len(text.split())} words"


def swapped_question(question: str, context: str, other_contexts: list[str], rng: random.Random) -> str | None:
    """The question with one of the names or numbers it shares with `context` replaced by one of
    the same kind from `other_contexts` that `context` never mentions; None when there is none."""
    shared = [m for m in names_and_numbers(question) if m.group() in context]
    if not shared:
        return None
    chosen = rng.choice(shared)
    lowered, kind = context.lower(), _kind(chosen.group())
    replacements = sorted({found for other in other_contexts for found, its_kind in _names_and_kinds(other)
                           if its_kind == kind and found.lower() not in lowered})
    if not replacements:
        return None
    return question[:chosen.start()] + rng.choice(replacements) + question[chosen.end():]
