"""Plain text: the document is the file exactly as open(path, encoding="utf-8").read()
returns it, so citations are offsets into the file itself. A leading ` date YYYY-MM-DD` line
(or `Date: YYYY-MM-DD`, `Published:`, `Posted:`, `Updated:` …) is the article's date; so is such a line under
a first line, the headline, which is then the title."""
from __future__ import annotations

import itertools
import re
from pathlib import Path
from typing import NamedTuple

from rag.dates import DATE_LABELS, DATE_ONLY, HEAD_LINES, article_day, day_of_date_line, story_begins
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
MAX_HEADLINE_CHARS = 300
ORDINALS = ("first", "second", "third", "fourth")  # the head's lines, as a warning names them
MONTHS = "Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec"
# a first line meant as a date in another form ("date March 15, 2024", "Date: 15/03/2024"): said,
# since the article is then undated, which a date filter leaves out. A capital "Date" needs its
# colon: "Date 12 of the tour was cancelled" opens a story.
OTHER_DATE_LINE = re.compile(rf"\A\ufeff?\s*(?:date[ \t]+|(?i:{DATE_LABELS})[ \t]*:[ \t]*|(?i:posted|published|updated)[ \t]+on[ \t]+)"
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
    column = len(raw[raw.rfind(b"\n", 0, at) + 1:at].decode("utf-8", errors="replace")) + 1  # in characters
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
    head = _head_date(text)
    # A date line first is read past (the sentences begin after it; raise corpus.SENTENCE_RULES
    # whenever where they begin changes); under a headline, both lines stay in the text.
    document = Document(doc_id=path.stem, path=str(path), text=text, date=head.day, body_start=head.body_start,
                        title=head.title, source=str(path))
    return [document], [f"{NOTE}{path.name}: {head.problem}"] if head.problem else []


class HeadDate(NamedTuple):
    day: str | None
    problem: str | None  # why a line meant as a date gives no day
    body_start: int  # past a date line that comes first
    title: str | None  # the headline, when a date line is under it


def _head_date(text: str) -> HeadDate:
    """The article's date, from the first line of its head that dates it: a first line, or one
    under the headline (a byline may come between), until a line that ends a sentence. Below
    the first, only a line that holds nothing but the date: "dated 2024-03-01, which …" in a
    hard-wrapped first paragraph is the story's."""
    head = []
    for n, found in enumerate(itertools.islice(re.finditer(r"[^\n]*\S[^\n]*", text), HEAD_LINES)):
        head.append((found.start(), found.end()))
        line = found.group()
        labelled = DATE_LINE.match(line) if n == 0 or DATE_ONLY.fullmatch(line) else None
        day, problem = article_day(labelled.group(1)) if labelled else day_of_date_line(line)
        if day or problem:
            if n == 0:
                return HeadDate(day, problem, _past(text, found.end(), found.start() + labelled.end() if labelled else found.end()), None)
            return HeadDate(day, problem, 0, _title(text, head[0]) if day else None)
        if n and story_begins(line):
            break
    return HeadDate(None, _a_line_like_a_date(text, head), 0, None)


def leading_day(text: str) -> tuple[str | None, int]:
    """(the day a first line that holds only a date gives, where that line ends): for a format
    whose other date lines are its own (markdown's front matter); (None, 0) for none."""
    first = re.search(r"[^\n]*\S[^\n]*", text)
    day = day_of_date_line(first.group())[0] if first else None
    return (day, first.end()) if day else (None, 0)


def _title(text: str, first_line: tuple[int, int]) -> str | None:
    """The headline above a date line: the first line, unless it is too long to be one."""
    headline = text[first_line[0]:first_line[1]].lstrip("\ufeff").strip()
    return headline if len(headline) <= MAX_HEADLINE_CHARS else None


def _a_line_like_a_date(text: str, head: list[tuple[int, int]]) -> str | None:
    """Why a line of the head meant as a date gives none (the first such line), or None."""
    for n, (start, _) in enumerate(head):
        said = _other_date_line(text if n == 0 else text[start:], ORDINALS[n])
        if said:
            return said
    return None


def _past(text: str, line_end: int, date_end: int) -> int:
    """Past the whole first line when all of it only dates the article ("Date: 2024-03-12, 14:05";
    left in the body, "14:05" was an answer to "when?"), else past the date and its time."""
    return line_end if DATE_ONLY.fullmatch(text, 0, line_end) else date_end


def past_the_date_line(text: str, date_line: re.Match) -> int:
    """Where the sentences begin after a first date line (DATE_LINE's match at the start of `text`)."""
    line_end = text.find("\n")
    return _past(text, len(text) if line_end < 0 else line_end, date_line.end())


def _other_date_line(text: str, which: str) -> str | None:
    """Why a line meant as a date in another form leaves the article undated, or None."""
    other = OTHER_DATE_LINE.match(text)
    if not other:
        return None
    written = other.group(0).lstrip("\ufeff").strip()  # the line as the writer wrote it
    return (f"its {which} line starts like a date ('{written}'), but a date is read from a line that holds only "
            "the date (written YYYY-MM-DD or with the month's name), or from 'Date: YYYY-MM-DD' before the text: the "
            "article is read as undated")
