"""Which article dates a question may be answered from (--since/--until)."""
from __future__ import annotations

import datetime
import re
from dataclasses import dataclass

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


def _is_day(text: str) -> bool:
    """YYYY-MM-DD and a real day (fromisoformat alone also takes week dates like 2024-W01-1)."""
    if not ISO_DAY.fullmatch(text):
        return False
    try:
        datetime.date.fromisoformat(text)
    except ValueError:
        return False
    return True
