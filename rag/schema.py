"""Plain data the library passes around. Every span is (doc_id, start, end) in characters
of the original article file, so any citation can be checked by slicing that file."""
from __future__ import annotations

from dataclasses import dataclass, field

# starts what a converter says of an article it read all the same (a date it could not read),
# beside the reasons it left something out (rag.corpus.status_line)
NOTE = "warning: "


@dataclass(frozen=True)
class Document:
    doc_id: str
    path: str
    text: str  # the whole file as open(path).read() returns it, metadata line included
    date: str | None
    body_start: int  # where the article text starts (after a leading " date YYYY-MM-DD")
    title: str | None = None
    source: str = ""  # where it came from: the file's path, or the article's URL when known


@dataclass(frozen=True)
class Passage:
    doc_id: str
    start: int
    end: int
    text: str


@dataclass(frozen=True)
class RetrievedPassage:
    passage: Passage
    score: float  # reciprocal-rank-fusion score
    dense_score: float  # cosine similarity of question and passage embeddings
    bm25_score: float


@dataclass(frozen=True)
class Span:
    doc_id: str
    start: int
    end: int


@dataclass(frozen=True)
class Citation:
    doc_id: str
    date: str | None
    start: int
    end: int
    sentence: str
    sentence_start: int  # offset of `sentence` in the article, for highlighting the answer
    title: str | None = None
    source: str = ""


@dataclass(frozen=True)
class Candidate:
    """The reader's best span in one retrieved passage, with the evidence used to trust it."""

    text: str
    span: Span
    span_score: float  # start logit + end logit
    null_score: float  # CLS start + end logit: the reader's "no answer here" score
    dense_score: float
    confidence: float = 0.0
    evidence: object = None  # the rag.evidence.Evidence the confidence was computed from
    passage_index: int | None = None  # which of the answer's `passages` it was read in (passages of one article may overlap)

    @property
    def margin(self) -> float:
        return self.span_score - self.null_score


@dataclass(frozen=True)
class Conflict:
    answer: str
    score: float
    citation: Citation


@dataclass
class Answer:
    question: str
    text: str | None
    abstained: bool
    score: float
    citation: Citation | None
    supporting: list[Span] = field(default_factory=list)
    conflicts: list[Conflict] = field(default_factory=list)
    passages: list[RetrievedPassage] = field(default_factory=list)
    candidates: list[Candidate] = field(default_factory=list)
    timings_ms: dict[str, float] = field(default_factory=dict)
    latest: Citation | None = None  # of the articles stating the answer, the one with the latest date
    # the names and numbers the question asks about that the cited article never mentions (for a
    # decline: that none of the articles read mentions)
    unmentioned: list[str] = field(default_factory=list)

    def candidate_in(self, passage_index: int) -> Candidate | None:
        """The reader's span in `passages[passage_index]`, if it kept one."""
        return next((c for c in self.candidates if c.passage_index == passage_index), None)

    def to_json(self, why: bool = False) -> dict:
        """The stable `rag ask --json` contract; `why` adds "candidates" (`rag ask --why`)."""
        row = {
            "question": self.question,
            "answer": self.text,
            "abstained": self.abstained,
            "score": round(self.score, 4),
            "citation": _citation_json(self.citation) if self.citation else None,
            "supporting": [{"doc_id": s.doc_id, "start": s.start, "end": s.end} for s in self.supporting],
            "latest": _citation_json(self.latest) if self.latest else None,
            "conflicts": [
                {"answer": c.answer, "score": round(c.score, 4), "citation": _citation_json(c.citation)}
                for c in self.conflicts
            ],
            "unmentioned": self.unmentioned,
            "passages": [
                {"doc_id": r.passage.doc_id, "start": r.passage.start, "end": r.passage.end, "score": round(r.score, 6)}
                for r in self.passages
            ],
            "timings_ms": {k: round(v, 1) for k, v in self.timings_ms.items()},
        }
        return (row | {"candidates": self._candidates_json()}) if why else row

    def _candidates_json(self) -> list[dict]:
        """Each read passage's best span, most trusted first: what `rag ask --why` adds to the contract."""
        return [{"answer": c.text, "doc_id": c.span.doc_id, "start": c.span.start, "end": c.span.end,
                 "confidence": round(c.confidence, 4), "margin": round(c.margin, 2), "passage_index": c.passage_index}
                for c in self.candidates]


def _citation_json(c: Citation) -> dict:
    return {"doc_id": c.doc_id, "date": c.date, "start": c.start, "end": c.end, "sentence": c.sentence,
            "sentence_start": c.sentence_start, "title": c.title, "source": c.source}
