"""rag: offline, citation-first question answering over a folder of news articles.

    from rag import build_pipeline
    pipeline = build_pipeline()           # bundled articles, models and settings from models.toml
    answer = pipeline.ask("Who leads the resistance in Panjshir?")
    answer.text, answer.citation
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # what type checkers and editors see; at run time each name comes when asked for
    from rag.assembly import build_pipeline
    from rag.errors import BadInput, RagError
    from rag.pipeline import Pipeline
    from rag.schema import Answer, Candidate, Citation, Conflict, Document, Passage, RetrievedPassage, Span

# Each public name is imported when first asked for, so `import rag` (which every `rag` command
# does first) stays light: a Ctrl-C while the command starts is then caught by rag.entry.
_HOMES = {"build_pipeline": "rag.assembly", "BadInput": "rag.errors", "RagError": "rag.errors", "Pipeline": "rag.pipeline",
          **{name: "rag.schema" for name in ("Answer", "Candidate", "Citation", "Conflict", "Document", "Passage",
                                             "RetrievedPassage", "Span")}}

__all__ = ["Answer", "BadInput", "Candidate", "Citation", "Conflict", "Document", "Passage", "Pipeline", "RagError",
           "RetrievedPassage", "Span", "build_pipeline"]  # the names of _HOMES


def __getattr__(name: str):
    if name not in _HOMES:
        raise AttributeError(f"module 'rag' has no attribute {name!r}")
    return getattr(importlib.import_module(_HOMES[name]), name)


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
