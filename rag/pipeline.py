"""Question in, cited answer out: retrieval, reading, the answer-or-abstain decision, and
agreement between articles. The CLI, the chat and the evaluation all go through Pipeline.ask."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

from rag.config import PROJECT_ROOT, ModelsConfig, load_models_config
from rag.corpus import ChunkSettings, Corpus, load_corpus, sentence_around
from rag.errors import BadInput
from rag.index import IndexNotUsable, IndexStore, Manifest, PassageIndex, build_index
from rag.metrics import overlapping_answers, same_answer
from rag.schema import Answer, Candidate, Citation, Conflict, Span

MAX_QUESTION_CHARS = 500
MAX_CONFLICTS = 3
STRONG_CONFIDENCE = 0.5  # a conflicting answer is shown only if it is more likely right than wrong
DEFAULT_TOP_K = 5


def default_seeds_dir() -> Path:
    local = Path.cwd() / "seeds"
    return local if local.is_dir() else PROJECT_ROOT / "seeds"


def default_index_dir(seeds_dir: Path) -> Path:
    seeds_dir = Path(seeds_dir).resolve()
    return seeds_dir.parent / ".rag" / seeds_dir.name


INVISIBLE = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff"))  # zero-width characters


def validate_question(question: str) -> str:
    question = " ".join(question.translate(INVISIBLE).split())
    if not question:
        raise BadInput("the question is empty")
    if len(question) > MAX_QUESTION_CHARS:
        raise BadInput(f"the question is too long ({len(question):,} characters; at most {MAX_QUESTION_CHARS})")
    try:
        question.encode("utf-8")
    except UnicodeEncodeError:  # undecodable bytes smuggled in as surrogates (e.g. from argv)
        raise BadInput("the question is not valid UTF-8 text") from None
    if not any(ch.isalnum() for ch in question):
        raise BadInput("the question has no words")
    return question


class Pipeline:
    def __init__(self, corpus: Corpus, index: PassageIndex, embedder, models: ModelsConfig,
                 top_k: int = DEFAULT_TOP_K, on_status: Callable[[str], None] = lambda message: None):
        self.corpus = corpus
        self.index = index
        self.embedder = embedder
        self.models = models
        self.top_k = top_k
        self.abstention = models.reader.settings.abstention
        self._reader = None
        self._on_status = on_status

    @classmethod
    def open(cls, seeds_dir: Path | None = None, index_dir: Path | None = None, models: ModelsConfig | None = None,
             top_k: int = DEFAULT_TOP_K, chunking: ChunkSettings = ChunkSettings(), rebuild: bool = False,
             on_status: Callable[[str], None] = lambda message: None,
             on_progress: Callable[[int, int], None] | None = None) -> Pipeline:
        """Load the articles and their index, building (or rebuilding) the index when it is
        missing, stale or unreadable. The reader loads on the first question."""
        from rag.embedder import Embedder

        if top_k < 1:
            raise BadInput("--top-k must be at least 1")
        seeds_dir = Path(seeds_dir) if seeds_dir else default_seeds_dir()
        models = models or load_models_config()
        models.reader.resolve()  # a missing reader is reported now, not after building an index
        corpus = load_corpus(seeds_dir)
        for reason in corpus.skipped:
            on_status(f"skipped {reason}")
        embedder = Embedder(models.embedder, on_status)
        store = IndexStore(index_dir or default_index_dir(seeds_dir))
        expected = Manifest.expected(corpus, models.embedder.id, models.embedder.fingerprint(),
                                     embedder.dimension, chunking)
        index = None
        if not rebuild:
            try:
                index = store.load(corpus, expected)
                store.remove_stale_builds()
            except IndexNotUsable as why:
                on_status(f"{why}; building it")
        if index is None:
            store.prepare_for_writing()  # an unwritable folder is found out before the embedding, not after
            index = build_index(corpus, embedder, chunking, on_progress)
            store.save(index)
            on_status(f"indexed {len(index.passages)} passages from {len(corpus.documents)} articles into {store.directory}")
        return cls(corpus, index, embedder, models, top_k, on_status)

    @property
    def reader(self):
        if self._reader is None:
            from rag.reader import Reader

            self._reader = Reader(self.models.reader, self._on_status)
        return self._reader

    def ask(self, question: str) -> Answer:
        question = validate_question(question)
        started = time.perf_counter()
        retrieved = self.index.search(question, self.embedder.encode([question])[0], self.top_k)
        retrieved_at = time.perf_counter()
        guesses = self.reader.read(question, [r.passage for r in retrieved])
        read_at = time.perf_counter()
        candidates = sorted((self._candidate(g, retrieved[g.passage_index]) for g in guesses),
                            key=lambda c: -c.confidence)
        best = candidates[0] if candidates else None
        answered = best is not None and best.confidence >= self.abstention.threshold
        answer = Answer(
            question=question,
            text=best.text if answered else None,
            abstained=not answered,
            score=best.confidence if best else 0.0,
            citation=self.cite(best.span) if answered else None,
            supporting=self._supporting(best, candidates) if answered else [],
            conflicts=self._conflicts(best, candidates) if answered else [],
            passages=retrieved,
            candidates=candidates,
        )
        answer.timings_ms = {
            "retrieve": 1000 * (retrieved_at - started),
            "read": 1000 * (read_at - retrieved_at),
            "total": 1000 * (time.perf_counter() - started),
        }
        return answer

    def cite(self, span: Span) -> Citation:
        doc = self.corpus.documents[span.doc_id]
        sentence_start, sentence_end = sentence_around(doc, span.start, span.end)
        return Citation(span.doc_id, doc.date, span.start, span.end, doc.text[sentence_start:sentence_end], sentence_start)

    def _candidate(self, guess, retrieved) -> Candidate:
        doc_id = retrieved.passage.doc_id
        margin = guess.span_score - guess.null_score
        return Candidate(
            text=self.corpus.documents[doc_id].text[guess.start:guess.end],
            span=Span(doc_id, guess.start, guess.end),
            span_score=guess.span_score,
            null_score=guess.null_score,
            dense_score=retrieved.dense_score,
            confidence=self.abstention.confidence(margin, guess.span_score, retrieved.dense_score),
        )

    def _supporting(self, best: Candidate, candidates: list[Candidate]) -> list[Span]:
        """Other articles whose own best span says the same thing (and beats "no answer")."""
        seen, spans = {best.span.doc_id}, []
        for c in candidates:
            if c.span.doc_id not in seen and c.margin > 0 and same_answer(c.text, best.text):
                seen.add(c.span.doc_id)
                spans.append(c.span)
        return spans

    def _conflicts(self, best: Candidate, candidates: list[Candidate]) -> list[Conflict]:
        """Answers from other articles, more likely right than wrong, that neither contain nor
        are contained in the chosen one."""
        seen, conflicts = {best.span.doc_id}, []
        bar = max(self.abstention.threshold, STRONG_CONFIDENCE)
        for c in candidates:
            if c.span.doc_id in seen or c.confidence < bar:
                continue
            seen.add(c.span.doc_id)
            if not overlapping_answers(c.text, best.text):
                conflicts.append(Conflict(c.text, c.confidence, self.cite(c.span)))
        return conflicts[:MAX_CONFLICTS]
