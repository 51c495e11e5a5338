"""`rag eval --squad` scores as the official SQuAD v2 script does, so its figures compare with
published ones; the gold set keeps news text's own normalisation (fast tier: no model)."""
import json

import pytest

from rag.compare import load_baseline
from rag.errors import RagError
from rag.gold import load_gold
from rag.metrics import exact_match, f1_score
from rag.squad import SquadQuestion, load_squad, score
from tests.conftest import run_rag


def one(answers: list[str], prediction: str | None) -> dict:
    return score({"q": prediction}, [SquadQuestion("q", "?", answers, "c")])


def test_only_ascii_punctuation_is_stripped_as_the_official_script_does():
    assert one(["Saleh's"], "Saleh’s")["em"] == 0.0  # the typographic apostrophe stays a character
    assert one(["Smith"], "Smith – Jones")["f1"] == 50.0  # the dash is a token of its own
    assert exact_match("Saleh’s", "Saleh's") == 1.0 and f1_score("Smith – Jones", "Smith") == 2 / 3  # gold: news marks go


def test_gold_answers_that_normalise_to_nothing_are_dropped():
    assert one(["the", "the Rhine"], None)["has_ans_em"] == 0.0  # declining is not right because "the" is empty
    assert one(["the", "the Rhine"], "Rhine")["has_ans_em"] == 100.0


def test_an_unanswerable_question_is_right_when_the_prediction_normalises_to_nothing():
    assert one([], None)["no_ans_accuracy"] == 100.0
    assert one([], "the")["no_ans_accuracy"] == 100.0
    assert one([], "Kabul")["no_ans_accuracy"] == 0.0


def squad_file(tmp_path, qas: list, context="Bob Smith runs the bakery.", prefix: bytes = b""):
    path = tmp_path / "squad.json"
    data = {"data": [{"title": "t", "paragraphs": [{"context": context, "qas": qas}]}]}
    path.write_bytes(prefix + json.dumps(data).encode())
    return path


ASKED = {"id": "q1", "question": "Who runs the bakery?", "answers": [{"text": "Bob Smith", "answer_start": 0}]}


def test_a_question_that_lists_answers_is_answerable_whatever_is_impossible_says(tmp_path):
    """The official script splits HasAns from NoAns by the answers listed, not by is_impossible."""
    (question,) = load_squad(squad_file(tmp_path, [dict(ASKED, is_impossible=True)])).questions
    assert question.answers == ["Bob Smith"] and score({question.id: "Bob Smith"}, [question])["has_ans_em"] == 100.0


def test_a_squad_file_with_a_byte_order_mark_is_read(tmp_path):
    assert [q.question for q in load_squad(squad_file(tmp_path, [ASKED], prefix=b"\xef\xbb\xbf")).questions] == ["Who runs the bakery?"]


@pytest.mark.parametrize("qas, context, said", [
    ([], "Bob Smith runs the bakery.", "holds no questions"),
    ([dict(ASKED, question=None)], "Bob Smith runs the bakery.", 'a "question" that is not text'),
    ([ASKED], 5, 'a "context" that is not text'),
])
def test_a_squad_file_that_cannot_be_scored_is_one_line_as_it_loads(tmp_path, qas, context, said):
    with pytest.raises(RagError, match=said):
        load_squad(squad_file(tmp_path, qas, context))


@pytest.mark.integration  # a rag subprocess (it exits before any model loads)
@pytest.mark.parametrize("question, said", [("x" * 501, "too long"), ("", "empty")])
def test_rag_eval_squad_names_a_question_rag_ask_would_refuse_before_loading_models(tmp_path, question, said):
    path = squad_file(tmp_path, [ASKED, dict(ASKED, id="q2", question=question)])
    result = run_rag("eval", "--squad", str(path), "--open")
    assert result.returncode == 2 and "question 'q2':" in result.stderr and said in result.stderr
    assert "loading" not in result.stderr and "Traceback" not in result.stderr


def test_a_squad_file_giving_one_id_twice_is_refused_before_scoring(tmp_path):
    """Answers are scored by id: the second question would take the first's answer."""
    from rag.squad import check_askable

    path = squad_file(tmp_path, [ASKED, dict(ASKED, question="Who owns the bakery?")])
    data = load_squad(path)  # training reads it: it never looks at ids
    with pytest.raises(RagError, match=r"the question id 'q1' is given twice"):
        check_askable(data, path)


