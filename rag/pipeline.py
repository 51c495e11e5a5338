"""Question in, cited answer out: retrieval, reading, the answer-or-abstain decision, and
agreement between articles. The CLI, the chat and the evaluation all go through Pipeline.ask."""
from __future__ import annotations

import dataclasses
import time
from pathlib import Path

from rag.paths import INDEX_FOLDER, PROJECT_ROOT, SEEDS_FOLDER, local_or_bundled
from rag.corpus import date_lines_in, has_words, line_ends_in, sentence_around
from rag.dates import DateRange, said_of_day
from rag.decision import Abstention
from rag.errors import BadInput
from rag.evidence import Evidence, agreement, asks_the_same, asked_names, corroboration, fit_to_question, unmentioned
from rag.metrics import overlapping_answers, says_all_of, spelled_alike, states_an_answer
from rag.schema import Answer, Candidate, Citation, Conflict, Passage, Span

MAX_QUESTION_CHARS = 500
ANSWER_TIMEOUT_S = 30.0  # how long `rag serve` waits for one answer before a 504 (its --timeout)
MAX_CONFLICTS = 3
STRONG_CONFIDENCE = 0.5  # a conflicting answer is shown only if it is more likely right than wrong


BUNDLED_SEEDS = PROJECT_ROOT / SEEDS_FOLDER  # the five articles rag comes with


def default_seeds_dir() -> Path:
    """./seeds where rag runs, else the bundled articles."""
    return local_or_bundled(SEEDS_FOLDER, Path.is_dir)


def article_folders(seeds_dir: Path | None, index_dir: Path | None) -> tuple[Path, Path]:
    """The articles folder and its index folder, each the default when not given."""
    seeds_dir = Path(seeds_dir) if seeds_dir else default_seeds_dir()
    return seeds_dir, Path(index_dir) if index_dir else default_index_dir(seeds_dir)


def falls_back_to_bundled() -> bool:
    """Is there no ./seeds where rag runs, so that the default articles are the bundled ones?"""
    return not (Path.cwd() / SEEDS_FOLDER).is_dir()


def default_index_dir(seeds_dir: Path) -> Path:
    seeds_dir = Path(seeds_dir).resolve()
    return seeds_dir.parent / INDEX_FOLDER / seeds_dir.name


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


def newest_first(items: list, date_of) -> list:
    """Sorted by date, latest first; undated ones last, in their order (the sort is stable)."""
    return sorted(items, key=lambda item: date_of(item) or "", reverse=True)


def heading_of(doc) -> str:
    """What an article says of itself beside its text: its title and its date, the month named
    ("June 2023"). A .jsonl record's or a web page's title names the place its text may not."""
    return f"{doc.title or ''} {said_of_day(doc.date)}"


