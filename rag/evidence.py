"""What the answer-or-abstain decision weighs besides the reader's own scores: whether other
passages and articles say the same thing, and whether the answer fits the question.

Each measure is cheap (word sets and a few regular expressions over at most a few dozen spans),
so it adds well under a millisecond to an answer."""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from typing import NamedTuple

from rag.metrics import normalize_answer, same_answer, says_all_of

STOPWORDS = frozenset("""a an the of in on at to for from by with about as into over after before
between under and or but if then than so that this these those there here is are was were be been
being am do does did done has have had having it its it's he she they them their his her we you
your our i me my not no what which who whom whose when where why how much many long far old
can could would should will shall may might must also just very more most such only own same
any each other some all both few s t""".split())
EVIDENCE_RULES = 5  # bump when a feature is computed otherwise (2: corroboration needs the other span to say all of it; 3: names; 4: an abbreviation only in capitals; 5: a date's day of the month is mentioned)
MAX_AGREEING = 3  # more agreeing articles than this is not more evidence
# Articles on one story name the same people and places, so a wrong answer is often "stated" by
# several of them; only in a sentence that asks what the question asks is agreement evidence
# (README, "Answer or abstain", measures both kinds).
CORROBORATING_OVERLAP = 0.7  # the share of the question's content words that sentence must hold
# a conflict's sentence must hold this share of what the question asks (asks_the_same): "18 June",
# when a footbridge beside the Old Mill bridge opened, disagreed with when the bridge reopens
SAME_QUESTION_SHARE = 0.5
INFLECTIONS = ("ing", "ed", "es", "s", "d", "e")  # taken off in this order while a stem of 3 letters is left
# the irregular verbs news asks and tells with ("Who leads…?", "… was led by"), each form as its base
IRREGULAR = {form: base for base, forms in {
    "be": "was were been", "become": "became", "begin": "began begun", "break": "broke broken", "bring": "brought",
    "build": "built", "buy": "bought", "choose": "chose chosen", "come": "came", "do": "did done", "draw": "drew drawn",
    "drive": "drove driven", "fall": "fell fallen", "feel": "felt", "fight": "fought", "find": "found", "flee": "fled",
    "fly": "flew flown", "forbid": "forbade forbidden", "get": "got gotten", "give": "gave given", "go": "went gone",
    "grow": "grew grown", "have": "had has", "hold": "held", "keep": "kept", "know": "knew known", "lay": "laid",
    "lead": "led", "leave": "left", "lend": "lent", "lose": "lost", "make": "made", "mean": "meant", "meet": "met",
    "pay": "paid", "rise": "rose risen", "run": "ran", "say": "said", "see": "saw seen", "seek": "sought", "sell": "sold",
    "send": "sent", "shoot": "shot", "show": "shown", "sink": "sank sunk", "speak": "spoke spoken", "spend": "spent",
    "stand": "stood", "steal": "stole stolen", "strike": "struck", "swear": "swore sworn", "take": "took taken",
    "teach": "taught", "tell": "told", "think": "thought", "throw": "threw thrown", "win": "won", "write": "wrote written",
}.items() for form in forms.split()}
MONTHS = r"january|february|march|april|may|june|july|august|september|october|november|december"
NUMBER_WORDS = r"one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|twenty|thirty|forty|fifty|hundred|thousand|million|billion|dozen|several|few"
NUMBER = re.compile(rf"\d|\b({NUMBER_WORDS})\b", re.I)
TIME = re.compile(rf"\d|\b({MONTHS}|century|centuries|decade|year|years|day|days|week|weeks|spring|summer|autumn|fall|winter|ago)\b", re.I)
NAME = re.compile(r"(^|\s)[A-Z]")
WORD = re.compile(r"[^\W_]+(?:['’][^\W_]+)*")  # a word with its apostrophes ("Massoud's"), without punctuation
# a name as a question may write it: a number with its separators and point ("1,500", "2.5"), an
# abbreviation with its dots ("U.S."), or a word
NAMED = re.compile(r"\d+(?:,\d{3})+(?:\.\d+)?|\d+\.\d+|(?:[^\W_]\.){2,}|[^\W_]+(?:['’][^\W_]+)*")
POSSESSIVE = re.compile(r"['’]s$")
SAME_STEM_FROM = 4  # letters two words must share for one to be the other's other form
LONG_ABBREVIATION = 4  # letters from which an abbreviation is no ordinary word too, so "Nato" says "NATO"
# what makes a word another form of the same name: "Tajik" and "Tajiks", "Afghan" and
# "Afghanistan", "Europe" and "European"; not "Niger" and "Nigeria", nor "India" and "Indiana"
OTHER_FORM = frozenset("s es n an ian ans ians ns ese i is istan ish".split())


