"""JSON Lines news exports: one record a line, {id, title, date, url, text}; only text is
required, and a text written as HTML is read as its text. Each record is a document
`<file name>#<id>` (the line number when there is no id). A bad record is skipped, and named;
the rest of the file is read."""
from __future__ import annotations

import json
import re
from pathlib import Path

from rag.converters.html import fragment_text, looks_like_markup
from rag.converters.text import decode_as_data
from rag.dates import article_day
from rag.schema import NOTE, Document
from rag.wording import counted

VERSION = 9  # raised when it (or rag.converters.text or .html, which it uses) reads the same bytes otherwise: cached conversions are redone
LIBRARIES = ("lxml",)  # a record written as HTML is read with it: its version is in the cached conversions' key too

# JSON may escape half of a character (a broken emoji, \ud83d), which no file or index can
# hold: each becomes U+FFFD, one character for one, so offsets into the text are unchanged
LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def convert(path: Path, raw: bytes) -> tuple[list[Document], list[str]]:
    documents, problems, line_of, by_line = [], [], {}, []
    for number, line in enumerate(decode_as_data(raw).split("\n"), 1):  # not splitlines(): U+2028 may sit inside a JSON string
        if not line.strip():
            continue
        try:
            record = json.loads(line, object_hook=_whole_characters)
            document, problem = _record(path, number, record)
        except json.JSONDecodeError as why:
            at = "" if why.msg.endswith(" at") else " at"  # "Unterminated string starting at" says it already
            problems.append(f"{path.name} line {number}: not JSON ({why.msg}{at} column {why.colno})")
            continue
        except (ValueError, TypeError) as why:
            problems.append(f"{path.name} line {number}: {why}")
            continue
        if document.doc_id in line_of:  # the first record keeps the id; this one is named by its line
            problems.append(f"{path.name} line {number}: its id is line {line_of[document.doc_id]}'s too")
            continue
        line_of[document.doc_id] = number
        documents.append(document)
        if not _given_id(record):
            by_line.append(document.doc_id)
        if problem:  # read all the same
            problems.append(f"{NOTE}{path.name} line {number}: {problem}")
    if not documents:
        raise ValueError("no usable records" + (f" ({problems[0]})" if problems else ""))
    if by_line:  # a line inserted above renames them: citations and a gold set's docs would then name others
        one = len(by_line) == 1
        problems.append(f"{NOTE}{path.name}: {counted(len(by_line), 'record')} without an id "
                        f"{'is' if one else 'are'} named by {'its line' if one else 'their lines'} "
                        f"({', '.join(by_line[:3])}{', …' if len(by_line) > 3 else ''}): a line inserted above "
                        f"renames {'it' if one else 'them'}; give each record an id")
    return documents, problems


JSON_KINDS = {bool: "true or false", int: "a number", float: "a number", dict: "an object", list: "a list"}


def _record(path: Path, number: int, record) -> tuple[Document, str | None]:
    """The record's document, and what in it could not be read though the record is kept."""
    if not isinstance(record, dict):
        raise ValueError("not a JSON object")
    text = record.get("text")
    if text is not None and not isinstance(text, str):  # {"text": 42}: "no text" would not say what is wrong
        raise ValueError(f"its text is {JSON_KINDS.get(type(text), type(text).__name__)}, not a string")
    if text is None or not text.strip():
        raise ValueError("no text")
    text = text.replace("\r\n", "\n").replace("\r", "\n")  # as a .txt is read: a line break is one character
    if looks_like_markup(text):  # CMS exports often keep the body as HTML: its text, not its tags
        text = fragment_text(text)
        if not text:
            raise ValueError("no text in its HTML")
    record_id = _given_id(record) or str(number)  # no id, null or blank: the line
    date, problem = article_day(record.get("date"))
    title, url = record.get("title"), record.get("url")
    return Document(doc_id=f"{path.name}#{record_id}", path=str(path), text=text, date=date,
                    body_start=0, title=title if isinstance(title, str) else None,
                    source=url if isinstance(url, str) and url else str(path)), problem


def _given_id(record: dict) -> str:
    given = record.get("id")
    return str(given).strip() if given is not None else ""


def _whole_characters(record: dict) -> dict:
    return {LONE_SURROGATE.sub("\ufffd", key): LONE_SURROGATE.sub("\ufffd", value) if isinstance(value, str) else value
            for key, value in record.items()}
