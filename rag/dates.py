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
    def parse(cls, since: str | None, until: str | None) -> DateRange | None:
        """From --since/--until (None when neither is given); a malformed date is BadInput."""
        if since is None and until is None:
            return None
        for flag, value in (("--since", since), ("--until", until)):
            if value is not None and not _is_day(value):
                raise BadInput(f"{flag} {value!r} is not a date (use YYYY-MM-DD)")
        if since and until and since > until:
            raise BadInput(f"--since {since} is after --until {until}")
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
    """A YYYY-MM-DD day as a text names it too: "2023-06-01 June 2023" ("" for none)."""
    if not day:
        return ""
    try:
        return f"{day} {datetime.date.fromisoformat(day):%B %Y}"
    except ValueError:
        return day


def article_day(given) -> tuple[str | None, str | None]:
    """(the day an article's date field or line gives, why it gives none): a value that starts
    with a real YYYY-MM-DD day ("2021-09-06T08:30:00Z" too) gives that day; none gives (None,
    None); anything else (2021-13-45, "September 6, 2021") leaves the article undated, saying so,
    since a date filter would then leave it out."""
    if given is None or str(given).strip() == "":
        return None, None
    text = str(given).strip()
    day = ISO_DAY.match(text)
    if day and _is_day(day.group()) and text[day.end():day.end() + 1] in ("", "T", " "):  # a time may follow
        return day.group(), None
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
