"""`rag eval --baseline`: the change in each measure against an earlier run, with its paired
bootstrap interval, and the questions that changed (fast tier: no model)."""
import json

import pytest

from rag.compare import compare, load_baseline, paired_interval
from rag.errors import RagError
from rag.gold import GoldQuestion
from tests.conftest import ROOT, run_rag

QUESTIONS = [GoldQuestion("a", "What does Panjshir mean?", ["five lions"], ["d1"]),
             GoldQuestion("b", "What is the valley famed for?", ["emeralds"], ["d1"]),
             GoldQuestion("c", "Who discovered penicillin?", [], [])]


def measures(result: dict) -> dict:
    return {row["key"]: row for row in result["measures"]}


def test_a_run_against_itself_changes_nothing():
    answers = {"a": "five lions", "b": None, "c": "Fleming"}
    result = compare(QUESTIONS, answers, dict(answers))
    assert all(row["change"] == 0.0 and row["interval"] == [0.0, 0.0] for row in result["measures"])
    assert result["changed"] == []


def test_each_measure_changes_by_what_the_changed_questions_are_worth():
    before = {"a": "five lions", "b": None, "c": "Fleming"}
    now = {"a": "lions", "b": "emeralds", "c": None}
    result = compare(QUESTIONS, now, before)
    f1, recall, declined = (measures(result)[key] for key in ("f1", "abstention_recall", "false_abstention_rate"))
    assert (f1["baseline"], f1["now"], f1["change"]) == (50.0, 83.3, 33.3)  # "lions" is F1 2/3 against "five lions"
    assert (recall["baseline"], recall["now"]) == (0.0, 100.0) and declined["change"] == -50.0
    assert f1["interval"][0] <= f1["change"] <= f1["interval"][1]
    assert [(c["id"], c["verdict"]) for c in result["changed"]] == [("a", "worse"), ("b", "better"), ("c", "better")]


def test_an_answer_that_changes_without_changing_f1_is_listed_as_the_same():
    before = {"a": "Panjshir", "b": None, "c": None}  # a wrong answer to a…
    now = {"a": None, "b": None, "c": None}  # …declined: F1 stays 0, the false-abstention rate rises
    result = compare(QUESTIONS, now, before)
    assert measures(result)["false_abstention_rate"]["change"] == 50.0
    assert [(c["id"], c["baseline"], c["now"], c["verdict"]) for c in result["changed"]] == [("a", "Panjshir", None, "same")]


def test_the_interval_is_wide_for_one_question_and_narrow_for_a_steady_gain():
    one = paired_interval([0.0] * 19 + [0.0], [0.0] * 19 + [100.0])
    assert one[0] == 0.0 and one[1] >= 10.0  # one question of twenty: the change could be nothing
    steady = paired_interval([0.0] * 20, [10.0] * 20)
    assert steady == (10.0, 10.0)
    assert paired_interval([], []) == (None, None)