@dataclass(frozen=True)
class Evidence:
    """One candidate answer's features, as the decision (rag.decision.Abstention) weighs them."""

    margin: float  # the reader's span score over its "no answer" score
    span_score: float
    dense_score: float  # cosine similarity of question and passage
    agreeing_articles: float = 0.0  # other articles with a span saying the same (capped at MAX_AGREEING)
    agreeing_passages: float = 0.0  # other passages, of any article, with such a span (capped likewise)
    corroborating_articles: float = 0.0  # other articles whose best span says all of it, both fitting the question (corroboration(); capped likewise)
    reciprocal_rank: float = 1.0  # 1 / the passage's retrieval rank
    question_overlap: float = 0.0  # share of the question's content words found in the answer's sentence
    repeats_question: float = 0.0  # share of the answer's content words that are in the question
    type_match: float = 0.0  # +1 the answer is what the question word asks for (a number for "how many"), -1 not, 0 unknown
    unmentioned_names: float = 0.0  # share of the question's names and numbers the answer's article never mentions

    @classmethod
    def of_span(cls, span_score: float, null_score: float, dense_score: float, fit: dict[str, float],
                **agreement: float) -> Evidence:
        """A reader's span as rag ask and rag eval --squad alike weigh it: its scores, the passage's
        cosine, how it fits the question (fit_to_question) and, over several passages, agreement."""
        return cls(margin=span_score - null_score, span_score=span_score, dense_score=dense_score, **agreement, **fit)


def fit_to_question(question: str, answer: str, sentence: str, article: str, heading: str = "") -> dict[str, float]:
    """The Evidence fields that say how well an answer, in its sentence and its article (with its
    `heading`: title and date), fits the question."""
    names = asked_names(question)
    return {"question_overlap": question_overlap(question, sentence), "repeats_question": repeats_question(question, answer),
            "type_match": type_match(question, answer),
            "unmentioned_names": len(unmentioned(names, article, heading)) / len(names) if names else 0.0}


def asked_names(question: str) -> list[str]:
    """The names and numbers a question mentions, as it writes them: each capitalised word (but
    words like "The"), and each word with a digit. "Who is the mayor of Manchester?" asks about
    Manchester; a question written all in lower case, or all in capitals, names nothing but its
    numbers. An abbreviation is a name even where it is also a word ("WHO officials", "the IT
    department"). The first word is capitalised anyway, so it counts only as an abbreviation
    ("NATO troops left when?"): "Manchester elected whom?" is not checked, nor "Today's …"."""
    names, cased = [], not question.isupper()
    for n, word in enumerate(NAMED.findall(question)):
        abbreviation = _is_abbreviation(word)
        if any(c.isdigit() for c in word) or (cased and _capitalised(word) and (abbreviation or (
                n > 0 and _folded(word) not in STOPWORDS))):
            if word not in names:
                names.append(word)
    return names