def test_gold_and_baseline_files_with_a_byte_order_mark_are_read(tmp_path):
    gold = tmp_path / "gold.jsonl"
    gold.write_bytes(b"\xef\xbb\xbf" + json.dumps({"id": "a", "question": "What does Panjshir mean?", "answers": ["x"]}).encode())
    (question,) = load_gold(gold)
    base = tmp_path / "base.jsonl"
    base.write_bytes(b"\xef\xbb\xbf" + json.dumps({"question": question.question, "answer": "x", "abstained": False}).encode())
    assert load_baseline(base, [question]) == {"a": "x"}


@pytest.mark.integration  # a rag subprocess (it exits before any model loads)
def test_rag_store_in_the_environment_is_not_an_option_given_beside_squad(tmp_path):
    import os
    import subprocess
    import sys

    from tests.conftest import ROOT

    path = squad_file(tmp_path, [dict(ASKED, question="")])  # refused as the file is checked: no model loads
    run = lambda env: subprocess.run([sys.executable, "-m", "rag", "eval", "--squad", str(path), *env[1]], cwd=ROOT,  # noqa: E731
                                     capture_output=True, text=True, env=dict(os.environ, **env[0]))
    from_the_environment = run(({"RAG_STORE": "faiss"}, []))
    assert "question 'q1': the question is empty" in from_the_environment.stderr
    typed = run(({}, ["--store", "faiss"]))
    assert typed.returncode == 2 and "--store goes with the gold set, not with --squad" in typed.stderr


def test_per_article_columns_are_named_by_the_first_words_that_tell_them_apart():
    """Cut to three letters, the heads read "bri │ fee │ fer │ sto": a head ends where a word does."""
    from rag.evaluate import shortest_unique_prefixes

    assert shortest_unique_prefixes(["bristol-mayor.md", "feed.jsonl#w-101", "ferry", "storm.html"]) == [
        "bristol", "feed", "ferry", "storm"]
    assert shortest_unique_prefixes(["storm.html", "storm-2.html"]) == ["storm.html", "storm-2"]
    assert shortest_unique_prefixes(["000_8825.txt", "001_fb70.txt"]) == ["000", "001"]
    assert shortest_unique_prefixes(["news.jsonl#a", "news.jsonl#b"]) == ["news.jsonl#a", "news.jsonl#b"]
    assert shortest_unique_prefixes(["2021-09-06-kabul.txt", "2021-09-07-panjshir-valley.md", "abc"]) == [
        "kabul", "panjshir", "abc"]  # a leading date says little where the rest tells them apart
    assert shortest_unique_prefixes(["2021-09-06-kabul.txt", "2021-09-07-kabul.txt"]) == ["2021-09-06", "2021-09-07"]
    assert shortest_unique_prefixes(["2021-09-06", "2021-09-07"]) == ["2021-09-06", "2021-09-07"]  # a date alone stays
    assert shortest_unique_prefixes(["2021-09-06.md", "2021-09-07.html"]) == ["2021-09-06", "2021-09-07"]
    assert shortest_unique_prefixes(["2021-09-06-x", "2021-09-07-y", "abc"]) == ["x", "y", "abc"]
    assert shortest_unique_prefixes(["ab", "abc"]) == ["ab", "abc"]


def test_a_squad_file_that_is_not_there_is_said_to_be_not_found(tmp_path):
    with pytest.raises(RagError, match=r"^SQuAD file not found: .*nofile\.json$"):
        load_squad(tmp_path / "nofile.json")


