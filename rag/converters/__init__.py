"""One converter per file format, chosen by suffix (the Haystack way). Each turns a file's bytes
into Documents whose `text` every citation slices: the file itself for .txt, the extracted text
for the others."""
from __future__ import annotations

import functools
import hashlib
import importlib.metadata
from pathlib import Path
from types import ModuleType

from rag.converters import html, jsonl, markdown, text

CONVERTERS: dict[str, ModuleType] = {".txt": text, ".md": markdown, ".markdown": markdown,
                                     ".html": html, ".htm": html, ".jsonl": jsonl}
FORMATS = ", ".join(CONVERTERS)  # for messages: the suffixes read as articles
NOT_AN_ARTICLE_KIND = f"not a kind of file rag reads ({FORMATS})"  # why a .pdf or .docx is skipped, by every command


def converter_for(path: Path) -> ModuleType | None:
    return CONVERTERS.get(path.suffix.lower())


def conversion_key(path: Path, raw: bytes) -> str:
    """What a file's cached conversion is kept under: its bytes, and the converter and library
    that converted them, so that a better converter (or a new trafilatura) converts it again."""
    return hashlib.sha256(_made_by(converter_for(path)).encode() + b"\0" + raw).hexdigest()


@functools.cache
def _made_by(converter: ModuleType) -> str:
    libraries = " ".join(f"{name} {_version_of(name)}" for name in getattr(converter, "LIBRARIES", ()))
    return f"{converter.__name__} {converter.VERSION} {libraries}"


def _version_of(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:  # installed without metadata: keyed by the converter alone
        return "unknown"
