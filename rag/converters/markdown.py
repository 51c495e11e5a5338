"""Markdown: the text of its headings, paragraphs, list items, quotes and tables, without the markup
(markdown-it-py parses it), a blank line between blocks (so no answer runs from a heading into
its body). The title and date are those of its front matter (YAML between ---, Hugo's TOML
between +++, or Pelican's and MultiMarkdown's leading "Title:"/"Date:" lines); else the title
is the first heading and the date a leading ` date YYYY-MM-DD` line."""
from __future__ import annotations

import re
import tomllib
from pathlib import Path

from rag.converters.text import DATE_LINE, decode_as_data, leading_day, past_the_date_line
from rag.dates import article_day
from rag.schema import NOTE, Document

VERSION = 10  # raised when it (or rag.converters.text, which it uses) reads the same bytes otherwise: cached conversions are redone
LIBRARIES = ("markdown-it-py",)  # their versions are in the cached conversions' key too

FRONT_MATTER = re.compile(r"\A---\n(.*?)\n---(?:\n|\Z)", re.S)  # YAML, as Jekyll and most tools write it
TOML_FRONT_MATTER = re.compile(r"\A\+\+\+\n(.*?)\n\+\+\+(?:\n|\Z)", re.S)  # Hugo's
# Pelican's and MultiMarkdown's: "Key: value" lines up to the first blank line, each key one of
# theirs, and read only when they give a title or a date: a story opening "KABUL: The Taliban
# said…" or "Note: the vote was close" stays story
METADATA_KEYS = ("title", "date", "modified", "author", "authors", "tags", "category", "slug", "summary", "lang",
                 "status", "keywords", "subtitle", "description")
METADATA_BLOCK = re.compile(rf"\A(?:(?i:{'|'.join(METADATA_KEYS)}):[ \t]*[^\n]*\n(?:[ \t]+\S[^\n]*\n)*)+(?:\n|\Z)")  # a value may go on indented
FIELD = re.compile(r"^(title|date):[ \t]*(.*?)[ \t]*$", re.M | re.I)  # the value as written
QUOTES = ('"', "'")
# a quoted YAML value, then at most a comment: inside "…" a backslash escapes, inside '…' '' is a quote
QUOTED = {'"': re.compile(r'"((?:[^"\\]|\\.)*)"(?:\s+#.*)?$'), "'": re.compile(r"'((?:[^']|'')*)'(?:\s+#.*)?$")}
COLLECTIONS = {"[": ("]", "list"), "{": ("}", "map")}  # YAML's flow collections: what closes each, what it is


def convert(path: Path, raw: bytes) -> tuple[list[Document], list[str]]:
    fields, source, problems = _front_matter(decode_as_data(raw))
    date_line = DATE_LINE.match(source)
    if date_line:
        fields.setdefault("date", date_line.group(1))
        source = source[past_the_date_line(source, date_line):]
    elif (day := leading_day(source))[0]:  # "Posted on May 6, 2024", as in a .txt
        fields.setdefault("date", day[0])
        source = source[day[1]:]
    blocks, headings = _blocks(source)
    text = "\n\n".join(blocks)
    if not text.strip():
        raise ValueError("no words in it")
    date, problem = article_day(fields.get("date"))
    problems += [problem] if problem else []
    return ([Document(doc_id=path.name, path=str(path), text=text, date=date, body_start=0,
                      title=fields.get("title") or (headings[0] if headings else None), source=str(path))],
            [f"{NOTE}{path.name}: {why}" for why in problems])


def _front_matter(source: str) -> tuple[dict[str, str], str, list[str]]:
    """(its title and date fields, the text after it, what was wrong with it)."""
    if front := FRONT_MATTER.match(source):
        fields, problems = _yaml_fields(front.group(1))
        return fields, source[front.end():], problems
    if front := TOML_FRONT_MATTER.match(source):
        try:
            table = tomllib.loads(front.group(1))
        except tomllib.TOMLDecodeError as why:
            return {}, source[front.end():], [f"its +++ front matter is not TOML ({why}): no title or date read from it"]
        # a TOML date is a date or datetime object: str() writes it YYYY-MM-DD first
        return {key: str(table[key]) for key in ("title", "date") if key in table}, source[front.end():], []
    front = METADATA_BLOCK.match(source)
    fields = _fields(front.group()) if front else {}
    return (fields, source[front.end():], []) if fields else ({}, source, [])


def _fields(front: str) -> dict[str, str]:
    """Pelican's "Key: value" lines: each value as written, a quote at either end left out."""
    return {key.lower(): _unquoted(value) for key, value in FIELD.findall(front)}


def _unquoted(value: str) -> str:
    if value[:1] in QUOTES:
        value = value[1:]
    return value[:-1] if value[-1:] in QUOTES else value


def _yaml_fields(front: str) -> tuple[dict[str, str], list[str]]:
    """(the title and date of YAML front matter, what is wrong with them). Its lines are read one
    by one, not by a YAML parser: a value that is no text ("[broken", an unclosed quote) is said,
    and not taken for the title."""
    fields, problems = {}, []
    for key, value in FIELD.findall(front):
        key = key.lower()
        text, wrong = _yaml_text(value)
        if wrong:
            problems.append(f"its --- front matter's {key} ({value!r}) {wrong}: no {key} read from it")
        else:
            fields[key] = text
    return fields, problems


def _yaml_text(value: str) -> tuple[str, str | None]:
    """(the text a one-line YAML value gives, what is wrong with it: a quote it never closes, or
    text after it, or a list or map, opened with "[" or "{", closed or not)."""
    first = value[:1]
    if first in QUOTES:
        quoted = QUOTED[first].match(value)
        if not quoted:
            return "", "opens a quote it never closes" if value.count(first) < 2 else "has text after its closing quote"
        inner = quoted.group(1)
        return (inner.replace("''", "'") if first == "'" else re.sub(r'\\(["\\])', r"\1", inner)), None
    if first in COLLECTIONS:
        closing, kind = COLLECTIONS[first]
        return "", f"is a YAML {kind}, not text" if value.endswith(closing) else f"opens a YAML {kind} it never closes"
    return value, None


def _blocks(source: str) -> tuple[list[str], list[str]]:
    """Each block's text on one line (a table's row a block, written "| a | b |" as web pages'
    tables are), and the headings' text."""
    from markdown_it import MarkdownIt

    blocks, headings, in_heading, row = [], [], False, None
    for token in MarkdownIt("commonmark").enable("table").parse(source):
        if token.type == "heading_open":
            in_heading = True
        elif token.type == "heading_close":
            in_heading = False
        elif token.type == "tr_open":
            row = []
        elif token.type == "tr_close":
            blocks.append(f"| {' | '.join(row)} |")
            row = None
        elif token.type == "inline":
            line = " ".join(_plain(token).split())
            if row is not None:
                row.append(line.replace("|", "\\|"))  # a cell's own pipe, escaped as written: not a cell boundary
            elif line:
                blocks.append(line)
                if in_heading:
                    headings.append(line)
        elif token.type in ("fence", "code_block") and token.content.strip():
            blocks.append(" ".join(token.content.split()))
    return blocks, headings


def _plain(inline) -> str:
    parts = []
    for child in inline.children or []:
        if child.type in ("text", "code_inline", "html_inline"):
            parts.append(child.content if child.type != "html_inline" else "")
        elif child.type in ("softbreak", "hardbreak"):
            parts.append(" ")
        elif child.type == "image":
            parts.append(child.content)
    return "".join(parts)