def test_open_mode_reports_the_embedding_of_the_paragraphs_as_it_goes(monkeypatch):
    """`rag eval --squad --open` embeds every paragraph before the first question: its progress
    reaches the bar, not minutes of silence."""
    from rag import assembly
    from rag.config import load_models_config
    from rag.squad import SquadData, evaluate_file
    from tests.conftest import ROOT
    from tests.fakes import FakeEmbedder, FakeReader

    real_build = assembly.build_pipeline
    monkeypatch.setattr(assembly, "build_pipeline", lambda *args, **kwargs: real_build(
        *args, **kwargs, embedder=FakeEmbedder(), reader=FakeReader(["Bazarak"])))
    data = SquadData({"c1": "The capital of Panjshir is Bazarak.", "c2": "Kabul is the capital of Afghanistan."},
                     [SquadQuestion("q1", "What is the capital of Panjshir?", ["Bazarak"], "c1")])
    embedded = []
    result = evaluate_file(data, load_models_config(ROOT / "models.toml"), open_domain=True,
                           on_progress=lambda done, total: embedded.append((done, total)))
    assert embedded[-1] == (2, 2)
    assert result["open (retrieve, then read)"]["f1"] == 100.0


def test_a_stop_while_open_mode_embeds_says_nothing_is_kept_not_a_rag_index_to_go_on():
    """Its index is a throwaway one, removed with its folder: the saved passages go with it."""
    from rag.errors import Stopped
    from rag.squad import SquadData, evaluate_open

    def stopped(seeds, index):
        raise Stopped("while embedding", f"the passages embedded so far are saved in {index}", False)

    data = SquadData({"c1": "The capital of Panjshir is Bazarak."}, [SquadQuestion("q1", "What is the capital?", ["Bazarak"], "c1")])
    with pytest.raises(Stopped) as stop:
        evaluate_open(data, stopped)
    assert str(stop.value) == "stopped while embedding: nothing is kept (the paragraphs' index was a throwaway one)"


def test_articles_too_many_for_the_terminal_leave_the_summary_to_the_report(monkeypatch):
    """Thirteen crushed columns read "202" and "wir": the summary keeps "all" and says where the rest are."""
    import io

    from rich.console import Console

    from rag import cli
    from rag.evaluate import SUMMARY_ROWS

    figures = {key: 50.0 for _, key in SUMMARY_ROWS} | {"questions": 2, "answerable": 1}
    for articles, shown in ((5, True), (13, False)):
        monkeypatch.setattr(cli, "out", Console(file=io.StringIO(), width=120))
        cli._print_summary(figures, {f"2024-03-{n:02d}-story": figures for n in range(articles)})
        said = " ".join(cli.out.file.getvalue().split())  # the caption wraps under a narrow table
        assert ("2024-03-00" in said) is shown
        assert (f"{articles} articles, too many columns for this terminal: each one's is in --report's table"
                in said) is not shown
    monkeypatch.setattr(cli, "out", Console(file=io.StringIO(), width=120))
    cli._print_summary(figures, {f"2024-03-{n:02d}-story": figures for n in range(4)})
    assert "2024-03-03-story" in cli.out.file.getvalue()  # whole ids where they fit, not "202" cut short
    monkeypatch.setattr(cli, "out", Console(file=io.StringIO(), width=80))
    cli._print_summary(figures, dict.fromkeys(["bristol-mayor.md", "feed.jsonl#w-101", "ferry", "storm.html"], figures))
    heads = next(line for line in cli.out.file.getvalue().splitlines() if "metric" in line)
    assert [head.strip() for head in heads.split("┃")[2:-1]] == ["all", "bristol", "feed", "ferry", "storm"]  # not "bri"


def test_an_answer_glued_to_the_next_word_by_punctuation_is_still_stated():
    """"Kabul-based" and "12 dead.[3]" hold their answers: rag eval said the passages read did
    not, and warned that the gold answer was in none of the articles it cites."""
    from rag.metrics import states_an_answer

    assert states_an_answer("The Kabul-based agency said 40 were hurt.", ["Kabul"])
    assert states_an_answer("The toll rose to 12 dead.[3] Officials blamed a mine.", ["12 dead"])
    assert states_an_answer("the U.S. army", ["U.S."])  # ("a U.S.-made mine" does not: "us" is glued to "made")
    assert not states_an_answer("The Kabulbased agency.", ["Kabul"]) and not states_an_answer("Kabul", ["the"])
    for text, answer in [("The quake killed 1,200 people.", "200"), ("Growth was 12.5 percent.", "5"),
                         ("a meeting at 10:30", "30"), ("He took 1 step", "A-1"), ("at T-Mobile", "AT&T")]:
        assert not states_an_answer(text, [answer]), (text, answer)  # a number's own punctuation stays
