"""Swapped negatives for reader training: an answerable question made unanswerable in its own
paragraph by putting, in place of a name or number it shares with that paragraph, another of the
same kind: from the article (one that only other paragraphs mention, swapped_question) or from
the paragraph itself (one it mentions outside the answer's sentence, swapped_within).

SQuAD 2.0's writers made many of its unanswerable questions this way (a plausible entity swapped
in), and train-full holds few of them, so the reader answers such questions anyway: on the
calibration articles, 87 % of SQuAD 2.0's own unanswerable questions get a span that beats its
"no answer" (README, "Training a reader", measures it). A swap from the same article keeps the
question on topic, which is what makes it a trap rather than an easy negative. A name from the
article is absent from the paragraph, which a reader learns to spot (piece 13 did); a name from
the paragraph is there, so the reader must check what the paragraph says of it: the shipped
reader gives 97 % of such swaps a span that beats "no answer" (README, "Training a reader")."""
from __future__ import annotations

import bisect
import random
import re
from functools import lru_cache

CAPITAL = "A-ZÀ-ÖØ-Þ"  # Latin capitals, with the accented ones ("Émile", "Ürümqi")
NOT_NAMES = "The|A|An|This|That|These|Those|It|In|On|At|Of|For|From|By|With|And|Or|But|I"  # capitalised, still not names
NAME_JOINERS = ("of", "de", "da", "von", "van")  # small words inside names ("Bank of England")
# A word of a name: an apostrophe or hyphen only inside it ("O’Brien"), so neither a closing quote
# nor a possessive ("Kabul's") is part of the name.
WORD = rf"[{CAPITAL}](?:\w|-\w|['’](?!s\b)\w)*"
# A run of capitalised words, joined by NAME_JOINERS, and a number; neither glued to other
# letters ("U.S.", "1980s" are left alone).
NAME = re.compile(rf"(?<![\w.])(?<!\w['’])(?!(?:{NOT_NAMES})\b){WORD}(?:\s+(?:(?:{'|'.join(NAME_JOINERS)})\s+)*{WORD})*"
                  r"(?!\w|-\w|['’](?!s\b)\w|\.\w)")
NUMBER = re.compile(r"(?<![\w.,])\d(?:[\d,.]*\d)?(?![\w'’])")
ABBREVIATION = re.compile(rf"(?:^|\s)[{CAPITAL}][a-z]{{0,2}}\.$")  # "St.", "Dr.", "Mr.": no sentence ends there
# What comes before a word that opens a sentence: capitalised there, it is often an ordinary word.
SENTENCE_OPENING = re.compile(r"(?:^\s*|[.!?:;][\"'”’)]*\s+)$")
FIRST_WORD = re.compile(r"\S+\s+")


def _opens_sentence(text: str, position: int) -> bool:
    before = text[:position]
    return bool(SENTENCE_OPENING.search(before)) and not ABBREVIATION.search(before.rstrip())


def _names(text: str):
    for m in NAME.finditer(text):
        if ABBREVIATION.search(text[:m.end() + 1].rstrip()):
            continue  # "St." of "St. Louis" is not a name; "Louis" is read on its own
        if not _opens_sentence(text, m.start()):
            yield m
            continue
        # A sentence's first word may be an ordinary one ("Which Soviet leader"): the rest of the run may still be a name.
        first = FIRST_WORD.match(text, m.start())
        if first and first.end() < m.end():
            rest = NAME.match(text, first.end())
            if rest:
                yield rest


def names_and_numbers(text: str) -> list[re.Match]:
    """The names (capitalised runs, less a word that opens a sentence) and numbers of a text, in order."""
    return sorted(list(_names(text)) + list(NUMBER.finditer(text)), key=lambda m: m.start())


@lru_cache(maxsize=4096)  # a paragraph is an "other" paragraph for every question of its article
def _names_and_kinds(text: str) -> tuple[tuple[str, str], ...]:
    places = _place_names(text)
    return tuple((m.group(), _kind(m.group(), m.group() in places)) for m in names_and_numbers(text))


