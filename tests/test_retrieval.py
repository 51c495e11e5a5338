"""Fusion, the keyword index and the Retriever, with the fake embedder: milliseconds."""
import numpy as np
import pytest

from rag.corpus import ChunkSettings, chunk_corpus, load_corpus
from rag.retrieval import KeywordIndex, Retriever, make_vector_store, rrf
from tests.conftest import ROOT, SEEDS
from tests.fakes import FakeEmbedder


def test_rrf_sums_reciprocal_ranks_over_rankings():
    fused = rrf([["a", "b", "c"], ["b", "d"]], k=60)
    assert fused == pytest.approx({"a": 1 / 61, "b": 1 / 62 + 1 / 61, "c": 1 / 63, "d": 1 / 62})
    assert max(fused, key=fused.get) == "b"  # ranked well by both beats first in one
    assert rrf([]) == {} and rrf([[], []]) == {}


def test_rrf_is_pure():
    rankings = [[3, 1, 2], [2, 3]]
    assert rrf(rankings) == rrf(rankings) and rankings == [[3, 1, 2], [2, 3]]


def test_the_keyword_index_saves_and_loads_the_same_scores(tmp_path):
    texts = ["The Taliban entered Kabul.", "Panjshir means five lions.", "Ahmad Massoud leads the resistance."]
    index = KeywordIndex.build(texts)
    index.save(tmp_path)
    loaded = KeywordIndex.load(tmp_path, len(texts))
    for question in ("What does Panjshir mean?", "Who leads the resistance?", "the of and"):
        np.testing.assert_allclose(loaded.scores(question), index.scores(question))
    assert loaded.ranking("Who leads the resistance?", 3)[0] == [2]
    assert not loaded.scores("zzz unknown").any()


def test_passages_without_a_single_keyword_are_indexed_with_zero_scores(tmp_path):
    """Every word a stop word or one letter: there is no vocabulary to index (bm25s crashed on it)."""
    index = KeywordIndex.build(["It is.", "It was a."])
    index.save(tmp_path)
    loaded = KeywordIndex.load(tmp_path, 2)
    for question in ("What is it?", "Who leads the resistance?", "\x00"):
        assert not loaded.scores(question).any() and loaded.ranking(question, 2)[0] == []


def test_keyword_scores_are_bm25s_scores_bit_for_bit():
    """The postings are scored when a question comes, as bm25s scores them when it indexes."""
    import bm25s

    from rag.gold import load_gold
    from rag.retrieval.keyword import BM25_B, BM25_K1

    texts = [p.text for p in chunk_corpus(load_corpus(SEEDS), ChunkSettings())] + ["It is.", "", "Kabul Kabul Kabul"]
    reference = bm25s.BM25(k1=BM25_K1, b=BM25_B)
    reference.index(bm25s.tokenize(texts, stopwords="en", show_progress=False), show_progress=False)
    index = KeywordIndex.build(texts)
    questions = [q.question for q in load_gold(ROOT / "eval" / "gold.jsonl")] + ["Kabul kabul, Panjshir?"]
    for question in questions:
        words = bm25s.tokenize([question], stopwords="en", return_ids=False, show_progress=False)[0]
        expected = reference.get_scores(words) if reference.get_tokens_ids(words) else np.zeros(len(texts))
        assert np.array_equal(index.scores(question), np.asarray(expected, dtype=np.float64)), question


def test_an_updated_keyword_index_scores_as_one_built_from_every_passage(tmp_path):
    rng = np.random.default_rng(3)
    texts = [p.text for p in chunk_corpus(load_corpus(SEEDS), ChunkSettings())] + ["Zanzibar's ferry."]
    index = KeywordIndex.build(texts)
    index.save(tmp_path)
    stored = KeywordIndex.load(tmp_path, len(texts))  # memory-mapped, as an update finds it
    kept = np.sort(rng.choice(len(texts) - 1, len(texts) - 10, replace=False))  # Zanzibar's passage goes
    new = ["The ferry to Marsh End leaves at ten.", "Kabul's airport reopened.", "", "It is."]
    now = [texts[i] for i in kept] + new
    order = rng.permutation(len(now))  # passage order changes too: articles sort by name
    placed = {int(n): now[i] for n, i in enumerate(order)}
    old_ids = [int(kept[i]) for n, i in enumerate(order) if i < len(kept)]
    new_ids = [n for n, i in enumerate(order) if i < len(kept)]
    added = {n: placed[n] for n, i in enumerate(order) if i >= len(kept)}
    updated = stored.updated(np.array(old_ids), np.array(new_ids), added, len(now))
    whole = KeywordIndex.build([placed[n] for n in range(len(now))])
    for question in ("When does the ferry leave?", "Kabul airport", "What does Panjshir mean?", "Who leads the resistance?"):
        assert np.array_equal(updated.scores(question), whole.scores(question)), question
    assert "zanzibar" in stored.words and "zanzibar" not in updated.words  # only a removed passage held it
    assert "ferry" in updated.words
    with pytest.raises(ValueError):  # a passage placed twice
        stored.updated(np.array(old_ids), np.array(new_ids), {**{n: "x" for n in list(added)[1:]}, new_ids[0]: "twice"}, len(now))
    with pytest.raises(ValueError):  # a passage this index does not hold
        stored.updated(np.array([*old_ids[:-1], len(texts)]), np.array(new_ids), added, len(now))


@pytest.fixture(scope="module")
def retriever():
    corpus = load_corpus(SEEDS)
    passages = chunk_corpus(corpus, ChunkSettings())
    embedder = FakeEmbedder()
    vectors = make_vector_store("faiss", embedder.dimension)
    vectors.add(np.arange(len(passages)), embedder.encode([p.text for p in passages]))
    return Retriever(embedder, passages, vectors, KeywordIndex.build([p.text for p in passages]), corpus.documents, 60, 50)


def test_the_retriever_ranks_by_fused_score_and_gives_each_passages_evidence(retriever):
    hits = retriever.retrieve("What does Panjshir mean, five lions?", 5)
    assert len(hits) == 5 and "five lions" in hits[0].passage.text
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    question_vector = retriever.embedder.encode(["What does Panjshir mean, five lions?"])[0]
    for h in hits:  # every hit carries its true cosine, keyword-only hits included
        passage_vector = retriever.embedder.encode([h.passage.text])[0]
        assert h.dense_score == pytest.approx(float(question_vector @ passage_vector), abs=1e-5)


def test_k_larger_than_the_index_gives_every_passage_once(retriever):
    hits = retriever.retrieve("Panjshir", 1000)
    assert len(hits) == len({(h.passage.doc_id, h.passage.start) for h in hits}) <= len(retriever.passages)


def test_keyword_ranking_selects_before_sorting_and_keeps_a_full_sorts_order():
    """Ties (and passages scoring 0) everywhere: the partial selection must give what a stable
    full sort gives, with and without a filter."""
    rng = np.random.default_rng(0)
    scores = np.round(rng.random(5000) * 4) * (rng.random(5000) > 0.5)
    index = KeywordIndex.build([""] * len(scores))
    index.scores = lambda question: scores
    for depth in (1, 7, 50):
        for allowed in (None, np.sort(rng.choice(5000, 1500, replace=False))):
            ranked = scores if allowed is None else np.where(np.isin(np.arange(5000), allowed), scores, 0)
            expected = [int(i) for i in np.argsort(-ranked, kind="stable")[:depth] if ranked[i] > 0]
            assert index.ranking("q", depth, allowed)[0] == expected
