"""The answer-or-abstain decision, agreement and conflict between articles, and rendering,
with the fake models: every rule of Pipeline.ask in milliseconds."""
import pytest

from rag.assembly import build_pipeline
from rag.config import load_models_config
from rag.decision import Abstention
from rag.pipeline import Pipeline
from rag.render import answer_view
from tests.conftest import ROOT, SEEDS, read_source
from tests.fakes import FakeEmbedder, FakeReader

DECISION = Abstention(bias=-4.0, margin=1.0, threshold=0.5)  # answer when the margin is over 4


@pytest.fixture(scope="module")
def fake_parts(tmp_path_factory):
    return build_pipeline(load_models_config(ROOT / "models.toml"), SEEDS, tmp_path_factory.mktemp("fake-index"),
                          embedder=FakeEmbedder(), reader=FakeReader([]))


def pipeline_with(parts: Pipeline, answers: list[str], top_k: int = 45) -> Pipeline:
    return Pipeline(parts.corpus, parts.retriever, FakeReader(answers), DECISION, top_k)


def test_an_answer_is_cut_from_its_article_and_cites_its_sentence(fake_parts):
    answer = pipeline_with(fake_parts, ["five lions"]).ask("What does Panjshir mean?")
    c = answer.citation
    assert not answer.abstained and answer.text == "five lions" and answer.score > DECISION.threshold
    assert read_source(c.doc_id)[c.start:c.end] == "five lions" and "five lions" in c.sentence
    assert read_source(c.doc_id)[c.sentence_start:c.sentence_start + len(c.sentence)] == c.sentence


def test_no_passage_with_an_answer_means_abstaining(fake_parts):
    answer = pipeline_with(fake_parts, ["no article says this"]).ask("Who won the World Cup?")
    assert answer.abstained and answer.text is None and answer.citation is None
    assert answer.supporting == [] and answer.conflicts == [] and answer.score < DECISION.threshold


def test_other_articles_stating_the_same_answer_are_supporting(fake_parts):
    answer = pipeline_with(fake_parts, ["Ahmad Massoud"]).ask("Who leads the resistance?")
    supporting = {s.doc_id for s in answer.supporting}
    assert answer.citation.doc_id not in supporting and len(supporting) == 4  # five articles name him
    for s in answer.supporting:
        assert read_source(s.doc_id)[s.start:s.end] == "Ahmad Massoud"


def test_articles_giving_another_answer_are_conflicts_with_citations(fake_parts):
    answer = pipeline_with(fake_parts, ["150 kilometers", "125km"]).ask("How far is Panjshir from Kabul?")
    stated = {answer.text} | {c.answer for c in answer.conflicts}
    assert stated == {"150 kilometers", "125km"}
    for conflict in answer.conflicts:
        c = conflict.citation
        assert read_source(c.doc_id)[c.start:c.end] == conflict.answer and c.doc_id != answer.citation.doc_id


def test_top_k_bounds_what_the_reader_sees(fake_parts):
    answer = pipeline_with(fake_parts, ["Panjshir"], top_k=3).ask("Panjshir")
    assert len(answer.passages) == 3 and len(answer.candidates) == 3


def test_the_answer_view_prints_text_with_brackets_as_it_is(fake_parts):
    from rich.console import Console

    answer = pipeline_with(fake_parts, ["five lions"]).ask("What does Panjshir mean?")
    console = Console(record=True, width=200, markup=False)
    console.print(answer_view(answer, fake_parts.corpus.documents))
    text = console.export_text()
    assert text.startswith("five lions") and f"[{answer.citation.doc_id} · " in text


def test_a_gold_file_without_docs_reports_retrieval_and_citations_as_not_available(fake_parts):
    from rag.evaluate import gate_failures, run_questions, summarize
    from rag.gold import GoldQuestion

    questions = [GoldQuestion("a", "What does Panjshir mean?", ["five lions"], []),
                 GoldQuestion("b", "Who won the World Cup?", [], [])]
    summary = summarize(run_questions(pipeline_with(fake_parts, ["five lions"]), questions))
    assert summary["f1"] == 100.0 and summary["abstention_recall"] == 0.0  # the fake reader answers both
    for key in ("recall_at_1", "recall_at_5", "mrr", "citation_accuracy"):
        assert summary[key] is None, key
    assert gate_failures(summary, {"citation_accuracy": 90.0}) == ["citation accuracy None < 90.0"]