MONTHS = frozenset("January February March April May June July August September October November December".split())
WEEKDAYS = frozenset("Monday Tuesday Wednesday Thursday Friday Saturday Sunday".split())
ORDINAL = re.compile(r"First|Second|Third|Fourth|Fifth|Sixth|Seventh|Eighth|Ninth|Tenth|Eleventh|Twelfth|\w+(?:teenth|tieth)")
ACRONYM = re.compile(rf"[{CAPITAL}]{{2,}}")  # "NATO", "BYU": not to be swapped for a word ("Venus")
# One word that reads as an adjective: a people, a language, a creed or a direction ("Spanish",
# "Chinese", "Brazilian", "American", "Islamic", "Southern", "West"). "in Spanish" looks like a place.
ADJECTIVE = re.compile(r"\w+(?:ish|ese|ian|ean|ican|ic|ical|ern|ist)|North|South|East|West|German|Roman|Dutch|French|Greek|Thai")
# The last word of a many-word name that makes it an institution, a place or a thing, not a
# person ("Scottish Government", "Kroc Institute", "Lisbon Treaty" against "Enric Miralles").
INSTITUTION_ENDINGS = frozenset("""University College School Institute Academy Church Cathedral Abbey Temple Mosque
River Lake Sea Ocean Bay Gulf Mountains Mountain Island Islands Valley Basin Plateau Desert Peninsula Street Road
Bridge Park Square Palace Castle Hall Tower Museum Library Theatre Theater Hospital Station Airport Stadium Party
Government Parliament Council Congress Senate Assembly Company Corporation Group Bank Board Committee Commission
Court Police Army Navy Force Forces Empire Kingdom Republic State States City County Province District Act Treaty
War Revolution Award Prize Cup League Championship Times Post Journal News Project Program Programme Agency Service
Administration Association Society Foundation Centre Center Union Organization Organisation Federation
Department Ministry Office""".split())
# What stands before a place: "in Chile", "from the Alps", "north of Kabul". A person or a thing
# seldom follows these, so a name a text puts there is taken for a place, and swaps only for one.
PLACE_BEFORE = re.compile(r"\b(?:in|at|from|near|across|throughout|within|into|outside|around|"
                          r"(?:north|south|east|west)(?:east|west)? of)\s+(?:the\s+)?$", re.I)


@lru_cache(maxsize=4096)
def _place_names(text: str) -> frozenset[str]:
    """The names that `text` puts where a place stands, anywhere."""
    return frozenset(m.group() for m in _names(text) if PLACE_BEFORE.search(text, max(0, m.start() - 40), m.start()))


def _kind(text: str, place: bool) -> str:
    """A number swaps for a number of the same shape (a year for a year, "1,600" for "4,000"); a
    month for a month, a weekday for a weekday, an ordinal ("Ninth") for an ordinal, an acronym
    for an acronym and a one-word adjective ("Spanish") for one; any other name for one of as
    many words, an institution (INSTITUTION_ENDINGS) only for one, and a place (`place`) only for
    one. Word counts alone swapped "Chopin" for "Warsaw", "Guam" for "January" and "AAP" for
    "Venus": questions a reader can reject for sounding wrong without reading the paragraph."""
    if text[0].isdigit():
        return re.sub(r"\d", "0", text)
    if text in MONTHS or text in WEEKDAYS:
        return "month" if text in MONTHS else "weekday"
    if ORDINAL.fullmatch(text):
        return "ordinal"
    if ACRONYM.fullmatch(text):
        return "acronym"
    if ADJECTIVE.fullmatch(text):
        return "adjective"
    words = text.split()
    institution = len(words) > 1 and words[-1] in INSTITUTION_ENDINGS
    return f"{len(words)} words{', an institution' if institution else ''}{', a place' if place else ''}"


def _as_words(text: str) -> re.Pattern:
    """`text`, whole, where it stands as words (not "15" inside "1500")."""
    return re.compile(rf"(?<!\w){re.escape(text)}(?!\w)")


def _said_in(text: str, context: str) -> bool:
    return _as_words(text).search(context) is not None


NOT_STEMS = frozenset(NAME_JOINERS) | {"s"}  # a name's joiners, and the "s" of a possessive
MIN_PREFIX = 4  # a shorter word that begins a name's word is seldom a form of it ("Pan" of "Panjshir")


@lru_cache(maxsize=65536)
def _stems(name: str) -> tuple[str, ...]:
    """The words of a name, lower-cased, a plural "s" dropped ("soviets" -> "soviet"); not a
    one-letter word (the "i" of "Mazar-i-Sharif"), which begins too many words to tell anything."""
    words = [w for w in re.findall(r"\w+", name.replace("’", "'").lower()) if w not in NOT_STEMS and len(w) > 1]
    return tuple(w[:-1] if len(w) > 3 and w.endswith("s") else w for w in words)


