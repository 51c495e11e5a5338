"""Plain text: the document is the file exactly as open(path, encoding="utf-8").read()
returns it, so citations are offsets into the file itself. A leading ` date YYYY-MM-DD` line
(or `Date: YYYY-MM-DD`, `Published:`, `Posted:`, `Updated:` …) is the article's date; so is such a line under
a first line, the headline, which is then the title."""
from __future__ import annotations

import re
from pathlib import Path

from rag.dates import DATE_LABELS, DATE_ONLY, article_day
from rag.schema import NOTE, Document

# "date 2024-03-12", and as people also write it, "Date: 2024-03-12" or, as saved news pages do,
# "Published: 2024-03-12" (any case, colon or not; a time after it, as exports write
# "2024-03-12T10:00:00Z" and pages "2024-03-12 14:05", "2024-03-12 9:30 am UTC", is read past:
# left at the start of the body, "14:05" was read as the answer to "when?")
TIME = r"(?:T|[ \t]+)\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:[ \t]*(?i:[ap]\.?m\.?))?(?:[ \t]*(?:Z|UTC|GMT|[ECMP][SD]T|BST|CES?T|IST|[+-]\d{2}:?\d{2})\b)?"
DATE_LINE = re.compile(rf"\A\ufeff?\s*(?i:{DATE_LABELS})(?:[ \t]*:[ \t]*|[ \t]+)(\d{{4}}-\d{{2}}-\d{{2}})(?:{TIME})?\b[ \t]*")
# As saved news pages and CMS exports write it: the headline, then the date line. The headline
# is then the title, and both lines stay in the text: the headline a sentence of its own, the
# date line none (corpus.date_lines: no answer comes from it).
HEADLINE = re.compile(r"\A\ufeff?[ \t]*([^\n]{0,300}?\S)[ \t]*\n")
MONTHS = "Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec"
# a first line meant as a date in another form ("date March 15, 2024", "Date: 15/03/2024"): said,
# since the article is then undated, which a date filter leaves out. A capital "Date" needs its
# colon: "Date 12 of the tour was cancelled" opens a story.
OTHER_DATE_LINE = re.compile(rf"\A\ufeff?\s*(?:date[ \t]+|(?i:{DATE_LABELS})[ \t]*:[ \t]*)"
                             rf"((?:\d|(?:{MONTHS})[a-z]*\.?\s+\d)\S*(?:[ \t]+\d\S*)?)")


def decode(raw: bytes) -> str:
    """UTF-8 text with line endings as text-mode open() gives them (ValueError if not UTF-8)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as bad:
        raise ValueError(f"not UTF-8 text ({_where_it_is_not(raw, bad.start)})") from None
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _where_it_is_not(raw: bytes, at: int) -> str:
    """Where a file stops being UTF-8, and how to mend it: one stray byte (a curly quote pasted
    from Windows-1252) drops the whole article."""
    line = raw.count(b"\n", 0, at) + 1
    column = at - (raw.rfind(b"\n", 0, at) + 1) + 1
    return (f"byte 0x{raw[at]:02x} at line {line}, column {column}; if it was saved as Windows-1252 or Latin-1, "
            "iconv -f WINDOWS-1252 -t UTF-8 turns it into UTF-8")


def decode_as_data(raw: bytes) -> str:
    """`decode`, less a leading byte-order mark: for formats whose text is parsed, not cited by
    offsets into the file (a .txt keeps it, so that offsets match open().read())."""
    return decode(raw).removeprefix("\ufeff")


def convert(path: Path, raw: bytes) -> tuple[list[Document], list[str]]:
    text = decode(raw)
    if not text.strip():
        raise ValueError("no words in it")
    first_line = DATE_LINE.match(text)
    headline = None if first_line else HEADLINE.match(text)
    under_headline = DATE_LINE.match(text[headline.end():]) if headline else None  # a slice: the pattern's start anchor never matches at a pos
    if first_line or under_headline:
        date, problem = article_day((first_line or under_headline).group(1))
    else:
        date, problem = None, _other_date_line(text, "first") or (headline and _other_date_line(text[headline.end():], "second"))
    # A date line first is read past (the sentences begin after it; raise corpus.SENTENCE_RULES
    # whenever where they begin changes); under a headline, both lines stay in the text.
    document = Document(doc_id=path.stem, path=str(path), text=text, date=date,
                        body_start=past_the_date_line(text, first_line) if first_line else 0,
                        title=headline.group(1) if under_headline else None, source=str(path))
    return [document], [f"{NOTE}{path.name}: {problem}"] if problem else []


def past_the_date_line(text: str, date_line: re.Match) -> int:
    """Where the sentences begin after a first date line: past the whole line when all of it only
    dates the article ("Date: 2024-03-12, 14:05", "Posted: 2024-03-12 | 14:05 BST"; left in the
    body, "14:05" was an answer to "when?"), else past the date and its time."""
    line_end = text.find("\n")
    line_end = len(text) if line_end < 0 else line_end
    return line_end if DATE_ONLY.fullmatch(text, 0, line_end) else date_line.end()


def _other_date_line(text: str, which: str) -> str | None:
    """Why a line meant as a date in another form leaves the article undated, or None."""
    other = OTHER_DATE_LINE.match(text)
    if not other:
        return None
    written = other.group(0).lstrip("\ufeff").strip()  # the line as the writer wrote it
    return (f"its {which} line starts like a date ('{written}'), but only 'date YYYY-MM-DD' "
            "(or 'Date: YYYY-MM-DD', 'Published: YYYY-MM-DD', 'Posted: …', 'Updated: …') is read as one: the article is read as undated")
