"""`rag eval --squad FILE`: score the reader on SQuAD v2-format data, alone (the passage is
given) or, with --open, end to end (every paragraph of the file indexed as an article)."""
from __future__ import annotations

import functools
import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from rag.corpus import sentence_around
from rag.errors import RagError, Stopped
from rag.evidence import Evidence, fit_to_question
from rag.metrics import SQUAD_PUNCTUATION, best_over, exact_match, f1_score, normalize_answer
from rag.schema import Document, Passage

MODEL_CARD_MARGINS = (0, 4, 8, 10)  # the null margins the reader's model card reports


@dataclass(frozen=True)
class SquadQuestion:
    id: str
    question: str
    answers: list[str]
    context_id: str
    answer_start: int | None = None  # character offset of the first answer, for training labels
    article: int = 0  # which article of the file, for pairing with other paragraphs of it


@dataclass(frozen=True)
class SquadData:
    contexts: dict[str, str]  # context id -> paragraph text
    questions: list[SquadQuestion]
    titles: tuple[str, ...] = ()  # article titles, indexed by SquadQuestion.article

    def without_articles(self, titles: set[str]) -> "SquadData":
        """The same data less the named articles (kept apart, e.g. to calibrate the decision).
        A name without a source prefix ("Oxygen") also drops every source's copy of that article
        ("squad20-dev:Oxygen", "addsent:Oxygen", ...): they share paragraphs."""
        dropped = {n for n, title in enumerate(self.titles) if self._names(title, titles)}
        # a paragraph another article shares word for word (another source's copy) goes with them
        dropped_texts = {self.contexts[q.context_id] for q in self.questions if q.article in dropped}
        questions = [q for q in self.questions if q.article not in dropped and self.contexts[q.context_id] not in dropped_texts]
        used = {q.context_id for q in questions}
        return SquadData({c: t for c, t in self.contexts.items() if c in used}, questions, self.titles)

    def unknown_articles(self, titles: set[str]) -> list[str]:
        """The names in `titles` that name no article here (without_articles would drop nothing for them)."""
        return sorted(name for name in titles if not any(self._names(title, {name}) for title in self.titles))

    @staticmethod
    def _names(title: str, names: set[str]) -> bool:
        return title in names or title.rpartition(":")[2] in names

    def paragraphs_by_article(self) -> dict[int, list[str]]:
        """Each article's paragraph (context) ids, in the order its questions first name them."""
        by_article: dict[int, list[str]] = {}
        for q in self.questions:
            if q.context_id not in by_article.setdefault(q.article, []):
                by_article[q.article].append(q.context_id)
        return by_article


def answer_sentence(context: str, q: SquadQuestion) -> tuple[int, int] | None:
    """Where the sentence (or sentences) holding the question's first answer lie in its
    paragraph `context`; None when the answer has no offset there."""
    if not q.answers or q.answer_start is None:
        return None
    paragraph = Document(q.context_id, "", context, None, 0)
    return sentence_around(paragraph, q.answer_start, q.answer_start + len(q.answers[0]))


def load_squad(path: Path) -> SquadData:
    try:
        data = squad_articles(json.loads(Path(path).read_text(encoding="utf-8-sig"))["data"])
    except FileNotFoundError:
        raise RagError(f"SQuAD file not found: {path}") from None
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise RagError(f"{path} is not a SQuAD-format JSON file ({type(exc).__name__}: {exc})") from None
    if not data.questions:
        raise RagError(f"{path} holds no questions")
    return data


def check_askable(data: SquadData, path: Path) -> None:
    """Every question is one `rag ask` would take (rag.pipeline.validate_question), and has an id
    of its own (answers are scored by id: a second question of one id would take the first's
    answer); one that fails is named now, not after the models load or halfway through a run."""
    from rag.errors import BadInput
    from rag.pipeline import validate_question

    ids = [q.id for q in data.questions]
    if len(set(ids)) != len(ids):
        twice = next(i for i in ids if ids.count(i) > 1)
        raise RagError(f"{path}: the question id {twice!r} is given twice", 2)
    for q in data.questions:
        try:
            validate_question(q.question)
        except BadInput as why:
            raise RagError(f"{path}: question {q.id!r}: {why}", 2) from None


def squad_articles(data: list) -> SquadData:
    """SquadData from the "data" list of a SQuAD-format file (its articles)."""
    contexts, questions, titles = {}, [], []
    for article_number, article in enumerate(data):
        titles.append(str(article.get("title", "")))
        for paragraph_number, paragraph in enumerate(article["paragraphs"]):
            context_id = f"{article_number:03d}_{paragraph_number:03d}"
            contexts[context_id] = _text("context", paragraph["context"])
            for qa in paragraph["qas"]:
                _text("question", qa["question"])
                # answerable when it lists answers, as the official script decides (not by is_impossible)
                given = qa["answers"]
                answers = list(dict.fromkeys(a["text"] for a in given))
                start = int(given[0]["answer_start"]) if given else None
                questions.append(SquadQuestion(qa["id"], qa["question"], answers, context_id, start, article_number))
    return SquadData(contexts, questions, tuple(titles))


def _text(name: str, value) -> str:
    if not isinstance(value, str):
        raise TypeError(f'a "{name}" that is not text: {value!r}'[:120])
    return value