def write(path, rows):
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def test_a_baseline_is_read_by_question_and_must_answer_every_one(tmp_path):
    rows = [{"question": "What does  Panjshir mean?", "answer": "five lions", "abstained": False},  # spaces as typed
            {"question": "What is the valley famed for?", "answer": "", "abstained": True},
            {"question": "Who discovered penicillin?", "answer": "Fleming", "abstained": False}]
    assert load_baseline(write(tmp_path / "p.jsonl", rows), QUESTIONS) == {"a": "five lions", "b": None, "c": "Fleming"}
    with pytest.raises(RagError, match=r"has no answer to 1 of the 3 gold questions \(first: 'Who discovered"):
        load_baseline(write(tmp_path / "short.jsonl", rows[:2]), QUESTIONS)
    with pytest.raises(RagError, match=r"other\.jsonl:2: not a `rag eval --predictions` line"):
        load_baseline(write(tmp_path / "other.jsonl", rows[:1] + [{"id": "a", "answers": []}]), QUESTIONS)
    with pytest.raises(RagError, match="cannot read the baseline") as error:
        load_baseline(tmp_path / "absent.jsonl", QUESTIONS)
    assert error.value.exit_code == 1  # a bad file, as a bad gold file is; 2 is for a mistyped command
    (tmp_path / "latin1.jsonl").write_bytes("caf\xe9".encode("latin-1"))
    with pytest.raises(RagError, match=r"latin1\.jsonl is not UTF-8 text"):
        load_baseline(tmp_path / "latin1.jsonl", QUESTIONS)
    separated = [dict(rows[0], citation={"sentence": "five\u2028lions"})] + rows[1:]
    (tmp_path / "u2028.jsonl").write_text(  # as rag eval writes it: the separator stays itself
        "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in separated), encoding="utf-8")
    assert load_baseline(tmp_path / "u2028.jsonl", QUESTIONS)["a"] == "five lions"


@pytest.mark.parametrize("row", [
    {"question": "What does Panjshir mean?", "answer": 5, "abstained": False},  # crashed after the whole run
    {"question": 5, "answer": "five lions", "abstained": False},
])
def test_a_baseline_whose_answers_are_not_text_is_refused_as_it_loads(tmp_path, row):
    with pytest.raises(RagError, match=r"p\.jsonl:1: not a `rag eval --predictions` line"):
        load_baseline(write(tmp_path / "p.jsonl", [row]), QUESTIONS)


def test_a_gold_question_with_invisible_characters_matches_its_own_predictions(tmp_path):
    asked = [GoldQuestion("z", "What does\u200b Panjshir mean?", ["five lions"], ["d1"])]
    kept = [{"question": "What does Panjshir mean?", "answer": "five lions", "abstained": False}]  # as rag ask kept it
    assert load_baseline(write(tmp_path / "p.jsonl", kept), asked) == {"z": "five lions"}


@pytest.mark.integration  # a rag subprocess (it exits before any model loads)
@pytest.mark.parametrize("gate, value", [("--min-f1", "nan"), ("--min-citation", "101"), ("--min-abstention", "-1")])
def test_a_gate_that_is_not_a_percentage_is_a_one_line_error(gate, value):
    result = run_rag("eval", gate, value)  # NaN passed every run: nothing is under NaN
    assert result.returncode == 2 and f"{gate} is a percentage from 0 to 100, not {value}" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("options, says", [
    (["--baseline", "p.jsonl"], "--baseline goes with the gold set, not with --squad"),
    (["--min-f1", "90", "--report", "r.md"], "--report, --min-f1 go with the gold set, not with --squad"),
    (["-k", "3"], "--top-k goes with --squad --open"),
])
@pytest.mark.integration  # a rag subprocess (it exits before any model loads)
def test_gold_set_options_with_squad_data_are_a_one_line_error(tmp_path, options, says):
    result = run_rag("eval", "--squad", str(tmp_path / "any.json"), *options)  # a gate ignored would pass anything
    assert result.returncode == 2 and says in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("outputs", [
    ["--predictions", "{gold}"],
    ["--report", "{gold}"],
    ["--report", "{p}", "--predictions", "{p}"],
    ["--report", "{base}", "--baseline", "{base}"],
    ["--report", "{d}/r.md", "--predictions", "{d}/r.calibration.png"],
])
@pytest.mark.integration  # a rag subprocess (it exits before any model loads)
def test_rag_eval_refuses_to_write_over_a_file_it_reads_or_writes(tmp_path, outputs):
    """Before any model loads, and with every file left as it was."""
    gold = tmp_path / "gold.jsonl"
    gold.write_text(json.dumps({"id": "a", "question": "What does Panjshir mean?", "answers": ["five lions"]}) + "\n")
    base = write(tmp_path / "base.jsonl", [{"question": "What does Panjshir mean?", "answer": "five lions", "abstained": False}])
    before = {path: path.read_bytes() for path in (gold, base)}
    args = [a.format(gold=gold, base=base, p=tmp_path / "p.jsonl", d=tmp_path) for a in outputs]
    result = run_rag("eval", "--gold", str(gold), *args)
    assert result.returncode == 2 and "it would be overwritten; give another file name" in result.stderr
    assert {path: path.read_bytes() for path in before} == before and not (tmp_path / "p.jsonl").exists()


def test_rag_eval_may_write_its_answers_over_the_baseline_it_read_first(tmp_path):
    from rag.evaluate import check_outputs_apart

    base = tmp_path / "base.jsonl"
    check_outputs_apart({"--gold": tmp_path / "gold.jsonl", "--baseline": base}, {"--predictions": base, "--report": None})


@pytest.mark.parametrize("option, where", [
    ("--report", "seeds/000_882549ac45e52293.txt"),      # an article, replaced for good
    ("--predictions", "seeds/answers.jsonl"),           # read as an article by the next question
    ("--report", "seeds/sub/report.md"),
    ("--predictions", ".rag/seeds/answers.jsonl"),      # the index folder
])
@pytest.mark.integration  # a rag subprocess (it exits before any model loads)
def test_rag_eval_writes_nothing_into_the_articles_or_their_index(seeds_copy, option, where):
    article = seeds_copy / "000_882549ac45e52293.txt"
    before = article.read_bytes()
    target = seeds_copy.parent / where
    result = run_rag("eval", "--seeds", str(seeds_copy), option, str(target))
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith(f"error: {option} {target} is inside the ") and "write it elsewhere" in result.stderr
    assert article.read_bytes() == before and not (seeds_copy / "answers.jsonl").exists()


@pytest.fixture
def fake_models(monkeypatch, tmp_path):
    """Every pipeline the command opens reads with the fake models (an index of its own in tmp_path)."""
    from rag import assembly
    from tests.fakes import FakeEmbedder, FakeReader

    real = assembly.build_pipeline
    monkeypatch.setattr(assembly, "build_pipeline", lambda config, seeds, index, *args, **kwargs: real(
        config, seeds, index or tmp_path / "index", embedder=FakeEmbedder(), reader=FakeReader(["Ahmad Massoud"])))


def test_rag_eval_on_articles_its_gold_set_never_cites_is_an_error_not_a_zero(tmp_path, fake_models):
    """`rag eval --seeds MINE` without --gold takes the bundled gold set: F1 0 and exit 0 before."""
    from typer.testing import CliRunner

    from rag.cli import app

    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "ferry.txt").write_text("The ferry to Lark Island leaves at nine.", encoding="utf-8")
    result = CliRunner().invoke(app, ["eval", "--seeds", str(mine), "--gold", str(ROOT / "eval" / "gold.jsonl")])
    assert isinstance(result.exception, RagError)  # the command's entry prints it as one line, exit 1
    assert str(result.exception).startswith(f"none of the articles {ROOT / 'eval' / 'gold.jsonl'} cites is in {mine} (")


