"""eval/tune_fusion.py: the fusion constant is chosen by the pool's recall, then tune.jsonl's,
then nearness to the paper's 60; a retriever with another constant keeps every other part."""
import sys
from types import SimpleNamespace

from rag.gold import GoldQuestion
from rag.retrieval.fusion import RRF_K
from rag.retrieval.retriever import Retriever
from tests.conftest import ROOT

sys.path.insert(0, str(ROOT / "eval"))
from tune_fusion import chosen, recall, with_rrf_k  # noqa: E402


def test_the_pools_recall_decides_then_tunes_then_the_papers_constant():
    assert chosen({5: (99.0, 90.0), 60: (98.0, 95.0)}) == 5
    assert chosen({5: (99.0, 90.0), 10: (99.0, 93.0), 60: (98.0, 95.0)}) == 10
    assert chosen({5: (99.0, 93.0), 30: (99.0, 93.0), 100: (99.0, 93.0)}) == 30
    assert chosen({0: (97.0, 90.0), RRF_K: (97.0, 90.0)}) == RRF_K


def test_another_constant_keeps_every_other_part():
    parts = [object() for _ in range(5)]
    retriever = Retriever(*parts, rrf_k=60, candidates=50)
    other = with_rrf_k(retriever, 5)
    assert other.rrf_k == 5 and retriever.rrf_k == 60
    assert (other.embedder, other.passages, other.vectors, other.keywords, other.documents) == tuple(parts)
    assert other.candidates == 50


def test_recall_counts_questions_with_a_passage_that_holds_the_answer_among_the_top_k():
    passages = {"a": ["x", "y", "answer"], "b": ["x", "y", "z"]}

    class Stub:
        def retrieve(self, question, k):
            return [SimpleNamespace(passage=p) for p in passages[question][:k]]

    questions = [GoldQuestion(q, q, ["answer"], []) for q in ("a", "b")]
    holds = lambda q, passage: passage == "answer"  # noqa: E731
    assert recall(Stub(), questions, holds, 3) == 50.0
    assert recall(Stub(), questions, holds, 2) == 0.0