def score(predictions: dict[str, str | None], questions: list[SquadQuestion]) -> dict:
    """SQuAD v2 scoring as the official script does it, so the figures compare with published
    ones: its (ASCII) punctuation, gold answers that normalise to nothing dropped, and an
    unanswerable question right when the prediction normalises to nothing."""
    exact = functools.partial(exact_match, punctuation=SQUAD_PUNCTUATION)
    overlap = functools.partial(f1_score, punctuation=SQUAD_PUNCTUATION)
    em, f1, has_em, has_f1, no_ok = [], [], [], [], []
    for q in questions:
        prediction = predictions[q.id] or ""
        golds = [a for a in q.answers if normalize_answer(a, SQUAD_PUNCTUATION)] or [""]
        e, f = best_over(exact, prediction, golds), best_over(overlap, prediction, golds)
        if q.answers:
            has_em.append(e)
            has_f1.append(f)
        else:
            no_ok.append(e)
        em.append(e)
        f1.append(f)
    pct = lambda values: round(100 * float(np.mean(values)), 1) if values else None  # noqa: E731
    return {"questions": len(questions), "em": pct(em), "f1": pct(f1), "has_ans_em": pct(has_em),
            "has_ans_f1": pct(has_f1), "no_ans_accuracy": pct(no_ok)}


def evaluate_file(data: SquadData, config, open_domain: bool, on_status: Callable[[str], None] = lambda m: None,
                  on_done: Callable[[], None] = lambda: None,
                  on_progress: Callable[[int, int], None] | None = None) -> dict:
    """`rag eval --squad`: the reader alone on each given paragraph, or (open_domain) the whole
    pipeline over an index of every paragraph, whose embedding `on_progress` follows."""
    from rag.assembly import build_pipeline, warn_if_fitted_for_another_reader, with_store

    if open_domain:
        # the paragraphs go into a throwaway FAISS index, never into an archive models.toml names
        throwaway = with_store(config, "faiss")
        return evaluate_open(data, lambda seeds, index: build_pipeline(throwaway, seeds, index, on_status=on_status,
                                                                       on_progress=on_progress), on_done)
    from rag.embedder import Embedder
    from rag.reader import Reader

    warn_if_fitted_for_another_reader(config, on_status)
    on_status("loading models")
    return evaluate_reader(data, Reader(config.reader), Embedder(config.embedder), config.reader.settings.abstention, on_done)


def evaluate_reader(data: SquadData, reader, embedder, abstention,
                    on_done: Callable[[], None] = lambda: None) -> dict:
    """The reader with the passage given; answers decided by the same abstention model as
    `rag ask` (the retrieval cosine is that of the question and its given paragraph), and, for
    comparison with the model card, by the raw null margins it reports. One passage: no other
    passage can agree. The names a question asks about are looked for in the paragraph's whole
    article, as `rag ask` looks for them in the answer's article."""
    context_ids = list(data.contexts)
    context_vectors = dict(zip(context_ids, embedder.encode([data.contexts[c] for c in context_ids])))
    question_vectors = embedder.encode([q.question for q in data.questions])
    by_rule: dict[str, dict[str, str | None]] = {"abstention model": {}}
    by_rule.update({f"null margin {m}": {} for m in MODEL_CARD_MARGINS})
    articles = {n: "\n\n".join(data.contexts[c] for c in ids) for n, ids in data.paragraphs_by_article().items()}
    for q, vector in zip(data.questions, question_vectors):
        context = data.contexts[q.context_id]
        (guess,) = reader.read(q.question, [Passage(q.context_id, 0, len(context), context)])
        text, margin = context[guess.start:guess.end], guess.span_score - guess.null_score
        paragraph = Document(q.context_id, "", context, None, 0)
        sentence_start, sentence_end = sentence_around(paragraph, guess.start, guess.end)
        evidence = Evidence.of_span(guess.span_score, guess.null_score, float(np.dot(vector, context_vectors[q.context_id])),
                                    fit_to_question(q.question, text, context[sentence_start:sentence_end], articles[q.article]))
        by_rule["abstention model"][q.id] = text if abstention.answers(abstention.confidence(evidence)) else None
        for m in MODEL_CARD_MARGINS:
            by_rule[f"null margin {m}"][q.id] = text if margin > m else None
        on_done()
    return {rule: score(predictions, data.questions) for rule, predictions in by_rule.items()}


def evaluate_open(data: SquadData, open_pipeline: Callable[[Path, Path], object],
                  on_done: Callable[[], None] = lambda: None) -> dict:
    """Every paragraph becomes an article; each question goes through retrieval and reading."""
    with tempfile.TemporaryDirectory(prefix="rag-squad-") as folder:
        seeds = Path(folder) / "articles"
        seeds.mkdir()
        for context_id, text in data.contexts.items():
            (seeds / f"{context_id}.txt").write_text(text, encoding="utf-8")
        try:
            pipeline = open_pipeline(seeds, Path(folder) / "index")
        except Stopped as stop:  # its saved passages go with the folder: no rag index goes on from them
            raise Stopped(stop.doing, "nothing is kept (the paragraphs' index was a throwaway one)", stop.terminated) from None
        predictions, found = {}, []
        for q in data.questions:
            answer = pipeline.ask(q.question)
            predictions[q.id] = answer.text
            if q.answers:
                found.append(any(r.passage.doc_id == q.context_id for r in answer.passages))
            on_done()
    result = score(predictions, data.questions)
    result["retrieval_recall_at_k"] = round(100 * float(np.mean(found)), 1) if found else None
    return {"open (retrieve, then read)": result}