def unmentioned(names: list[str], text: str, heading: str = "") -> list[str]:
    """Those of `names` that `text` (and its `heading`: a title and date) never mentions: in no
    case, with or without accents, nor in another form of the same word ("Afghan" is in
    "Afghanistan", "Tajiks" in "Tajik"; "U.S." is "US"). A number is mentioned only as it is:
    "2.5" is not "25", nor "1,500" "500". An abbreviation is often an ordinary word too ("US" and
    "us", "WHO" and "who"): it is mentioned only as an article writes abbreviations, in capitals
    ("US", "U.S."), or, from four letters on, capitalised ("Nato" for "NATO")."""
    words, heading_words = article_vocabulary(text), article_vocabulary(heading)
    return [name for name in names if not _mentioned(_folded(name), words.said_as(name) | heading_words.said_as(name))]


class Vocabulary(NamedTuple):
    """An article's words, folded (_folded): all of them; those written capitalised; those
    written in capitals, as abbreviations are."""

    words: frozenset[str]
    capitalised: frozenset[str]
    in_capitals: frozenset[str]

    def said_as(self, name: str) -> frozenset[str]:
        """The words that can mention `name`: an abbreviation only as articles write one."""
        if not _is_abbreviation(name):
            return self.words
        return self.capitalised if len(_undotted(name)) >= LONG_ABBREVIATION else self.in_capitals


@lru_cache(maxsize=32)  # once for the questions asked of an article in a row (a long article's words are megabytes)
def article_vocabulary(text: str) -> Vocabulary:
    """Its words, each as a question's name is read (NAMED) and as a plain word, so that a
    sentence run on without a space ("Kabul.The") still says Kabul; an abbreviation with its dots
    and without ("U.S." and "US")."""
    named = NAMED.findall(text)
    return Vocabulary(_folded_forms(WORD.findall(text) + named), _folded_forms([w for w in named if _capitalised(w)]),
                      _folded_forms([w for w in named if _is_abbreviation(w)]))


def _folded_forms(words: list[str]) -> frozenset[str]:
    folded = set(map(_folded, words))
    return frozenset(folded | {_undotted(word) for word in folded if "." in word})


def _capitalised(word: str) -> bool:
    return word[0].isupper()


def _is_abbreviation(word: str) -> bool:
    """Two or more capitals, with dots or without, a possessive's "'s" aside: "US", "U.S.", "NATO", "UN's"."""
    letters = _undotted(POSSESSIVE.sub("", word))
    return len(letters) > 1 and letters.isalpha() and letters.isupper()


def _mentioned(name: str, said: frozenset[str]) -> bool:
    if name in said or _undotted(name) in said:  # an abbreviation without its dots ("U.S." as "US")
        return True
    if len(name) < SAME_STEM_FROM or not name.isalpha():  # "US", "UN", a number: only as they are
        return False
    return any(_other_form(name, word) for word in said if word[:SAME_STEM_FROM] == name[:SAME_STEM_FROM])


def _undotted(word: str) -> str:
    """An abbreviation without its dots ("u.s." is "us"); a number keeps its point ("2.5")."""
    return word if any(c.isdigit() for c in word) else word.replace(".", "")


def _other_form(name: str, word: str) -> bool:
    shorter, longer = sorted((name, word), key=len)
    return longer.startswith(shorter) and longer[len(shorter):] in OTHER_FORM


def _folded(word: str) -> str:
    """Lower case, without accents, a possessive "'s" or a number's thousands separators."""
    plain = "".join(c for c in unicodedata.normalize("NFKD", word) if not unicodedata.combining(c))
    return POSSESSIVE.sub("", plain.casefold()).replace(",", "")


def content_words(text: str) -> set[str]:
    return {w for w in normalize_answer(text).split() if w not in STOPWORDS}


def question_overlap(question: str, sentence: str) -> float:
    asked = content_words(question)
    return len(asked & content_words(sentence)) / len(asked) if asked else 0.0


def asks_the_same(question: str, sentence: str) -> bool:
    """Whether a sentence says what the question asks of its names: it holds more than
    SAME_QUESTION_SHARE of the question's content words that are not names, in any inflection
    ("bridge" and "reopened" of "When will the Old Mill bridge reopen?"; "opened" is not
    "reopen"); any sentence does when the question has none ("How far is Panjshir from Kabul?":
    "the valley" may stand for a name)."""
    asked = {_stem(word) for word in content_words(question) - content_words(" ".join(asked_names(question)))}
    return not asked or len(asked & {_stem(word) for word in content_words(sentence)}) > SAME_QUESTION_SHARE * len(asked)


