"""The answer-or-abstain decision, agreement and conflict between articles, and rendering,
with the fake models: every rule of Pipeline.ask in milliseconds."""
import json

import numpy as np
import pytest

from rag.assembly import build_pipeline
from rag.config import load_models_config
from rag.decision import Abstention
from rag.errors import RagError
from rag.evidence import asks_the_same
from rag.pipeline import Pipeline
from rag.render import answer_view, why_view
from tests.conftest import ROOT, SEEDS, read_source
from tests.fakes import FakeEmbedder, FakeReader

DECISION = Abstention(bias=-4.0, margin=1.0, threshold=0.5)  # answer when the margin is over 4


@pytest.fixture(scope="module")
def fake_parts(tmp_path_factory):
    return build_pipeline(load_models_config(ROOT / "models.toml"), SEEDS, tmp_path_factory.mktemp("fake-index"),
                          embedder=FakeEmbedder(), reader=FakeReader([]))


def parts_over(tmp_path, files: dict[str, str]) -> Pipeline:
    """The fake models' pipeline over a folder of these files (name -> text), indexed in tmp_path."""
    seeds = tmp_path / "seeds"
    seeds.mkdir()
    for name, text in files.items():
        (seeds / name).write_text(text, encoding="utf-8")
    return build_pipeline(load_models_config(ROOT / "models.toml"), seeds, tmp_path / "index",
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


CITIES = {"bristol.txt": "The mayor of Bristol is Marvin Rees. He was elected in 2016.\n",
          "cardiff.txt": "The mayor of Cardiff, Tom Jones, presented a budget of 9 million pounds.\n"}


def test_an_article_that_never_names_what_the_question_asks_about_is_no_conflict(tmp_path):
    parts = parts_over(tmp_path, CITIES)
    answer = pipeline_with(parts, ["Marvin Rees", "Tom Jones"]).ask("Who is the mayor of Bristol?")
    assert answer.text == "Marvin Rees" and answer.unmentioned == []
    assert answer.conflicts == []  # Cardiff's mayor answers another question
    both = pipeline_with(parts, ["Marvin Rees", "Tom Jones"]).ask("Who is the mayor?")  # names no city: they disagree
    assert {both.text} | {c.answer for c in both.conflicts} == {"Marvin Rees", "Tom Jones"}


def test_an_answer_from_a_sentence_that_does_not_say_what_the_question_asks_is_no_conflict(tmp_path):
    """A new user's two articles: asked when the Old Mill bridge was originally due to reopen,
    "18 June", when a footbridge beside it opened, was shown as sources disagreeing with "March"."""
    parts = parts_over(tmp_path, {
        "b1.txt": "The Old Mill bridge was originally due to reopen in March, but the work has overrun.\n",
        "b2.txt": "A new footbridge beside the Old Mill bridge was opened to walkers on 18 June by the mayor.\n",
        "b3.txt": "The council said the Old Mill bridge was originally due to reopen in May.\n"})
    surer = Pipeline(parts.corpus, parts.retriever, FakeReader(["March", "18 June", "May"], surer={"March": 10.0}), DECISION, 3)
    answer = surer.ask("When was the Old Mill bridge originally due to reopen?")
    assert answer.text == "March" and [c.answer for c in answer.conflicts] == ["May"]  # b3 says what is asked, b2 does not
    assert asks_the_same("How far is Panjshir from Kabul?", "The valley is 125km north of Kabul.")  # it asks nothing but names
    reopen = "When will the Old Mill bridge reopen?"
    assert asks_the_same(reopen, "The Old Mill bridge reopened on 3 May.")  # in another inflection
    assert not asks_the_same(reopen, "A new footbridge beside the Old Mill bridge was opened on 18 June.")  # half is not enough
    assert asks_the_same("How many people died in the quake?", "The quake killed 1,500 people.")
    assert asks_the_same("When did the Taliban take Kabul?", "The Taliban took Kabul on 15 August.")  # an irregular verb


def test_an_answer_from_an_article_that_never_names_what_the_question_asks_about_says_so(tmp_path):
    from rich.console import Console

    parts = parts_over(tmp_path, CITIES)
    answer = pipeline_with(parts, ["Marvin Rees"]).ask("Who is the mayor of Manchester in 2016?")
    assert answer.text == "Marvin Rees" and answer.unmentioned == ["Manchester"]  # the article has 2016
    assert answer.to_json()["unmentioned"] == ["Manchester"]
    console = Console(record=True, width=200, markup=False)
    console.print(answer_view(answer, parts.corpus))
    assert "check it: the cited article never mentions “Manchester”" in console.export_text()
    declined = pipeline_with(parts, ["no article says this"]).ask("Who is the mayor of Manchester in 2016?")
    assert declined.abstained and declined.unmentioned == ["Manchester"]  # none of the articles read names it; one has 2016
    console = Console(record=True, width=200, markup=False)
    console.print(answer_view(declined, parts.corpus))
    assert "none of the articles read mentions “Manchester”" in console.export_text()


def test_top_k_bounds_what_the_reader_sees(fake_parts):
    answer = pipeline_with(fake_parts, ["Panjshir"], top_k=3).ask("Panjshir")
    assert len(answer.passages) == 3 and len(answer.candidates) == 3


def test_each_candidate_names_the_passage_it_was_read_in_though_passages_overlap(fake_parts):
    answer = pipeline_with(fake_parts, ["Panjshir"]).ask("Panjshir")  # passages share a sentence with the next
    assert len({c.passage_index for c in answer.candidates}) == len(answer.candidates) > 1
    for c in answer.candidates:
        read_in = answer.passages[c.passage_index].passage
        assert read_in.doc_id == c.span.doc_id and read_in.start <= c.span.start < c.span.end <= read_in.end
        assert answer.candidate_in(c.passage_index) is c
    assert [row["passage_index"] for row in answer.to_json(why=True)["candidates"]] == [c.passage_index for c in answer.candidates]


def test_the_answer_view_prints_text_with_brackets_as_it_is(fake_parts):
    from rich.console import Console

    answer = pipeline_with(fake_parts, ["five lions"]).ask("What does Panjshir mean?")
    console = Console(record=True, width=200, markup=False)
    console.print(answer_view(answer, fake_parts.corpus))
    text = console.export_text()
    assert text.startswith("five lions") and f"[{answer.citation.doc_id} · " in text


def test_an_answer_across_a_wrapped_line_prints_on_one_line(tmp_path):
    from rich.console import Console

    (tmp_path / "wire.txt").write_text("The resistance in the valley is led by Ahmad\nMassoud, the son of a commander.\n",
                                       encoding="utf-8")
    pipeline = build_pipeline(load_models_config(ROOT / "models.toml"), tmp_path, tmp_path / "index",
                              embedder=FakeEmbedder(), reader=FakeReader(["Ahmad\nMassoud"]))
    answer = pipeline.ask("Who leads the resistance?")
    assert answer.text == "Ahmad\nMassoud"  # the citation's slice, as the article has it
    console = Console(record=True, width=200, markup=False)
    console.print(answer_view(answer, pipeline.corpus))
    first, quoted = console.export_text().splitlines()[:2]
    assert first == "Ahmad Massoud" and "led by Ahmad Massoud, the son" in quoted


@pytest.mark.parametrize("words_before, words_after", [(10, 10), (5, 90), (90, 5), (90, 90)])
def test_the_quoted_sentence_is_whole_when_it_fits_and_else_cut_at_spaces_around_the_answer(tmp_path, words_before,
                                                                                            words_after):
    """A 160-character sentence was shown as "…recasts a deficit of 3.4 percent…": cut inside a
    word, though the whole of it fits on the line."""
    from rich.console import Console

    from rag.render import SNIPPET_CHARS

    sentence = " ".join(["forecasts"] * words_before + ["Karl Ost"] + ["deficits"] * words_after) + "."
    (tmp_path / "budget.txt").write_text(sentence + "\n", encoding="utf-8")
    pipeline = build_pipeline(load_models_config(ROOT / "models.toml"), tmp_path, tmp_path / "index",
                              embedder=FakeEmbedder(), reader=FakeReader(["Karl Ost"]))
    console = Console(record=True, width=1000, markup=False)
    console.print(answer_view(pipeline.ask("Who forecasts deficits?"), pipeline.corpus))
    quoted = console.export_text().splitlines()[1].strip().split("   [")[0]
    assert "Karl Ost" in quoted
    if len(sentence) <= SNIPPET_CHARS:
        assert quoted == f"“{sentence}”"
    else:
        shown = quoted.strip("“”").strip("…")
        assert shown in sentence and len(shown) <= SNIPPET_CHARS and SNIPPET_CHARS - len(shown) < 2 * len("forecasts ")  # a word at most lost at each cut
        assert all(word in ("forecasts", "Karl", "Ost", "deficits", "deficits.") for word in shown.split())  # whole words


def test_a_date_range_no_article_falls_in_is_said_with_the_dates_there_are(fake_parts):
    from rich.console import Console

    from rag.dates import DateRange

    class ArticlesNotToBeListed:  # as a Milvus archive's: listing them would fetch every article's text
        documents = None
        date_range = fake_parts.corpus.date_range

    answer = pipeline_with(fake_parts, ["five lions"]).ask("What does Panjshir mean?", DateRange.parse("2099-01-01", None))
    console = Console(record=True, width=200, markup=False)
    console.print(answer_view(answer, ArticlesNotToBeListed()))
    first, last = fake_parts.corpus.date_range
    assert answer.abstained and answer.passages == []
    assert console.export_text().strip() == f"Not in the articles: none is dated in the range asked (they run from {first} to {last})."
    console.print(why_view(answer, DECISION.threshold))  # --why: not an empty heading
    assert console.export_text().strip().endswith("why: no passage was read, so there was nothing to answer from")


def test_a_gold_file_without_docs_reports_retrieval_and_citations_as_not_available(fake_parts):
    from rag.evaluate import gate_failures, run_questions, summarize
    from rag.gold import GoldQuestion

    questions = [GoldQuestion("a", "What does Panjshir mean?", ["five lions"], []),
                 GoldQuestion("b", "Who won the World Cup?", [], [])]
    summary = summarize(run_questions(pipeline_with(fake_parts, ["five lions"]), questions))
    assert summary["f1"] == 100.0 and summary["abstention_recall"] == 0.0  # the fake reader answers both
    for key in ("recall_at_1", "recall_at_5", "mrr", "citation_accuracy"):
        assert summary[key] is None, key
    results = run_questions(pipeline_with(fake_parts, ["five lions"]), questions)
    assert gate_failures(results, {"citation_accuracy": 90.0}) == ["citation accuracy n/a < 90"]


def test_a_gate_compares_the_measure_before_it_is_rounded(fake_parts):
    from rag.evaluate import gate_failures, run_questions, summarize
    from rag.gold import GoldQuestion

    questions = [GoldQuestion(name, "What does Panjshir mean?", [answer], [])
                 for name, answer in (("a", "five lions"), ("b", "five lions"), ("c", "emeralds"))]
    results = run_questions(pipeline_with(fake_parts, ["five lions"]), questions)
    assert summarize(results)["f1"] == 66.7  # 66.67, shown rounded
    assert gate_failures(results, {"f1": 66.7}) == ["F1 66.66 < 66.7"]  # cut, not rounded up to the bar
    assert gate_failures(results, {"f1": 66.6}) == []


def test_a_miss_says_whether_the_passages_read_held_the_answer(fake_parts):
    from rag.evaluate import run_questions, summarize
    from rag.gold import GoldQuestion

    read = GoldQuestion("a", "What does Panjshir mean?", ["Five Lions."], [])  # case and punctuation aside
    never_read = GoldQuestion("b", "What does Panjshir mean?", ["food and fuel", "the"], [])  # not in the 2 read; "the" is no answer
    results = run_questions(pipeline_with(fake_parts, ["five lions"], top_k=2), [read, never_read])
    assert [r.answer_read for r in results] == [True, False]
    assert summarize(results)["answer_in_passages"] == 50.0


def test_recall_at_more_passages_than_were_read_is_not_available(fake_parts):
    from rag.evaluate import run_questions, summarize
    from rag.gold import GoldQuestion

    docs = sorted(fake_parts.corpus.documents)
    question = GoldQuestion("a", "What does Panjshir mean?", ["five lions"], docs)  # every article supports it
    three = summarize(run_questions(pipeline_with(fake_parts, ["five lions"], top_k=3), [question]))
    assert three["recall_at_1"] == three["recall_at_3"] == 100.0 and three["recall_at_5"] is None  # not recall@3 again
    five = summarize(run_questions(pipeline_with(fake_parts, ["five lions"], top_k=5), [question]))
    assert five["recall_at_5"] == 100.0


def test_a_decline_says_whether_the_span_it_held_back_was_right(fake_parts):
    from rag.evaluate import run_questions, summarize
    from rag.gold import GoldQuestion

    unsure = Pipeline(fake_parts.corpus, fake_parts.retriever, FakeReader(["five lions"], confident=2.0), DECISION, 45)
    questions = [GoldQuestion("a", "What does Panjshir mean?", ["five lions"], []),
                 GoldQuestion("b", "What does Panjshir mean?", ["emeralds"], [])]
    results = run_questions(unsure, questions)  # both declined: a margin of 2 is under the decision's 4
    assert all(r.answer.abstained for r in results) and {r.best_span for r in results} == {"five lions"}
    assert [r.declined_right_span for r in results] == [True, False]
    assert [r.best_span_right for r in results] == [True, False]  # the calibration picture counts it right, left of the line
    assert summarize(results)["declined_right_span"] == 50.0 and summarize(results)["false_abstention_rate"] == 100.0


def test_an_update_embeds_only_the_articles_added_or_edited(tmp_path, seeds_copy):
    """Edit one article, add one, remove one: only the new passages are embedded, the index is
    the one a full build gives, and every citation still slices its file."""
    config = load_models_config(ROOT / "models.toml")
    embedder, messages = FakeEmbedder(), []
    first = build_pipeline(config, seeds_copy, tmp_path / "index", embedder=embedder, reader=FakeReader([]))
    assert embedder.encoded == len(first.retriever.passages)
    edited = seeds_copy / "003_1053def13e2cd472.txt"
    edited.write_text(edited.read_text(encoding="utf-8") + "\nThe NRF said the talks failed on Friday.\n", encoding="utf-8")
    (seeds_copy / "005_new.txt").write_text(" date 2021-09-06\nThe Taliban said they took Panjshir.", encoding="utf-8")
    (seeds_copy / "002_517ffae1740f5ca3.txt").unlink()
    embedder.encoded = 0
    updated = build_pipeline(config, seeds_copy, tmp_path / "index", embedder=embedder,
                             reader=FakeReader(["talks failed", "took Panjshir"]), on_status=messages.append)
    changed = [p for p in updated.retriever.passages if p.doc_id in ("003_1053def13e2cd472", "005_new")]
    assert embedder.encoded == len(changed) < len(updated.retriever.passages)
    assert any(f"({len(changed)} embedded" in m for m in messages)
    fresh = build_pipeline(config, seeds_copy, tmp_path / "fresh", embedder=FakeEmbedder(), reader=FakeReader([]))
    assert updated.retriever.passages == fresh.retriever.passages
    ids = range(len(fresh.retriever.passages))
    np.testing.assert_allclose(updated.retriever.vectors.vectors(ids), fresh.retriever.vectors.vectors(ids), atol=1e-6)
    for question in ("Did the talks fail?", "Who took Panjshir?"):
        c = updated.ask(question).citation
        assert read_source(c.doc_id, seeds_copy)[c.start:c.end] in ("talks failed", "took Panjshir")


def shown(answer, corpus, dates) -> str:
    from rich.console import Console

    console = Console(record=True, width=200, markup=False)
    console.print(answer_view(answer, corpus, dates))
    return console.export_text()


def test_a_decline_under_dates_says_how_many_undated_articles_were_left_out(tmp_path):
    """The one article that says it may be undated, and a date filter never reads such a one."""
    from rag.dates import DateRange

    parts = parts_over(tmp_path, {"wire.txt": "The ferry to Lark Island leaves at nine.\n",  # undated
                                  "dated.md": "---\ndate: 2021-09-01\n---\nThe valley held out.\n"})
    pipeline = pipeline_with(parts, ["nine"])
    dates = DateRange.parse("2021-01-01", None)
    for asked_under, says in ((None, False), (dates, True)):
        answer = pipeline.ask("When does the ferry leave?", asked_under)
        assert answer.abstained == (asked_under is not None)
        said = "(under --since/--until only dated articles are read: 1 undated article left out)"
        assert (said in shown(answer, parts.corpus, asked_under)) == says


def test_a_decline_under_dates_over_dated_articles_only_says_nothing_of_undated_ones(tmp_path):
    """It said "undated ones were left out" where every article is dated."""
    from rag.dates import DateRange

    parts = parts_over(tmp_path, {"lyon.txt": "date 2023-03-01\nLyon lies on the Rhone.\n",
                                  "porto.txt": "date 2023-03-20\nPorto lies on the Douro.\n"})
    answer = pipeline_with(parts, ["nothing said"]).ask("Where is Lyon?", DateRange.parse(None, "2023-03-15"))
    assert answer.abstained and answer.passages and all(d.date for d in parts.corpus.documents.values())
    assert "undated" not in shown(answer, parts.corpus, DateRange.parse(None, "2023-03-15"))


def test_dates_filter_inside_retrieval(fake_parts):
    from rag.dates import DateRange

    dated = {d.doc_id: d.date for d in fake_parts.corpus.documents.values()}
    pipeline = pipeline_with(fake_parts, ["Panjshir"], top_k=5)
    since = sorted(d for d in dated.values() if d)[-1]  # only the latest day's articles
    answer = pipeline.ask("Panjshir resistance", DateRange(since=since))
    assert answer.passages and {dated[r.passage.doc_id] for r in answer.passages} == {since}
    assert len(answer.passages) == min(5, sum(1 for p in fake_parts.retriever.passages if dated[p.doc_id] == since))
    nothing = pipeline.ask("Panjshir resistance", DateRange(until="1999-12-31"))
    assert nothing.abstained and nothing.passages == []


def test_a_date_range_includes_both_ends_and_never_an_undated_article():
    import numpy as np

    from rag.dates import DateRange

    days = ["2021-08-31", "2021-09-01", "2021-09-15", "2021-09-30", "2021-10-01", None]
    for dates, expected in [(DateRange("2021-09-01", "2021-09-30"), [False, True, True, True, False, False]),
                            (DateRange(since="2021-09-15"), [False, False, True, True, True, False]),
                            (DateRange(until="2021-09-01"), [True, True, False, False, False, False])]:
        assert [dates.holds(day) for day in days] == expected
        assert dates.holds_each(np.array([day or "" for day in days])).tolist() == expected


@pytest.mark.parametrize("since, until, message", [("2021-13-01", None, "is not a date"), ("yesterday", None, "is not a date"),
                                                   ("2021-09-02", "2021-09-01", "is after --until"), ("2021-9-1", None, "is not a date")])
def test_bad_date_filters_are_refused(since, until, message):
    from rag.errors import BadInput
    from rag.dates import DateRange

    with pytest.raises(BadInput, match=message):
        DateRange.parse(since, until)


def test_conflicts_are_newest_first_and_the_latest_article_stating_the_answer_is_named(fake_parts):
    answer = pipeline_with(fake_parts, ["Ahmad Massoud"]).ask("Who leads the resistance?")
    documents = fake_parts.corpus.documents
    stating = [answer.citation.doc_id, *(s.doc_id for s in answer.supporting)]
    newest = max((documents[d].date or "" for d in stating))
    assert answer.latest.date == (newest or None) and answer.latest.doc_id in stating
    assert read_source(answer.latest.doc_id)[answer.latest.start:answer.latest.end] == "Ahmad Massoud"
    from rag.pipeline import newest_first

    assert newest_first(["b", "a", "c"], {"a": "2021-08-01", "b": None, "c": "2021-09-01"}.get) == ["c", "a", "b"]
    # one answer an article, each as sure: every other article conflicts, and they come newest first
    many = pipeline_with(fake_parts, ["five lions", "emeralds", "BBC Radio 4", "Zabihullah Mujahid"]).ask("What is it?")
    dates = [c.citation.date for c in many.conflicts]
    assert len(dates) == 3 and dates == newest_first(dates, lambda date: date)
    assert dates[0] == "2021-08-25" and (None not in dates or dates[-1] is None)


def test_a_stopped_build_resumes_where_it_stopped(tmp_path, seeds_copy, monkeypatch):
    import rag.index as index_module
    from rag.errors import Stopped

    monkeypatch.setattr(index_module, "CHUNK", 8)  # save every 8 passages

    class StoppedAfterTwoChunks(FakeEmbedder):
        def encode(self, texts, on_batch=None):
            if self.encoded >= 16:
                raise KeyboardInterrupt  # Ctrl-C, or as good as a kill: nothing after this runs
            return super().encode(texts, on_batch)

    config, index = load_models_config(ROOT / "models.toml"), tmp_path / "index"
    with pytest.raises(Stopped):  # the one line it stops with says what was kept
        build_pipeline(config, seeds_copy, index, embedder=StoppedAfterTwoChunks(), reader=FakeReader([]))
    embedder, messages = FakeEmbedder(), []
    resumed = build_pipeline(config, seeds_copy, index, embedder=embedder, reader=FakeReader([]), on_status=messages.append)
    total = len(resumed.retriever.passages)
    assert embedder.encoded == total - 16 and any("16 from a stopped build" in m for m in messages)
    assert not (index / "in-progress").exists()  # emptied once the index is saved
    fresh = build_pipeline(config, seeds_copy, tmp_path / "fresh", embedder=FakeEmbedder(), reader=FakeReader([]))
    np.testing.assert_allclose(resumed.retriever.vectors.vectors(range(total)),
                               fresh.retriever.vectors.vectors(range(total)), atol=1e-6)


def test_a_checkpoint_of_another_embedder_is_dropped(tmp_path):
    from rag.checkpoint import EmbeddingCheckpoint

    EmbeddingCheckpoint(tmp_path / "cp", "embedder-a").save_chunk(["k1"], np.ones((1, 4), dtype=np.float32))
    assert set(EmbeddingCheckpoint(tmp_path / "cp", "embedder-a").load()) == {"k1"}
    assert EmbeddingCheckpoint(tmp_path / "cp", "embedder-b").load() == {} and not (tmp_path / "cp").exists()
    EmbeddingCheckpoint(tmp_path / "cp", "embedder-a").save_chunk(["k1"], np.ones((1, 4), dtype=np.float32))
    assert EmbeddingCheckpoint(tmp_path / "cp", "embedder-a").saved() == 1  # what a stopped build's line counts
    assert EmbeddingCheckpoint(tmp_path / "cp", "embedder-b").saved() == 0  # another embedder's: dropped, not "saved"
    (tmp_path / "cp" / "embedder").write_bytes(b"\xff\xfe")  # damaged: "unexpected error: UnicodeDecodeError"
    assert EmbeddingCheckpoint(tmp_path / "cp", "embedder-a").load() == {} and not (tmp_path / "cp").exists()


def test_a_decision_fitted_for_another_reader_is_a_warning(tmp_path):
    config = load_models_config(ROOT / "models.toml")
    messages = []
    build_pipeline(config, SEEDS, tmp_path / "index", embedder=FakeEmbedder(), reader=FakeReader([]), on_status=messages.append)
    assert not any("fitted for another reader" in m for m in messages)  # the bundled table fits the bundled reader
    other = tmp_path / "models.toml"
    text = (ROOT / "models.toml").read_text().replace(f'fitted_for = "{config.reader.fingerprint()}"',
                                                      'fitted_for = "0123456789abcdef"')
    other.write_text(text.replace('"path:models/reader"', f'"path:{ROOT / "models" / "reader"}"'))
    build_pipeline(load_models_config(other), SEEDS, tmp_path / "index", embedder=FakeEmbedder(), reader=FakeReader([]),
                   on_status=messages.append)
    assert any("fitted for another reader (0123456789abcdef" in m and "tune_abstention" in m for m in messages)


def test_an_article_that_supports_the_answer_is_not_also_a_conflict(fake_parts):
    answer = pipeline_with(fake_parts, ["Ahmad Massoud", "Ahmad Shah Massoud"]).ask("Who leads the resistance?")
    supporting = {s.doc_id for s in answer.supporting} | {answer.citation.doc_id}
    assert not {c.citation.doc_id for c in answer.conflicts} & supporting


def test_the_tradeoff_decides_the_same_answers_again_under_each_threshold(fake_parts):
    from rag.evaluate import run_questions, summarize, tradeoff
    from rag.gold import GoldQuestion

    questions = [GoldQuestion("a", "What does Panjshir mean?", ["five lions"], []),
                 GoldQuestion("b", "Who won the World Cup?", [], [])]
    results = run_questions(pipeline_with(fake_parts, ["five lions"]), questions)
    above_every_score = max(r.answer.score for r in results) + 0.01
    everything, own, nothing = tradeoff(results, [0.0, DECISION.threshold, above_every_score])
    assert (everything["f1"], everything["abstention_recall"], everything["false_abstention_rate"]) == (100.0, 0.0, 0.0)
    assert (nothing["f1"], nothing["abstention_recall"], nothing["false_abstention_rate"]) == (0.0, 100.0, 100.0)
    summary = summarize(results)  # at its own threshold, the same figures as the run itself
    assert all(own[key] == summary[key] for key in ("f1", "abstention_recall", "false_abstention_rate"))


def test_an_evaluation_against_a_baseline_shows_each_change(fake_parts, tmp_path):
    from rag.evaluate import articles_not_in, evaluate_gold, write_predictions
    from rag.gold import GoldQuestion

    questions = [GoldQuestion("a", "What does Panjshir mean?", ["five lions"], ["000_882549ac45e52293", "999_gone"]),
                 GoldQuestion("b", "Who won the World Cup?", [], [])]
    pipeline = pipeline_with(fake_parts, ["five lions"])
    assert articles_not_in(pipeline.corpus.documents, questions) == ["999_gone"]
    run = evaluate_gold(pipeline, questions, baseline={"a": None, "b": None})  # it declined both
    f1 = next(row for row in run.against_baseline["measures"] if row["key"] == "f1")
    assert (f1["baseline"], f1["now"], f1["change"]) == (0.0, 100.0, 100.0)
    assert run.to_json()["against_baseline"] == run.against_baseline and run.to_json()["f1"] == 100.0
    assert evaluate_gold(pipeline, questions).against_baseline is None
    assert "against_baseline" not in evaluate_gold(pipeline, questions).to_json()
    write_predictions(tmp_path / "answers.jsonl", run.results)
    lines = (tmp_path / "answers.jsonl").read_text(encoding="utf-8").splitlines()
    assert [json.loads(line)["answer"] for line in lines] == ["five lions", "five lions"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["answers.jsonl"]  # no partial file left beside it


def test_articles_spelling_one_answer_two_ways_support_it_and_do_not_conflict(fake_parts):
    """"vice-president" and "Vice President", or an accent precomposed and one written apart, are
    one answer: they were listed as "sources disagree", and corroborated each other only where
    spelled the same."""
    answer = pipeline_with(fake_parts, ["Vice President", "vice-president", "vice president"]).ask("Who is Amrullah Saleh?")
    assert answer.conflicts == [] and len(answer.supporting) == 4
    from rag.evidence import MAX_AGREEING
    from rag.metrics import same_answer, spelled_alike

    stated = [c.evidence for c in answer.candidates if c.text.lower().startswith("vice")]
    assert stated and all(e.agreeing_articles == e.corroborating_articles == min(4, MAX_AGREEING) for e in stated)

    assert same_answer(spelled_alike("Jos\u00e9 Nu\u00f1ez"), spelled_alike("Jose\u0301 Nun\u0303ez"))


def test_an_article_supports_an_answer_only_by_saying_all_of_it(tmp_path):
    """A bare surname is no support for a full name: which Massoud? It is no conflict either."""
    from rag.metrics import says_all_of

    assert says_all_of("150 kilometers northeast of Kabul", "150 kilometers") and says_all_of("the Taliban", "Taliban")
    assert not says_all_of("Massoud", "Ahmad Massoud") and not says_all_of("Ahmad Shah Massoud", "Ahmad Massoud")
    assert not says_all_of("Ahmad Massoud, son of the mujahideen commander who fought the Soviets", "Ahmad Massoud")
    stories = {"full": "Ahmad Massoud leads the resistance in the valley.",
               "again": "The resistance is led by Ahmad Massoud, its fighters say.",
               "surname": "Massoud leads the resistance, his aides told reporters."}
    parts = parts_over(tmp_path, {f"{name}.txt": text + "\n" for name, text in stories.items()})
    answer = pipeline_with(parts, ["Ahmad Massoud", "Massoud"]).ask("Who leads the resistance?")
    assert answer.text == "Ahmad Massoud"
    assert {answer.citation.doc_id, *(s.doc_id for s in answer.supporting)} == {"full", "again"}
    assert answer.conflicts == []


def test_an_article_whose_other_span_sits_in_a_sentence_stating_the_answer_is_no_conflict(tmp_path):
    """"Ahmad Massoud, son of Ahmad Shah Massoud, …" read as "Ahmad Shah Massoud" does not disagree
    with "Ahmad Massoud"; an article that names only the father does."""
    stories = {"a": "Ahmad Massoud leads the resistance in the valley.",
               "b": "The resistance is led by Ahmad Massoud, its fighters say.",
               "c": "Reporters were told that Ahmad Massoud leads the resistance.",
               "son": "Ahmad Massoud, son of Ahmad Shah Massoud, leads the fighters.",
               "rival": "A rival claims Ahmad Shah Massoud leads the resistance."}
    parts = parts_over(tmp_path, {f"{name}.txt": text + "\n" for name, text in stories.items()})
    agreement_counts = Abstention(bias=-4.0, margin=1.0, agreeing_articles=1.0, threshold=0.5)
    pipeline = Pipeline(parts.corpus, parts.retriever, FakeReader(["Ahmad Shah Massoud", "Ahmad Massoud"]),
                        agreement_counts, 45)
    answer = pipeline.ask("Who leads the resistance?")
    assert answer.text == "Ahmad Massoud"
    assert {c.citation.doc_id for c in answer.conflicts} == {"rival"}


@pytest.mark.parametrize("misread_too", [False, True])
def test_a_conflict_whose_sentence_names_the_answer_too_is_shown_unless_an_article_states_the_answer_alone(
        tmp_path, misread_too):
    """Read from a sentence about the past, "Ahmad Shah Massoud" is the answer; another article's
    sentence names both men, and its reading, "Ahmad Massoud", disagrees: shown (it was hidden
    under --until, which left out the articles that backed "Ahmad Massoud"). A third article that
    supports the answer only by the same misreading of a sentence naming both does not hide it."""
    stories = {"then": "The then resistance was led by Ahmad Shah Massoud's forces.",
               "now": "The resistance is led by Ahmad Massoud, son of the late Ahmad Shah Massoud."}
    if misread_too:  # two spaces: the fake reader finds only the father's name, the sentence names both
        stories["misread"] = "Fighters are led by Ahmad  Massoud, son of Ahmad Shah Massoud."
    parts = parts_over(tmp_path, {f"{name}.txt": text + "\n" for name, text in stories.items()})
    reader = FakeReader(["Ahmad Massoud", "Ahmad Shah Massoud"], surer={"Ahmad Shah Massoud": 9.0})
    answer = Pipeline(parts.corpus, parts.retriever, reader, DECISION, 45).ask("Who leads the resistance?")
    assert answer.text == "Ahmad Shah Massoud"
    assert [s.doc_id for s in answer.supporting] == (["misread"] if misread_too else [])
    assert [(c.answer, c.citation.doc_id) for c in answer.conflicts] == [("Ahmad Massoud", "now")]


@pytest.mark.parametrize("stop", [KeyboardInterrupt, RagError])
def test_an_evaluation_stopped_half_way_keeps_the_answers_it_gave(fake_parts, tmp_path, stop):
    """A Ctrl-C, or a Milvus server gone, at question 900 of 1,000 lost every answer: they were
    written only at the end."""
    from rag.errors import Stopped
    from rag.evaluate import answers_kept_as_they_come, evaluate_gold, write_predictions
    from rag.gold import GoldQuestion

    pipeline = pipeline_with(fake_parts, ["five lions"])
    asked = pipeline.ask

    def ask(question, *args, **kwargs):
        if question.startswith("Stop"):
            raise stop("the archive's server is gone") if stop is RagError else stop
        return asked(question, *args, **kwargs)

    pipeline.ask = ask
    questions = [GoldQuestion(id, question, [], []) for id, question in
                 (("a", "What does Panjshir mean?"), ("b", "Who won the World Cup?"), ("c", "Stop here?"))]
    predictions = tmp_path / "answers.jsonl"
    with pytest.raises(RagError) as ended:
        with answers_kept_as_they_come(predictions) as keep:
            evaluate_gold(pipeline, questions, on_result=keep)
    partial = tmp_path / "answers.jsonl.partial"
    kept = f"the 2 answers so far are in {partial}, one rag ask --json line each"
    if stop is KeyboardInterrupt:
        assert isinstance(ended.value, Stopped) and str(ended.value) == f"stopped while answering: {kept}"
    else:
        assert str(ended.value) == f"the archive's server is gone; {kept}"
    assert [json.loads(line)["question"] for line in partial.read_text(encoding="utf-8").splitlines()] == [
        "What does Panjshir mean?", "Who won the World Cup?"]
    assert not predictions.exists()  # a file of some answers is never taken for a whole run's
    with answers_kept_as_they_come(predictions) as keep:
        run = evaluate_gold(pipeline, questions[:2], on_result=keep)
    write_predictions(predictions, run.results)
    # the partial file goes once the whole is written; the stopped run's was moved aside, not overwritten
    assert sorted(p.name for p in tmp_path.iterdir()) == ["answers.jsonl", "answers.jsonl.partial.1"]
    assert len((tmp_path / "answers.jsonl.partial.1").read_text(encoding="utf-8").splitlines()) == 2
    (tmp_path / "answers.jsonl.partial.1").unlink()
    with pytest.raises(RagError, match="[:;] no question was answered yet$"):
        with answers_kept_as_they_come(predictions) as keep:
            evaluate_gold(pipeline, questions[2:], on_result=keep)
    assert not partial.exists()


def test_a_pipeline_with_another_reader_answers_from_the_same_index_build(fake_parts):
    swapped = fake_parts.with_reader(FakeReader(["five lions"]))
    assert fake_parts.index_version and swapped.index_version == fake_parts.index_version
    assert swapped.ask("What does Panjshir mean?").text == "five lions"


def test_an_article_copied_word_for_word_neither_crowds_out_passages_nor_raises_the_confidence(seeds_copy, tmp_path):
    """A wire story two papers ran, or the same file saved twice: its copy took retrieval places
    with the same text and corroborated its own answer (with the shipped models, 0.71 became 0.998)."""
    config = load_models_config(ROOT / "models.toml")
    decision = Abstention(bias=-4.0, margin=1.0, corroborating_articles=2.0, threshold=0.5)

    def asked(name):
        parts = build_pipeline(config, seeds_copy, tmp_path / name, embedder=FakeEmbedder(), reader=FakeReader([]))
        pipeline = Pipeline(parts.corpus, parts.retriever, FakeReader(["five lions"]), decision, 5)
        return pipeline.ask("What does Panjshir mean, five lions?")

    alone = asked("alone")
    (seeds_copy / "copy of 000.txt").write_bytes((seeds_copy / "000_882549ac45e52293.txt").read_bytes())
    copied = asked("copied")
    assert copied_note(seeds_copy) == ("warning: 1 article(s) copy another word for word: copy of 000 (of "
                                       "000_882549ac45e52293); each text is read once and a copy is no second source")
    texts = [p.passage.text for p in copied.passages]
    assert len(texts) == 5 and len(set(texts)) == 5
    assert copied.text == alone.text == "five lions" and copied.score == pytest.approx(alone.score)


def copied_note(folder) -> str:
    from rag.corpus import load_corpus, status_line

    (note,) = [status_line(reason) for reason in load_corpus(folder).skipped if "word for word" in reason]
    return note


def test_why_shows_a_span_across_lines_on_one_line(fake_parts):
    """A span from a heading into the next paragraph broke --why's layout over two lines."""
    from rich.console import Console

    answer = pipeline_with(fake_parts, ["history of Panjshir?\n\nHome"]).ask("What is the history of Panjshir?")
    console = Console(record=True, width=200, markup=False)
    console.print(why_view(answer, DECISION.threshold))
    shown = console.export_text()
    assert "“history of Panjshir? Home”" in shown and "Panjshir?\n" not in shown


def test_many_copies_of_the_articles_still_leave_k_distinct_passages(seeds_copy, tmp_path):
    """Thirteen copies of each article fill rankings 50 deep with a few texts: retrieval searches deeper."""
    for path in list(seeds_copy.glob("*.txt")):
        for n in range(12):
            (seeds_copy / f"{path.stem}-copy-{n}.txt").write_bytes(path.read_bytes())
    parts = build_pipeline(load_models_config(ROOT / "models.toml"), seeds_copy, tmp_path / "index",
                           embedder=FakeEmbedder(), reader=FakeReader([]))
    hits = parts.retriever.retrieve("What does Panjshir mean, and who leads the resistance there?", 10)
    assert len(hits) == 10 and len({h.passage.text for h in hits}) == 10


def test_a_copy_with_its_own_first_line_reads_as_no_second_source(seeds_copy, tmp_path):
    """A wire story another paper ran under its own dateline: its passages differ, but the answer's
    sentence is the same word for word, so it is the same report, not corroboration."""
    config = load_models_config(ROOT / "models.toml")
    decision = Abstention(bias=-4.0, margin=1.0, corroborating_articles=2.0, threshold=0.5)
    question = "What does Panjshir, home to the country’s largest ethnic Tajik population, mean?"

    def asked(name):
        parts = build_pipeline(config, seeds_copy, tmp_path / name, embedder=FakeEmbedder(), reader=FakeReader([]))
        return Pipeline(parts.corpus, parts.retriever, FakeReader(["five lions"]), decision, 5).ask(question)

    alone = asked("alone")
    original = (seeds_copy / "000_882549ac45e52293.txt").read_text(encoding="utf-8")
    (seeds_copy / "reprint.txt").write_text("KABUL (Wire) — " + original.replace("\n", " "), encoding="utf-8")
    reprinted = asked("reprinted")
    stated = {c.span.doc_id for c in reprinted.candidates if c.text == "five lions"}
    assert stated == {"000_882549ac45e52293", "reprint"}  # both read: their passages are not copies
    assert reprinted.score == pytest.approx(alone.score)
    assert all(c.evidence.corroborating_articles == 0 for c in reprinted.candidates)