class Pipeline:
    """Retrieve, read, decide: given its parts (see rag.assembly.build_pipeline), it holds no
    knowledge of files, models.toml or how the parts were made."""

    def __init__(self, corpus, retriever, reader, decision: Abstention, top_k: int, index_version: str | None = None):
        """`corpus` gives `.documents` (doc id -> Document) and `.date_range`: a Corpus of local
        files, or the articles of a Milvus archive; `retriever` gives `.retrieve(question, k, dates)`
        and `.passage_count`; `index_version`: the index build it answers from (IndexStore.version),
        so that a server knows when the index has moved on."""
        if top_k < 1:
            raise BadInput("top_k must be at least 1")
        self.index_version = index_version
        self.corpus = corpus
        self.retriever = retriever
        self.reader = reader
        self.decision = decision
        self.top_k = top_k

    def with_reader(self, reader) -> Pipeline:
        """The same pipeline reading with another reader (e.g. on another runtime)."""
        return Pipeline(self.corpus, self.retriever, reader, self.decision, self.top_k, self.index_version)

    def ask(self, question: str, dates: DateRange | None = None, top_k: int | None = None) -> Answer:
        """The answer from the articles (dated within `dates`, when given), or an abstention;
        `top_k` passages are read (the pipeline's own number when None)."""
        question = validate_question(question)
        if top_k is not None and top_k < 1:
            raise BadInput("top_k must be at least 1")
        started = time.perf_counter()
        retrieved = self.retriever.retrieve(question, top_k or self.top_k, dates)
        retrieved_at = time.perf_counter()
        passages = [r.passage for r in retrieved]
        guesses = self._read(question, passages)
        read_at = time.perf_counter()
        candidates = sorted(self._candidates(question, guesses, retrieved), key=lambda c: -c.confidence)
        best = candidates[0] if candidates else None
        answered = best is not None and self.decision.answers(best.confidence)
        supporting = self._supporting(best, candidates) if answered else []
        answer = Answer(
            question=question,
            text=best.text if answered else None,
            abstained=not answered,
            score=best.confidence if best else 0.0,
            citation=self.cite(best.span) if answered else None,
            supporting=supporting,
            conflicts=self._conflicts(question, best, candidates, supporting) if answered else [],
            latest=self._latest(best, supporting) if answered else None,
            unmentioned=self._unmentioned(question, [best.span.doc_id] if answered else [p.doc_id for p in passages]),
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
        return Citation(span.doc_id, doc.date, span.start, span.end, doc.text[sentence_start:sentence_end], sentence_start,
                        doc.title, doc.source)

    def _read(self, question: str, passages: list[Passage]) -> list:
        """The reader's guess for each passage that can hold an answer, its `passage_index` into
        `passages`: no answer runs across a line break that ends a run of text, nor comes from
        a line that only dates the article; a passage that is nothing but such lines (cut by
        older sentence rules, as a Milvus archive keeps its cuts) is not read."""
        articles = [self.corpus.documents[p.doc_id] for p in passages]
        closed = [date_lines_in(doc, p) for doc, p in zip(articles, passages)]
        readable = [n for n, (p, shut) in enumerate(zip(passages, closed)) if not shut or has_words(_outside(p.text, shut))]
        guesses = self.reader.read(question, [passages[n] for n in readable],
                                   [line_ends_in(articles[n], passages[n]) for n in readable], [closed[n] for n in readable])
        return [dataclasses.replace(g, passage_index=readable[g.passage_index]) for g in guesses]

    def _candidates(self, question: str, guesses, retrieved: list) -> list[Candidate]:
        """Each passage's best span, with the evidence for it: the reader's scores, retrieval, how
        many other passages and articles hold the same answer (and corroborate it, rag.evidence),
        and how it fits the question."""
        documents = self.corpus.documents
        doc_ids = [retrieved[g.passage_index].passage.doc_id for g in guesses]
        spans = [[(g.start, g.end, g.span_score), *g.runners_up] for g in guesses]
        texts = [[documents[d].text[s:e] for s, e, _ in found] for d, found in zip(doc_ids, spans)]
        margins = [[score - g.null_score for _, _, score in found] for g, found in zip(guesses, spans)]
        sentences = [documents[d].text[slice(*sentence_around(documents[d], g.start, g.end))] for g, d in zip(guesses, doc_ids)]
        fits = [fit_to_question(question, said[0], sentence, documents[d].text, heading_of(documents[d]))
                for said, sentence, d in zip(texts, sentences, doc_ids)]
        # articles agree when one says all of the other's answer, however they spell it: "al-Qaeda"
        # and "al Qaeda" corroborate each other
        alike = [[spelled_alike(text) for text in said] for said in texts]
        corroborating = corroboration([said[0] for said in alike], doc_ids, [m[0] for m in margins],
                                      [fit["question_overlap"] for fit in fits], sentences)
        candidates = []
        for g, doc_id, said, (articles, passages), fit, corroborated in zip(
                guesses, doc_ids, texts, agreement(alike, doc_ids, margins), fits, corroborating):
            evidence = Evidence.of_span(
                g.span_score, g.null_score, retrieved[g.passage_index].dense_score, fit,
                agreeing_articles=articles, agreeing_passages=passages, corroborating_articles=corroborated,
                reciprocal_rank=1 / (g.passage_index + 1))
            candidates.append(Candidate(said[0], Span(doc_id, g.start, g.end), g.span_score, g.null_score,
                                        evidence.dense_score, self.decision.confidence(evidence), evidence,
                                        g.passage_index))
        return candidates

    def _unmentioned(self, question: str, doc_ids: list[str]) -> list[str]:
        """The question's names and numbers that none of these articles mentions: the cited one's,
        or, for a decline, every one read (asked about Manchester, none of them names it)."""
        names = asked_names(question)
        for doc_id in dict.fromkeys(doc_ids):
            doc = self.corpus.documents[doc_id]
            names = unmentioned(names, doc.text, heading_of(doc))
        return names if doc_ids else []

    def _supporting(self, best: Candidate, candidates: list[Candidate]) -> list[Span]:
        """Other articles with a passage whose own best span says all of the answer (and beats "no answer")."""
        seen, spans, answer = {best.span.doc_id}, [], spelled_alike(best.text)
        for c in candidates:
            if c.span.doc_id not in seen and c.margin > 0 and says_all_of(spelled_alike(c.text), answer):
                seen.add(c.span.doc_id)
                spans.append(c.span)
        return spans

    def _conflicts(self, question: str, best: Candidate, candidates: list[Candidate], supporting: list[Span]) -> list[Conflict]:
        """Answers from other articles, more likely right than wrong, that neither contain nor
        are contained in the chosen one. An article that states the answer somewhere (it is
        supporting) is not also a conflict because another of its passages yields another span.
        Nor is a reading of a sentence that states the answer too, when a supporting article
        states the answer without that reading: "Ahmad Massoud, … son of … Ahmad Shah Massoud" read
        as the father does not disagree with "Ahmad Massoud" that another article states alone (as
        the README's first question showed). The text cannot tell a misreading from a
        disagreement, as the same sentence read as "Ahmad Massoud" does disagree with "Ahmad Shah
        Massoud" read from "the then resistance led by Ahmad Shah Massoud's forces": so without
        such a supporting article, the conflict is shown.
        Nor is an answer from an article that mentions fewer of the question's names and numbers
        than the cited one: asked "Who is the mayor of Bristol?", Cardiff's mayor, from an article
        that never names Bristol, answers another question; it does not disagree. Nor is one from
        a sentence that does not say what the question asks (evidence.asks_the_same): asked when
        the Old Mill bridge was originally due to reopen, "18 June", when a footbridge beside it
        opened, disagreed with "March"."""
        seen = {best.span.doc_id} | {s.doc_id for s in supporting}
        conflicts, answer = [], spelled_alike(best.text)
        backing = [spelled_alike(self.cite(span).sentence) for span in supporting]
        bar = max(self.decision.threshold, STRONG_CONFIDENCE)
        for c in candidates:
            if c.span.doc_id in seen or c.confidence < bar or c.evidence.unmentioned_names > best.evidence.unmentioned_names:
                continue
            citation = self.cite(c.span)
            if not asks_the_same(question, citation.sentence):
                continue
            seen.add(c.span.doc_id)
            reading = spelled_alike(c.text)
            if overlapping_answers(reading, answer):
                continue
            misread = states_an_answer(spelled_alike(citation.sentence), [answer]) and any(
                not states_an_answer(sentence, [reading]) for sentence in backing)
            if not misread:
                conflicts.append(Conflict(c.text, c.confidence, citation))
        return newest_first(conflicts[:MAX_CONFLICTS], lambda conflict: conflict.citation.date)

    def _latest(self, best: Candidate, supporting: list[Span]) -> Citation:
        """Of the articles stating the answer (the cited one and those supporting it), the one
        with the latest date; the cited one when none is dated later."""
        stating = [best.span, *supporting]
        return self.cite(newest_first(stating, lambda span: self.corpus.documents[span.doc_id].date)[0])


def _outside(text: str, ranges: list[tuple[int, int]]) -> str:
    """`text` without these (start, end) ranges of it."""
    kept, at = [], 0
    for start, end in sorted(ranges):
        kept.append(text[at:start])
        at = max(at, end)
    return "".join(kept) + text[at:]
