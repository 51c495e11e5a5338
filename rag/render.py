"""How an Answer looks in a terminal; shared by `rag ask` and `rag chat`."""
from __future__ import annotations

from rich.console import Group
from rich.text import Text

from rag.schema import Answer, Citation

SNIPPET_CHARS = 240


def answer_view(answer: Answer, documents: dict) -> Group:
    if answer.abstained:
        return Group(*_abstention_lines(answer, documents))
    lines = [
        Text(answer.text, style="bold green"),
        Text.assemble("  ", _quoted_sentence(answer.citation), "   ", _source_label(answer.citation)),
    ]
    if answer.supporting:
        lines.append(Text("  also stated by: " + ", ".join(s.doc_id for s in answer.supporting), style="dim"))
        if answer.latest and answer.latest.doc_id != answer.citation.doc_id:
            lines.append(Text(f"  latest to state it: {answer.latest.doc_id} · {answer.latest.date}", style="dim"))
    for conflict in answer.conflicts:
        lines.append(Text.assemble(("  sources disagree: ", "yellow"), (conflict.answer, "bold yellow"), "  ",
                                   _quoted_sentence(conflict.citation), "   ", _source_label(conflict.citation)))
    return Group(*lines)


def source_label_text(citation: Citation) -> str:
    return f"[{citation.doc_id} · {citation.date or 'undated'} · chars {citation.start}-{citation.end}]"


def _source_label(citation: Citation) -> Text:
    return Text(source_label_text(citation), style="cyan")


def _quoted_sentence(citation: Citation) -> Text:
    """The cited sentence, shortened around the answer if long, with the answer highlighted."""
    sentence, start = citation.sentence, citation.start - citation.sentence_start
    end = start + (citation.end - citation.start)
    left = max(0, start - SNIPPET_CHARS // 2)
    right = min(len(sentence), max(end + SNIPPET_CHARS // 2, left + SNIPPET_CHARS))
    text = Text("“" + ("…" if left else ""))
    text.append(sentence[left:start])
    text.append(sentence[start:end], style="bold reverse")
    text.append(sentence[end:right] + ("…" if right < len(sentence) else "") + "”")
    return text


def _abstention_lines(answer: Answer, documents: dict) -> list[Text]:
    lines = [Text("Not in the articles: I found no passage that answers this.", style="bold yellow")]
    if answer.passages:
        closest = answer.passages[0].passage
        doc = documents[closest.doc_id]
        snippet = " ".join(closest.text.split())
        if len(snippet) > SNIPPET_CHARS:
            snippet = snippet[:SNIPPET_CHARS].rsplit(" ", 1)[0] + "…"
        lines.append(Text.assemble("  closest passage: “", snippet, "”   ",
                                   (f"[{closest.doc_id} · {doc.date or 'undated'} · chars {closest.start}-{closest.end}]", "cyan")))
    return lines