def test_a_gold_docs_entry_that_names_no_article_is_an_error_naming_its_line(tmp_path, fake_models):
    """A typo in "docs" got a column of its own, full of the question's 100s, and made that
    question's retrieval and citation measures wrong: it is said before any question is asked."""
    from typer.testing import CliRunner

    from rag.cli import app

    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "ferry.txt").write_text("The ferry to Lark Island leaves at nine.", encoding="utf-8")
    (mine / "storm.txt").write_text("The storm closed the harbour on Monday.", encoding="utf-8")
    gold = tmp_path / "gold.jsonl"
    gold.write_text("".join(json.dumps(q) + "\n" for q in [
        {"id": "f1", "question": "When does the ferry leave?", "answers": ["at nine"], "docs": ["ferry"]},
        {"id": "s1", "question": "What closed the harbour?", "answers": ["The storm"], "docs": ["storm", "nosuch"]},
        {"id": "s2", "question": "When did the harbour close?", "answers": ["Monday"], "docs": ["nosuch", "stomr"]}]),
        encoding="utf-8")
    result = CliRunner().invoke(app, ["eval", "--seeds", str(mine), "--gold", str(gold), "--report", str(tmp_path / "r.md")])
    assert isinstance(result.exception, RagError), result.output
    assert str(result.exception) == (f"{gold}:2: \"docs\" names 'nosuch', no article of {mine} (2 questions name it; "
                                     "nor is 'stomr'): a doc id is the file name, .txt dropped (rag ask --json shows them)")
    assert not (tmp_path / "r.md").exists()


