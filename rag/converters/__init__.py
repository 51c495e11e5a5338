"""One converter per file format, chosen by suffix (the Haystack way). Each turns a file's bytes
into Documents whose `text` every citation slices: the file itself for .txt, the extracted text
for the others."""
from __future__ import annotations

from pathlib import Path
from types import ModuleType

from rag.converters import html, jsonl, markdown, text

CONVERTERS: dict[str, ModuleType] = {".txt": text, ".md": markdown, ".markdown": markdown,
                                     ".html": html, ".htm": html, ".jsonl": jsonl}
FORMATS = ", ".join(CONVERTERS)  # for messages: the suffixes read as articles


def converter_for(path: Path) -> ModuleType | None:
    return CONVERTERS.get(path.suffix.lower())