def _stem(word: str) -> str:
    """A word without its inflections' endings, an irregular verb's other forms as its own
    ("led" as "lead"): "reopened" and "reopens" as "reopen", "leads" and "lead" as "lea" (a stem
    is only ever compared with another)."""
    word = IRREGULAR.get(word, word)
    while ending := next((e for e in INFLECTIONS if word.endswith(e) and len(word) - len(e) >= 3), None):
        word = word[:-len(ending)]
    return word


def repeats_question(question: str, answer: str) -> float:
    said = content_words(answer)
    return len(said & content_words(question)) / len(said) if said else 1.0


def type_match(question: str, answer: str) -> float:
    """Does the answer look like what the question word asks for? 0 when the question does not say."""
    q = question.lower()
    if re.search(r"\bhow (many|much|long|far|old|large|big|high|tall)\b|\bwhat (percentage|number|amount)\b", q):
        expected = NUMBER
    elif re.search(r"\bwhen\b|\bwhat (year|date|day|month|century|time)\b|\bwhich (year|century)\b", q):
        expected = TIME
    elif re.search(r"\bwho(m|se)?\b|\bwhere\b", q):
        expected = NAME
    else:
        return 0.0
    return 1.0 if expected.search(answer) else -1.0


def agreement(texts: list[list[str]], doc_ids: list[str], margins: list[list[float]]) -> list[tuple[int, int]]:
    """For each passage's best span (texts[p][0]): how many other articles and other passages hold
    a span, best or runner-up, with a positive margin over "no answer", that is the same answer."""
    counts = []
    for p, (spans, doc_id) in enumerate(zip(texts, doc_ids)):
        passages, articles = 0, set()
        for q, (others, other_doc) in enumerate(zip(texts, doc_ids)):
            if q != p and any(m > 0 and same_answer(t, spans[0]) for t, m in zip(others, margins[q])):
                passages += 1
                if other_doc != doc_id:
                    articles.add(other_doc)
        counts.append((min(len(articles), MAX_AGREEING), min(passages, MAX_AGREEING)))
    return counts


def corroboration(texts: list[str], doc_ids: list[str], margins: list[float], overlaps: list[float],
                  sentences: list[str] | None = None) -> list[int]:
    """For each passage's best span (`texts`) that stands, how many other articles have a passage
    whose best span says all of it (says_all_of) and stands too: "150 kilometers northeast of
    Kabul" corroborates "150 kilometers", but a bare "Massoud" corroborates neither "Ahmad
    Massoud" nor his father "Ahmad Shah Massoud", as news names both again by the surname alone
    (the other way round it does: either says all of "Massoud", which is true if vague). A span
    stands when it beats "no answer" (its `margins` entry > 0) in a sentence that fits the
    question: one holding at least CORROBORATING_OVERLAP of the question's content words (its
    `overlaps` entry, question_overlap).
    Both must stand: otherwise a span the reader rejects, or one in a sentence about something
    else, would borrow the evidence of the one that does answer, and be chosen over it. An article
    that says it in the same sentence, word for word (`sentences`, each span's own), is the same
    report copied (a wire story two papers ran), not a second source."""
    stands = [margin > 0 and overlap >= CORROBORATING_OVERLAP for margin, overlap in zip(margins, overlaps)]
    wording = [" ".join(s.split()).casefold() for s in sentences] if sentences else [None] * len(texts)
    counts = []
    for text, doc_id, standing, words in zip(texts, doc_ids, stands, wording):
        articles = {other_doc for other, other_doc, other_stands, other_words in zip(texts, doc_ids, stands, wording)
                    if standing and other_stands and other_doc != doc_id and says_all_of(other, text)
                    and (words is None or other_words != words)}
        counts.append(min(len(articles), MAX_AGREEING))
    return counts
