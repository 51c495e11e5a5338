"""`rag eval` as CI and a person use it: summary JSON, predictions in the ask contract, a
report with every question and a calibration picture, gates, and SQuAD mode."""
import json
from pathlib import Path

import pytest

from rag.evaluate import run_questions, summarize
from rag.gold import GoldQuestion
from tests.conftest import ROOT, fitted_for_another_reader, models_file_elsewhere, run_rag
from tests.test_cli import assert_contract

pytestmark = pytest.mark.integration  # real models

SUMMARY_KEYS = {"em", "f1", "recall_at_1", "recall_at_5", "mrr", "answer_in_passages", "declined_right_span", "citation_accuracy",
                "abstention_recall",
                "false_abstention_rate", "latency_ms_p50", "latency_ms_p95"}


def test_metrics_on_known_outcomes(pipeline):
    questions = [GoldQuestion("a", "What does the name Panjshir mean?", ["five lions"], ["000_882549ac45e52293"]),
                 GoldQuestion("b", "What is the Panjshir Valley famed for?", ["emeralds"], ["001_fb70659820c0e01f"]),
                 GoldQuestion("c", "Who discovered penicillin?", [], [])]
    results = run_questions(pipeline, questions)
    summary = summarize(results)
    assert summary["em"] == 100.0 and summary["f1"] == 100.0 and summary["citation_accuracy"] == 100.0
    assert summary["abstention_recall"] == 100.0 and summary["false_abstention_rate"] == 0.0
    assert summary["recall_at_5"] == 100.0 and 0 < summary["mrr"] <= 100 and summary["answer_in_passages"] == 100.0
    wrong_doc = run_questions(pipeline, [GoldQuestion("d", questions[0].question, ["five lions"], ["004_5381029668afd7ea"])])
    assert summarize(wrong_doc)["citation_accuracy"] == 0.0  # right words, but not from a supporting article


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory):
    out = tmp_path_factory.mktemp("eval")
    gold = [json.loads(line) for line in (ROOT / "eval" / "gold.jsonl").read_text(encoding="utf-8").splitlines()]
    declining = out / "declining.jsonl"  # a baseline that declines every question
    declining.write_text("".join(json.dumps({"question": g["question"], "answer": "", "abstained": True}) + "\n"
                                 for g in gold), encoding="utf-8")
    result = run_rag("eval", "--json", "--predictions", str(out / "predictions.jsonl"), "--report",
                     str(out / "report" / "report.md"), "--index-dir", str(out / "index"), "--baseline", str(declining),
                     timeout=900)
    return result, out


def test_summary_json_has_the_promised_keys(evaluated):
    result, _ = evaluated
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert SUMMARY_KEYS <= set(summary) and summary["questions"] >= 60
    assert all(0 <= summary[k] <= 100 for k in SUMMARY_KEYS if not k.startswith("latency"))
    rows = summary["at_other_thresholds"]
    recalls = [row["abstention_recall"] for row in rows]
    assert [row["threshold"] for row in rows] == sorted(row["threshold"] for row in rows) and recalls == sorted(recalls)


def test_the_change_against_a_baseline_is_each_measure_less_the_baselines(evaluated):
    result, _ = evaluated
    summary = json.loads(result.stdout)
    against = {row["key"]: row for row in summary["against_baseline"]["measures"]}
    assert against["f1"]["baseline"] == 0.0 and against["f1"]["now"] == against["f1"]["change"] == summary["f1"]
    assert against["abstention_recall"]["change"] == round(summary["abstention_recall"] - 100.0, 1)
    low, high = against["f1"]["interval"]
    assert 0 < low <= summary["f1"] <= high  # declining everything is beyond doubt worse
    answered = summary["questions"] - round(summary["unanswerable"] * summary["abstention_recall"] / 100) \
        - round(summary["answerable"] * summary["false_abstention_rate"] / 100)
    changed = summary["against_baseline"]["changed"]
    assert len(changed) == answered and all(c["baseline"] is None and c["now"] for c in changed)


