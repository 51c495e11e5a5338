"""How an Answer looks in a terminal; shared by `rag ask` and `rag chat`."""
from __future__ import annotations

import json
from dataclasses import dataclass

from rich.console import Group
from rich.text import Text

from rag.corpus import Corpus, a_files_ids, why_skipped
from rag.errors import BadInput, RagError
from rag.schema import Answer, Citation, Document
from rag.wording import counted

SNIPPET_CHARS = 240
WORD_CHARS = 30  # how far a cut moves to fall between two words; further, it cuts the word
WHY_SPAN_CHARS = 80  # a span longer than this is cut in --why's list (its offsets say where it all is)


def answer_view(answer: Answer, corpus, dates=None) -> Group:
    """`corpus`: what the pipeline reads, with `.documents`, `.date_range` and `.undated` (a folder's
    Corpus or a Milvus archive's articles); `dates`: the DateRange the question was asked under, if any."""
    if answer.abstained:
        lines = _abstention_lines(answer, corpus)
        if dates is not None and corpus.undated:  # the one article that says it may be undated: say what was not read
            lines.append(Text(f"  (under --since/--until only dated articles are read: {counted(corpus.undated, 'undated article')} "
                              "left out)", style="dim"))
        return Group(*lines)
    lines = [
        Text(" ".join(answer.text.split()), style="bold green"),  # a wrapped line's answer on one line
        Text.assemble("  ", _quoted_sentence(answer.citation), "   ", _source_label(answer.citation)),
    ]
    if answer.supporting:
        lines.append(Text("  also stated by: " + ", ".join(s.doc_id for s in answer.supporting), style="dim"))
        if answer.latest and answer.latest.doc_id != answer.citation.doc_id:
            lines.append(Text(f"  latest to state it: {answer.latest.doc_id} · {answer.latest.date}", style="dim"))
    for conflict in answer.conflicts:
        lines.append(Text.assemble(("  sources disagree: ", "yellow"), (" ".join(conflict.answer.split()), "bold yellow"), "  ",
                                   _quoted_sentence(conflict.citation), "   ", _source_label(conflict.citation)))
    if answer.unmentioned:
        lines.append(Text(f"  check it: {unmentioned_note(answer.unmentioned)}", style="yellow"))
    return Group(*lines)


def unmentioned_note(names: list[str]) -> str:
    """What a user is told when the cited article never names what the question asks about."""
    return f"the cited article never mentions {_listed(names)}, which the question asks about"


def _listed(names: list[str]) -> str:
    quoted = [f"“{name}”" for name in names]
    return quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " or " + quoted[-1]


def answer_json_line(answer: Answer, why: bool = False, line: int | None = None) -> str:
    """The answer as `rag ask --json` writes it: one JSON object on one line, so that a script reads
    one answer a line (`why`: with "candidates"; `line`: the batch line it answers)."""
    return json.dumps(answer.to_json(why) | ({"line": line} if line else {}), ensure_ascii=False)


def why_view(answer: Answer, threshold: float) -> Group:
    """Each read passage's best span, most trusted first, with the decision's confidence in it and
    the reader's margin over "no answer": why `rag` answered or declined."""
    if not answer.candidates:  # nothing was read: no article passed the date filter, say
        return Group(Text("  why: no passage was read, so there was nothing to answer from", style="dim"))
    lines = [Text(f"  why: each passage's best span; an answer needs confidence ≥ {threshold:.2f}", style="dim")]
    for c in answer.candidates:
        text = " ".join(c.text.split())  # a span across a heading and its dateline: one line, as the rest
        text = text if len(text) <= WHY_SPAN_CHARS else text[:WHY_SPAN_CHARS - 1] + "…"
        lines.append(Text.assemble(f"    {c.confidence:.2f}  margin {c.margin:6.2f}  “", (text, "bold"), "”   ",
                                   (f"[{c.span.doc_id} · chars {c.span.start}-{c.span.end}]", "cyan")))
    return Group(*lines)


def source_label_text(citation: Citation) -> str:
    return f"[{citation.doc_id} · {citation.date or 'undated'} · chars {citation.start}-{citation.end}]"


def _source_label(citation: Citation) -> Text:
    return Text(source_label_text(citation), style="cyan")


def _quoted_sentence(citation: Citation) -> Text:
    """The cited sentence, shortened around the answer if long, with the answer highlighted."""
    # a line break shown as a space, one character for one, so the answer's offsets still hold
    sentence, start = citation.sentence.replace("\n", " "), citation.start - citation.sentence_start
    end = start + (citation.end - citation.start)
    left, right = _shown_part(sentence, start, end)
    text = Text("“" + ("…" if left else ""))
    text.append(sentence[left:start])
    text.append(sentence[start:end], style="bold reverse")
    text.append(sentence[end:right] + ("…" if right < len(sentence) else "") + "”")
    return text


