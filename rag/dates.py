"""Which article dates a question may be answered from (--since/--until)."""
from __future__ import annotations

import datetime
import re
from dataclasses import dataclass

import numpy as np

from rag.errors import BadInput

ISO_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")  # how articles and options write a day


@dataclass(frozen=True)
class DateRange:
    """Article dates to answer from, both ends included; YYYY-MM-DD strings compare as dates."""

    since: str | None = None
    until: str | None = None

    @classmethod
    def parse(cls, since: str | None, until: str | None, names: tuple[str, str] = ("--since", "--until")) -> DateRange | None:
        """From --since/--until (None when neither is given); a malformed date is BadInput, naming
        the two as the caller calls them (`names`: an HTTP request's fields are since and until)."""
        if since is None and until is None:
            return None
        for name, value in zip(names, (since, until)):
            if value is not None and not _is_day(value):
                raise BadInput(f"{name} {value!r} is not a date (use YYYY-MM-DD)")
        if since and until and since > until:
            raise BadInput(f"{names[0]} {since} is after {names[1]} {until}")
        return cls(since, until)

    def holds(self, day: str | None) -> bool:
        """Is an article of this date (None: undated) answered from? Undated ones never are."""
        return bool(self.holds_each(np.array([day or ""]))[0])

    def holds_each(self, days: np.ndarray) -> np.ndarray:
        """`holds` for an array of YYYY-MM-DD strings at once ("" for undated), as a mask: the
        rule written once, vectorised because a date filter checks every passage of the index."""
        inside = days != ""
        if self.since:
            inside &= days >= self.since
        if self.until:
            inside &= days <= self.until
        return inside


def said_of_day(day: str | None) -> str:
    """A YYYY-MM-DD day as a text names it too: "2023-06-01 1 June 2023" ("" for none): asked
    about "3 May", an article dated 2024-05-03 mentions the 3."""
    if not day:
        return ""
    try:
        named = datetime.date.fromisoformat(day)
    except ValueError:
        return day
    return f"{day} {named.day} {named:%B %Y}"


HEAD_LINES = 4  # an article's head: a headline, a byline, a date or two (see rag.corpus.date_lines)
SENTENCE_ENDED = re.compile(r"[.!?][\"”’']?\s*$")  # a line below the headline that ends so: the story has begun
BYLINE = re.compile(r"\s*By\s+[A-Z][\w.'’-]*(?:,?\s+[A-Z][\w.'’-]*){0,5}\s*$")  # "By John Smith Jr.": no story yet


def story_begins(line: str) -> bool:
    """Whether a line below the headline begins the story: it ends a sentence, and is no byline."""
    return bool(SENTENCE_ENDED.search(line)) and not BYLINE.match(line)
# A line that only dates an article, as a page's head writes it ("Date: 2024-05-06", "Posted on
# May 6, 2024", "Mon 6 May 2024 14.05 BST", "2024-05-07 (updated 2024-05-08)"): rag.corpus
# cuts no sentence from it, and a .txt's first date line is read past whole when it is one.
_MONTH = r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)"
_WEEKDAY = r"(?:(?:mon|tues?|wed(?:nes)?|thu(?:rs?)?|fri|sat(?:ur)?|sun)(?:day)?\.?,?\s+)"
_A_DATE = (rf"{_WEEKDAY}?(?:\d{{4}}-\d{{2}}-\d{{2}}|\d{{1,2}}[/.]\d{{1,2}}[/.]\d{{2,4}}"
           rf"|{_MONTH}\.?\s+\d{{1,2}}(?:st|nd|rd|th)?,?\s+\d{{4}}|\d{{1,2}}(?:st|nd|rd|th)?\s+{_MONTH}\.?,?\s+\d{{4}})")