def test_predictions_follow_the_ask_contract(evaluated):
    _, out = evaluated
    rows = [json.loads(line) for line in (out / "predictions.jsonl").read_text(encoding="utf-8").splitlines()]
    gold = [json.loads(line) for line in (ROOT / "eval" / "gold.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [r["question"] for r in rows] == [" ".join(g["question"].split()) for g in gold]
    for row in rows:
        assert_contract(row)


def test_report_lists_every_question_and_draws_calibration(evaluated):
    _, out = evaluated
    report = (out / "report" / "report.md").read_text(encoding="utf-8")
    gold_ids = [json.loads(line)["id"] for line in (ROOT / "eval" / "gold.jsonl").read_text().splitlines()]
    assert all(f"| {i} |" in report for i in gold_ids)
    assert "| F1 |" in report and "✗" in report and "report.calibration.png" in report
    assert "## Had rag declined under another threshold" in report and "| 0.5 |" in report
    assert (out / "report" / "report.calibration.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_gates_fail_below_the_bar(evaluated):
    result, out = evaluated
    f1 = json.loads(result.stdout)["f1"]
    gated = run_rag("eval", "--min-f1", str(f1 + 0.1), "--index-dir", str(out / "index"), timeout=900)
    assert gated.returncode == 1 and "Traceback" not in gated.stderr
    said = gated.stderr.split("below the bar: F1 ")[1].split()  # the unrounded F1, then "<", then the bar
    assert round(float(said[0]), 1) == f1 and said[1:3] == ["<", f"{f1 + 0.1:g}"]


def tiny_squad_file(tmp_path, questions: int = 6) -> Path:
    """The first paragraph of the held-out file with its first questions."""
    held_out = ROOT.parent / "shared" / "squad" / "heldout-dev.json"
    if not held_out.is_file():
        pytest.skip(f"{held_out} is not here (it comes with ../shared)")
    source = json.loads(held_out.read_text(encoding="utf-8"))
    paragraph = source["data"][0]["paragraphs"][0]
    tiny = {"data": [{"title": "t", "paragraphs": [dict(paragraph, qas=paragraph["qas"][:questions])]}]}
    path = tmp_path / "tiny.json"
    path.write_text(json.dumps(tiny), encoding="utf-8")
    return path


def test_squad_mode_scores_the_reader_alone(tmp_path):
    path = tiny_squad_file(tmp_path)
    result = run_rag("eval", "--squad", str(path), "--json")
    assert result.returncode == 0, result.stderr
    scores = json.loads(result.stdout)
    assert {"abstention model", "null margin 0"} <= set(scores)
    assert scores["null margin 0"]["questions"] == 6 and 0 <= scores["null margin 0"]["f1"] <= 100
    opened = run_rag("eval", "--squad", str(path), "--open", "--json")
    assert opened.returncode == 0, opened.stderr
    assert json.loads(opened.stdout)["open (retrieve, then read)"]["retrieval_recall_at_k"] == 100.0


def test_open_squad_mode_keeps_out_of_the_archive_models_toml_names(tmp_path):
    """The held-out paragraphs are indexed to be searched, in a throwaway index: never in the
    team's Milvus archive, which they would join for good (and which would be searched instead)."""
    path = tiny_squad_file(tmp_path, questions=2)
    archive = tmp_path / "team.db"
    models = models_file_elsewhere(tmp_path, lambda text: f'{text}\n[retrieval]\nvector_store = "milvus:{archive}"\n')
    opened = run_rag("eval", "--squad", str(path), "--open", "--json", "--models", str(models))
    assert opened.returncode == 0, opened.stderr
    assert json.loads(opened.stdout)["open (retrieve, then read)"]["retrieval_recall_at_k"] == 100.0
    assert not archive.exists() and "archive" not in opened.stderr


def test_squad_mode_warns_of_a_decision_fitted_for_another_reader(tmp_path):
    path = tiny_squad_file(tmp_path, questions=1)
    models = models_file_elsewhere(tmp_path, fitted_for_another_reader)
    result = run_rag("eval", "--squad", str(path), "--json", "--models", str(models))
    assert result.returncode == 0 and "fitted for another reader (0123456789abcdef" in result.stderr


def test_a_bare_article_name_keeps_every_copy_of_it_out_of_training(tmp_path):
    from rag.squad import load_squad

    def article(title, question, context="Oxygen is a gas."):
        return {"title": title, "paragraphs": [{"context": context, "qas": [
            {"id": title, "question": question, "answers": [{"text": "a gas", "answer_start": 10}], "is_impossible": False}]}]}

    path = tmp_path / "squad.json"
    path.write_text(json.dumps({"data": [
        article("squad20-dev:Oxygen", "What is oxygen?"), article("addsent:Oxygen", "Oxygen?", "Oxygen is a gas. Neon is red."),
        article("Oxygen", "What is it?"), article("Oxygenation", "What?", "Oxygenation is a process.")]}))
    data = load_squad(path)
    assert [q.id for q in data.without_articles({"Oxygen"}).questions] == ["Oxygenation"]
    # a prefixed name drops that copy, and the paragraphs another copy holds word for word
    assert [q.id for q in data.without_articles({"squad20-dev:Oxygen"}).questions] == ["addsent:Oxygen", "Oxygenation"]