def test_a_disk_full_as_the_outputs_are_written_loses_no_result_and_is_one_line(tmp_path, fake_models, monkeypatch):
    import errno
    import json

    from typer.testing import CliRunner

    import rag.evaluate
    from rag.cli import app

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(rag.evaluate, "write_atomically", full)
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["eval", "--json", "--predictions", str(out / "answers.jsonl")])
    assert json.loads(result.stdout)["questions"] == 64  # the whole run's figures, printed first
    assert isinstance(result.exception, RagError)
    assert str(result.exception) == f"cannot write {out / 'answers.jsonl'}: No space left on device"


def test_a_report_whose_picture_cannot_be_written_is_refused_before_any_question_is_asked(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    import rag.cli
    from rag.cli import app

    (tmp_path / "rep.calibration.png").mkdir()
    monkeypatch.setattr(rag.cli, "open_pipeline", lambda *args, **kwargs: pytest.fail("the run started"))
    result = CliRunner().invoke(app, ["eval", "--report", str(tmp_path / "rep.md")])
    assert isinstance(result.exception, RagError)
    assert str(result.exception) == f"cannot write {tmp_path / 'rep.calibration.png'}: it is a folder; give a file name"


@pytest.mark.integration  # a rag subprocess (it exits before any model loads)
def test_a_gate_written_as_a_fraction_is_refused():
    result = run_rag("eval", "--min-f1", "0.73")  # any run with an F1 of 1 % would pass
    assert result.returncode == 2
    assert result.stderr.strip() == ("error: --min-f1 is a percentage from 0 to 100: 0.73 would pass nearly any run "
                                     "(for 73 %, give 73)")


@pytest.mark.parametrize("through", ["the link in the folder", "the file it links to"])
def test_rag_eval_writes_no_article_a_link_in_the_folder_reads(tmp_path, through):
    from rag.evaluate import check_outputs_outside

    elsewhere = tmp_path / "elsewhere" / "ferry.txt"
    elsewhere.parent.mkdir()
    elsewhere.write_text("The ferry leaves at nine.", encoding="utf-8")
    seeds = tmp_path / "seeds"
    seeds.mkdir()
    (seeds / "ferry.txt").symlink_to(elsewhere)
    target = seeds / "ferry.txt" if through == "the link in the folder" else elsewhere
    with pytest.raises(RagError, match="is inside the articles folder"):
        check_outputs_outside({"--predictions": target}, {"the articles folder": seeds})
    check_outputs_outside({"--predictions": tmp_path / "elsewhere" / "answers.jsonl"}, {"the articles folder": seeds})


def test_rag_eval_under_dates_names_the_questions_it_left_out_in_its_json(fake_models):
    """They were counted as false abstentions; left out, a gated run's JSON must still say so."""
    from typer.testing import CliRunner

    from rag.cli import app

    result = CliRunner().invoke(app, ["eval", "--json", "--since", "2021-08-25", "--seeds", str(ROOT / "seeds"),
                                      "--gold", str(ROOT / "eval" / "gold.jsonl")])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert "g02" in summary["left_out"] and "g01" not in summary["left_out"]  # 001 (undated) states g02's answer; 002 g01's
    assert summary["questions"] == 64 - len(summary["left_out"])
    assert "questions left out, as only articles outside the dates answer them: g02" in " ".join(result.stderr.split())


def test_a_report_beside_a_baseline_holds_what_changed_against_it(tmp_path, fake_models):
    """The terminal showed the comparison; the saved report, read later, had none of it."""
    from typer.testing import CliRunner

    from rag.cli import app

    before = tmp_path / "before.jsonl"
    assert CliRunner().invoke(app, ["eval", "--json", "--predictions", str(before)]).exit_code == 0
    rows = [json.loads(line) for line in before.read_text(encoding="utf-8").splitlines()]
    changed = next(row for row in rows if row["abstained"] is False)  # now declined in the baseline
    changed.update(abstained=True, answer=None)
    before.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    report = tmp_path / "report.md"
    result = CliRunner().invoke(app, ["eval", "--report", str(report), "--baseline", str(before)])
    assert result.exit_code == 0
    text = report.read_text(encoding="utf-8")
    assert f"## Against the baseline ({before})" in text and "| F1 |" in text
    assert any(changed["question"] in line and "*(declined)*" in line for line in text.splitlines())
