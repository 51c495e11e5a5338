"""JSON Lines news exports: one record a line, {id, title, date, url, text}; only text is
required. Each record is a document `<file name>#<id>` (the line number when there is no id).
A bad record is skipped, and named; the rest of the file is read."""
from __future__ import annotations

import json
from pathlib import Path

from rag.converters.text import decode_as_data
from rag.dates import ISO_DAY
from rag.schema import Document



def convert(path: Path, raw: bytes) -> tuple[list[Document], list[str]]:
    documents, problems = [], []
    for number, line in enumerate(decode_as_data(raw).split("\n"), 1):  # not splitlines(): U+2028 may sit inside a JSON string
        if not line.strip():
            continue
        try:
            documents.append(_record(path, number, json.loads(line)))
        except (ValueError, TypeError) as why:
            problems.append(f"{path.name} line {number}: {why}")
    if not documents:
        raise ValueError("no usable records" + (f" ({problems[0]})" if problems else ""))
    return documents, problems


def _record(path: Path, number: int, record) -> Document:
    if not isinstance(record, dict):
        raise ValueError("not a JSON object")
    text = record.get("text")
    if not isinstance(text, str) or not text.strip():
        raise ValueError("no text")
    given = record.get("id")
    record_id = (str(given).strip() if given is not None else "") or str(number)  # no id, null or blank: the line
    day = ISO_DAY.match(str(record.get("date") or ""))
    title, url = record.get("title"), record.get("url")
    return Document(doc_id=f"{path.name}#{record_id}", path=str(path), text=text, date=day.group() if day else None,
                    body_start=0, title=title if isinstance(title, str) else None,
                    source=url if isinstance(url, str) and url else str(path))
