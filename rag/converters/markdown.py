"""Markdown: the text of its headings, paragraphs, list items and quotes, a blank line between
blocks (so no answer runs from a heading into its body), without the markup (markdown-it-py parses it). The title is front matter's `title:` or the
first heading; the date is front matter's `date:` or a leading ` date YYYY-MM-DD` line."""
from __future__ import annotations

import re
from pathlib import Path

from rag.converters.text import DATE_LINE, decode_as_data
from rag.dates import article_day
from rag.schema import NOTE, Document

VERSION = 6  # raised when it (or rag.converters.text, which it uses) reads the same bytes otherwise: cached conversions are redone
LIBRARIES = ("markdown-it-py",)  # their versions are in the cached conversions' key too

FRONT_MATTER = re.compile(r"\A\ufeff?---\n(.*?)\n---\n", re.S)
FIELD = re.compile(r"^(title|date):\s*[\"']?(.*?)[\"']?\s*$", re.M)


def convert(path: Path, raw: bytes) -> tuple[list[Document], list[str]]:
    source = decode_as_data(raw)
    fields = {}
    front = FRONT_MATTER.match(source)
    if front:
        fields = {k: v for k, v in FIELD.findall(front.group(1))}
        source = source[front.end():]
    date_line = DATE_LINE.match(source)
    if date_line:
        fields.setdefault("date", date_line.group(1))
        source = source[date_line.end():]
    blocks, headings = _blocks(source)
    text = "\n\n".join(blocks)
    if not text.strip():
        raise ValueError("no text in it")
    date, problem = article_day(fields.get("date"))
    return ([Document(doc_id=path.name, path=str(path), text=text, date=date, body_start=0,
                      title=fields.get("title") or (headings[0] if headings else None), source=str(path))],
            [f"{NOTE}{path.name}: {problem}"] if problem else [])


def _blocks(source: str) -> tuple[list[str], list[str]]:
    from markdown_it import MarkdownIt

    blocks, headings, in_heading = [], [], False
    for token in MarkdownIt("commonmark").parse(source):
        if token.type == "heading_open":
            in_heading = True
        elif token.type == "heading_close":
            in_heading = False
        elif token.type == "inline":
            line = " ".join(_plain(token).split())
            if line:
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