# "T10:00:00Z", ", 14:05", " at 2:05 p.m. EDT", " 14.05 BST"
_A_TIME = r"(?:T|,|\s+at|\s*[-–—|·])?\s*\d{1,2}[:.]\d{2}(?:[:.]\d{2}(?:\.\d+)?)?(?:\s*[ap]\.?m\.?)?(?:\s*(?:[a-z]{1,5}|[+-]\d{2}:?\d{2}))?"
DATE_LABELS = r"date|dated|published|posted|updated|last updated|first published|modified"  # what a date line may open with
_LABEL = rf"(?:{DATE_LABELS})[ \t]*:?[ \t]*(?:on[ \t]+)?"
_DATED = rf"(?:{_LABEL})?{_A_DATE}(?:{_A_TIME})?"
DATE_ONLY = re.compile(rf"[\s\W]*{_DATED}(?:[\s|·•,;()\[\]–—-]+{_DATED})*[\s)\].]*", re.I)
# Its first date, as a day: written YYYY-MM-DD, or with the month's name either side of the day
_WRITTEN_DAY = re.compile(rf"(?P<iso>\d{{4}}-\d{{2}}-\d{{2}})|(?P<numbers>\d{{1,2}}[/.]\d{{1,2}}[/.]\d{{2,4}})"
                          rf"|(?P<month>{_MONTH})\.?\s+(?P<day>\d{{1,2}})(?:st|nd|rd|th)?,?\s+(?P<year>\d{{4}})"
                          rf"|(?P<day2>\d{{1,2}})(?:st|nd|rd|th)?\s+(?P<month2>{_MONTH})\.?,?\s+(?P<year2>\d{{4}})", re.I)
MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")


def _day_in_numbers(numbers: str, line: str) -> tuple[str | None, str | None]:
    """A date in numbers only, with a four-digit year: the day, where only one order of day and
    month makes one (31/12/2024, 12/31/2024); else why none. One with a two-digit year gives
    (None, None): "3.10.12" under a headline is a version as often as a day."""
    first, second, year = re.split(r"[/.]", numbers)
    if len(year) != 4:
        return None, None
    days = {day for day in (f"{year}-{int(second):02d}-{int(first):02d}", f"{year}-{int(first):02d}-{int(second):02d}")
            if _is_day(day)}
    if len(days) == 1:
        return days.pop(), None
    if not days:
        return None, f"date '{numbers}' is no day of the calendar: the article is read as undated"
    return None, (f"its line '{line.strip()[:60]}' dates it in numbers only, which could be day or month first: "
                  "write the date YYYY-MM-DD (or with the month's name); the article is read as undated")


def day_of_date_line(line: str) -> tuple[str | None, str | None]:
    """(the day a line that only dates an article gives, why it gives none): its first date,
    written YYYY-MM-DD or with the month's name ("Posted on May 6, 2024", "Mon 6 May 2024 14.05
    BST"). One in numbers only (06/05/2024: the 6th of May, or June 5th?) gives none, saying so;
    a line that is not only a date gives (None, None)."""
    if not DATE_ONLY.fullmatch(line):
        return None, None
    written = _WRITTEN_DAY.search(line)
    if written["numbers"]:
        return _day_in_numbers(written["numbers"], line)
    if written["iso"]:
        return article_day(written["iso"])
    month = MONTHS.index((written["month"] or written["month2"])[:3].lower()) + 1
    day = f"{written['year'] or written['year2']}-{month:02d}-{int(written['day'] or written['day2']):02d}"
    if not _is_day(day):
        return None, f"date '{written.group().strip()}' is no day of the calendar: the article is read as undated"
    return day, None


def article_day(given) -> tuple[str | None, str | None]:
    """(the day an article's date field or line gives, why it gives none): a value that starts
    with a real YYYY-MM-DD day ("2021-09-06T08:30:00Z" too) gives that day; none gives (None,
    None); anything else (2021-13-45, "September 6, 2021") leaves the article undated, saying so,
    since a date filter would then leave it out."""
    if given is None or str(given).strip() == "":
        return None, None
    text = str(given).strip()
    day = ISO_DAY.match(text)
    if day and _is_day(day.group()) and text[day.end():day.end() + 1] in ("", "T", " ", ","):  # a time may follow ("2024-03-12, 14:05")
        return day.group(), None
    if day and text[day.end():day.end() + 1] in ("", "T", " ", ","):  # written so, but no day of the calendar
        return None, f"date {text[:40]!r} is no day of the calendar: the article is read as undated"
    return None, f"date {text[:40]!r} is not a day written YYYY-MM-DD: the article is read as undated"


def _is_day(text: str) -> bool:
    """YYYY-MM-DD and a real day (fromisoformat alone also takes week dates like 2024-W01-1)."""
    if not ISO_DAY.fullmatch(text):
        return False
    try:
        datetime.date.fromisoformat(text)
    except ValueError:
        return False
    return True
