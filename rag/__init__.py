"""rag: offline, citation-first question answering over a folder of news articles.

    from rag import build_pipeline
    pipeline = build_pipeline()           # bundled articles, models and settings from models.toml
    answer = pipeline.ask("Who leads the resistance in Panjshir?")
    answer.text, answer.citation
"""
from rag.assembly import build_pipeline
from rag.errors import BadInput, RagError
from rag.pipeline import Pipeline
from rag.schema import Answer, Candidate, Citation, Conflict, Document, Passage, RetrievedPassage, Span

__all__ = ["Answer", "BadInput", "Candidate", "Citation", "Conflict", "Document", "Passage", "Pipeline", "build_pipeline",
           "RagError", "RetrievedPassage", "Span"]