def _mentioned_in(name: str, context: str, context_words: list[str]) -> bool:
    """Whether any word of `name`, or its stem, begins a word of `context` (`context_words`,
    lower-cased and sorted), or a word of `context` begins it: "Soviets" where it says "Soviet",
    "Kabul" where it says "Kabul's" or "Kabul-based", "Victorian" where it says "Victoria"; a
    number, whole. A swap must name what the paragraph (or sentence) does not."""
    if name[0].isdigit():
        return _said_in(name, context)
    for stem in _stems(name):
        at = bisect.bisect_left(context_words, stem)
        if at < len(context_words) and context_words[at].startswith(stem):
            return True
        if any(_has_word(context_words, stem[:length]) for length in range(MIN_PREFIX, len(stem))):
            return True
    return False


def _has_word(sorted_words: list[str], word: str) -> bool:
    at = bisect.bisect_left(sorted_words, word)
    return at < len(sorted_words) and sorted_words[at] == word


def _words(text: str) -> list[str]:
    return sorted(re.findall(r"\w+", text.replace("’", "'").lower()))


LOWER_CASE_WORD = re.compile(r"(?<![.!?:;\"“‘'(]\s)(?<!^)\b([a-z]+|[A-Z][a-z]+)\b", re.M)


def ordinary_words(texts) -> frozenset[str]:
    """The words (lower-cased) that `texts` write in lower case at least as often as capitalised,
    leaving out a sentence's first word: "census", "hell", "loot", not "kabul" or "japan". A word
    of these, capitalised in a heading or a quotation ("Census", "Hell"), is not a name to swap."""
    lower, capital = {}, {}
    for text in texts:
        for m in LOWER_CASE_WORD.finditer(text):
            word = m.group(1)
            counts = lower if word[0].islower() else capital
            key = word.lower()
            counts[key] = counts.get(key, 0) + 1
    return frozenset(w for w, n in lower.items() if n >= capital.get(w, 0))


def _is_ordinary(name: str, ordinary: frozenset[str]) -> bool:
    """A name all of whose words are ordinary words ("Census", "Super Bowl"); never a number."""
    words = re.findall(r"\w+", name.lower())
    return not name[0].isdigit() and all(w in ordinary for w in words)


def _swap(question: str, context: str, sources: list[str], avoid: str, rng: random.Random,
          ordinary: frozenset[str]) -> str | None:
    """The question with a name or number it shares with `context` replaced, wherever the question
    says it, by one of the same kind that `sources` name and `avoid` never mentions; neither may
    be made of `ordinary` words."""
    shared = sorted({m.group() for m in names_and_numbers(question)
                     if _said_in(m.group(), context) and not _is_ordinary(m.group(), ordinary)})
    if not shared:
        return None
    chosen = rng.choice(shared)
    kind = _kind(chosen, chosen in _place_names(question) | _place_names(context))
    avoid_words = _words(avoid)
    replacements = sorted({found for source in sources for found, its_kind in _names_and_kinds(source)
                           if its_kind == kind and not _mentioned_in(found, avoid, avoid_words)
                           and not _is_ordinary(found, ordinary)})
    if not replacements:
        return None
    replacement = rng.choice(replacements)
    return _as_words(chosen).sub(lambda _: replacement, question)


def swapped_question(question: str, context: str, other_contexts: list[str], rng: random.Random,
                     ordinary: frozenset[str] = frozenset()) -> str | None:
    """The question with a name or number it shares with `context` replaced, wherever the
    question says it, by one of the same kind from `other_contexts` that `context` never
    mentions; None when there is none. Names made of `ordinary` words (ordinary_words()) are
    neither swapped nor swapped in."""
    return _swap(question, context, other_contexts, avoid=context, rng=rng, ordinary=ordinary)


def swapped_within(question: str, context: str, answer_sentence: str, rng: random.Random,
                   ordinary: frozenset[str] = frozenset()) -> str | None:
    """The question with a name or number it shares with `context` replaced, wherever the question
    says it, by another of the same kind that `context` names but neither `answer_sentence` nor
    the question mentions ("How many people live in Kabul?" where the paragraph counts the
    people of Panjshir and names Kabul elsewhere); None when there is none. `ordinary` as for
    swapped_question."""
    return _swap(question, context, [context], avoid=f"{answer_sentence}\n{question}", rng=rng, ordinary=ordinary)