def _shown_part(sentence: str, start: int, end: int) -> tuple[int, int]:
    """The part of the sentence shown: all of it when it fits in SNIPPET_CHARS, else about that
    much around the answer [start, end), cut at spaces, never inside a word."""
    if len(sentence) <= SNIPPET_CHARS:
        return 0, len(sentence)
    room = max(0, SNIPPET_CHARS - (end - start))
    left = max(0, start - room // 2)
    right = min(len(sentence), left + (end - start) + room)  # what one side does not use, the other does
    left = max(0, min(left, right - (end - start) - room))
    if left and sentence[left - 1] != " ":  # inside a word: on to its end, if a space is near
        space = sentence.find(" ", left, min(start, left + WORD_CHARS))
        left = space + 1 if space != -1 else left
    if right < len(sentence) and sentence[right] != " ":
        space = sentence.rfind(" ", max(end, right - WORD_CHARS), right)
        right = space if space != -1 else right
    return left, right


def _abstention_lines(answer: Answer, corpus) -> list[Text]:
    if not answer.passages:  # every index holds passages: the dates asked for left none to read
        dated = corpus.date_range  # from the archive's markers, not every article's text
        span = f"they run from {dated[0]} to {dated[1]}" if dated else "none of them is dated"
        return [Text(f"Not in the articles: none is dated in the range asked ({span}).", style="bold yellow")]
    closest = answer.passages[0].passage
    doc = corpus.documents[closest.doc_id]
    snippet = " ".join(closest.text.split())
    if len(snippet) > SNIPPET_CHARS:
        snippet = snippet[:SNIPPET_CHARS].rsplit(" ", 1)[0] + "…"
    lines = [Text("Not in the articles: I found no passage that answers this.", style="bold yellow"),
             Text.assemble("  closest passage: “", snippet, "”   ",
                           (f"[{closest.doc_id} · {doc.date or 'undated'} · chars {closest.start}-{closest.end}]", "cyan"))]
    if answer.unmentioned:
        lines.append(Text(f"  none of the articles read mentions {_listed(answer.unmentioned)}", style="dim"))
    return lines


CONTEXT_CHARS = 400  # shown on each side of a marked span, widened to whole lines


@dataclass(frozen=True)
class ArticleView:
    """What `rag show` prints: an article's text (the one citations slice), a span marked."""

    document: Document
    start: int | None = None
    end: int | None = None

    @classmethod
    def of(cls, corpus, doc_id: str, start: int | None, end: int | None) -> ArticleView:
        document = corpus.documents.get(doc_id)
        if document is None:
            skipped = why_skipped(getattr(corpus, "skipped", []), doc_id)  # a Milvus archive skips no file
            # a folder's articles only: asking a Milvus archive for every article's path would fetch them all
            hint = skipped or (a_files_ids(doc_id, corpus.documents) if isinstance(corpus, Corpus) else "")
            raise RagError(f"no article {doc_id!r} in {corpus.directory}{hint}")
        if (start is None) != (end is None):
            raise BadInput("give both --start and --end, or neither")
        if start is not None and not 0 <= start < end <= len(document.text):
            raise BadInput(f"--start {start} --end {end} is not a span of {doc_id} (0 to {len(document.text)})")
        return cls(document, start, end)

    def to_json(self) -> dict:
        d = self.document
        result = {"doc_id": d.doc_id, "title": d.title, "date": d.date, "source": d.source, "text": d.text}
        if self.start is not None:
            result["span"] = {"start": self.start, "end": self.end, "text": d.text[self.start:self.end]}
        return result

    def header(self) -> str:
        d = self.document
        return f"{d.doc_id} · {d.title or 'untitled'} · {d.date or 'undated'} · {d.source}"

    def body(self, marked_style: str | None) -> Text:
        """The whole text, or with a span: the lines around it, the span marked (by a style on a
        terminal, else by ⟦ ⟧)."""
        text = self.document.text
        if self.start is None:
            return Text(text)
        left = text.rfind("\n", 0, max(0, self.start - CONTEXT_CHARS)) + 1
        right = text.find("\n", min(len(text), self.end + CONTEXT_CHARS))
        right = len(text) if right < 0 else right
        span = text[self.start:self.end]
        view = Text("…" if left else "")
        view.append(text[left:self.start])
        view.append(span, style=marked_style) if marked_style else view.append(f"⟦{span}⟧")
        view.append(text[self.end:right] + ("…" if right < len(text) else ""))
        return view
