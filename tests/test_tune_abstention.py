"""eval/tune_abstention.py: a question asked with its answer withheld must really have no passage
that states the answer, and still get its top-k passages; the threshold is the middle of the best;
each pool fits on the questions it names; evidence fitted second leaves the first fit as it was."""
import json
import sys
from types import SimpleNamespace

import pytest

from rag.gold import GoldQuestion
from rag.schema import Passage
from tests.conftest import ROOT

sys.path.insert(0, str(ROOT / "eval"))
from rag.decision import FEATURES  # noqa: E402
from rag.evidence import Evidence  # noqa: E402
import tune_abstention  # noqa: E402
from tune_abstention import (CalibrationQuestion, WithholdingRetriever, best_threshold, feature_names,  # noqa: E402
                             fit_weights, holds_the_answer)

ITEM = CalibrationQuestion(GoldQuestion("q", "Which range?", ["Hindu Kush"], ["a"]), (100, 200))


@pytest.mark.parametrize("passage, withheld", [
    (Passage("a", 150, 400, "x"), True),            # overlaps the question's paragraph
    (Passage("a", 0, 100, "x"), False),             # ends where the paragraph starts
    (Passage("b", 150, 400, "x"), False),           # another article, same offsets
    (Passage("b", 0, 50, "the hindu  kush peaks"), True),  # states an answer elsewhere (normalized)
    (Passage("b", 0, 50, "the Hindu Kushans"), False),      # only whole words count
])
def test_what_is_withheld(passage, withheld):
    assert holds_the_answer(ITEM, passage) is withheld


def test_an_answer_that_normalizes_to_nothing_withholds_nothing():
    item = CalibrationQuestion(GoldQuestion("q", "Which?", ["The"], ["a"]), (100, 200))
    assert not holds_the_answer(item, Passage("b", 0, 50, "the valley"))


@pytest.mark.integration
def test_withheld_passages_never_reach_the_reader_and_top_k_still_does(pipeline):
    question = "Which mountain range acts as a natural defense for the valley?"
    assert any("Hindu Kush" in r.passage.text for r in pipeline.retriever.retrieve(question, 5))
    withholding = WithholdingRetriever(pipeline.retriever)
    withholding.withheld = lambda passage: "Hindu Kush" in passage.text
    found = withholding.retrieve(question, 5)
    assert len(found) == 5 and not any("Hindu Kush" in r.passage.text for r in found)
    assert withholding.passage_count == pipeline.retriever.passage_count


def test_the_threshold_is_the_middle_of_the_plateau_that_answers_the_answerable_and_declines_the_rest():
    def asked(answers, margin):
        candidate = SimpleNamespace(text="Hindu Kush", evidence=Evidence(margin=margin, span_score=0.0, dense_score=0.0))
        return GoldQuestion("q", "Which range?", answers, []), [candidate]

    runs = [asked(["Hindu Kush"], 2.0), asked([], -2.0)]  # P(right) 0.88 and 0.12 under weight 1 on the margin
    weights = [0.0] + [1.0 if name == "margin" else 0.0 for name in FEATURES]
    threshold, utility = best_threshold(weights, runs)
    assert utility == 1.0 and 0.45 <= threshold <= 0.55


@pytest.mark.parametrize("pool, expected", [("both", ["withheld", "tune"]), ("calibration", ["withheld"]), ("tune", ["tune"])])
def test_which_questions_each_pool_fits_on(monkeypatch, tmp_path, pool, expected):
    bundled = SimpleNamespace(ask=lambda question: SimpleNamespace(candidates=[]),
                              retriever=SimpleNamespace(embedder=None), reader=None)
    monkeypatch.setattr(tune_abstention, "build_pipeline", lambda *args, **kwargs: bundled)
    monkeypatch.setattr(tune_abstention.tempfile, "mkdtemp", lambda prefix: str(tmp_path))  # no leftover in /tmp
    monkeypatch.setattr(tune_abstention, "load_gold", lambda path: [GoldQuestion("tune", "Which range?", [], [])])
    monkeypatch.setattr(tune_abstention, "calibration_pool", lambda folder: [ITEM])
    monkeypatch.setattr(tune_abstention, "ask_calibration",
                        lambda pipeline, pool: [(GoldQuestion("withheld", "Which range?", [], []), [])])
    args = SimpleNamespace(pool=pool, seeds=tmp_path, tune=tmp_path / "tune.jsonl")
    runs, check, _ = tune_abstention.ask_pool(args, config=None)
    assert [q.id for q, _ in runs] == expected and [q.id for q, _ in check] == ["tune"]


def test_the_gold_sets_questions_are_refused_as_questions_to_fit_on(tmp_path):
    one = tmp_path / "questions.jsonl"  # one gold question, under another name and id
    gold_line = json.loads((ROOT / "eval" / "gold.jsonl").read_text(encoding="utf-8").splitlines()[0])
    one.write_text(json.dumps(dict(gold_line, id="mine")) + "\n", encoding="utf-8")
    for tune, shared in ((ROOT / "eval" / "gold.jsonl", 64), (one, 1)):
        with pytest.raises(SystemExit, match=f"shares {shared} questions with the gold set, which is kept for measuring"):
            tune_abstention.refuse_the_gold_set(tune)
    tune_abstention.refuse_the_gold_set(ROOT / "eval" / "tune.jsonl")  # the file it fits on


def test_the_calibration_pool_needs_train_full(monkeypatch, tmp_path):
    monkeypatch.setattr(tune_abstention, "TRAIN_FULL", tmp_path / "train-full.json")
    with pytest.raises(SystemExit, match="train-full.json is missing"):
        tune_abstention.calibration_pool(tmp_path)


def test_evidence_fitted_second_gets_its_weight_without_moving_the_first_fit():
    def asked(right, margin, corroborated=0.0):
        evidence = Evidence(margin=margin, span_score=0.0, dense_score=0.0, corroborating_articles=corroborated)
        return GoldQuestion("q", "Which range?", ["Hindu Kush"] if right else [], []), [SimpleNamespace(text="Hindu Kush", evidence=evidence)]

    # the margin mostly tells right from wrong; the few corroborated answers are right despite low margins
    runs = [asked(m > 0, m) for m in (-3, -2, -1, -0.5, 0.5, 1, 2, 3) * 5] + [asked(True, -1.0, 1.0)] * 4
    weight = dict(zip(("bias", *FEATURES), fit_weights(runs, ("margin",))))
    both = dict(zip(("bias", *FEATURES), fit_weights(runs, ("margin",), ("corroborating_articles",))))
    assert both["corroborating_articles"] > 1.0 and weight["corroborating_articles"] == 0.0
    assert (both["bias"], both["margin"]) == (weight["bias"], weight["margin"])
    assert all(both[name] == 0.0 for name in FEATURES if name not in ("margin", "corroborating_articles"))
    never = [(q, [SimpleNamespace(text=c.text, evidence=Evidence(c.evidence.margin, 0.0, 0.0))]) for q, (c,) in runs]
    with pytest.raises(SystemExit, match="corroborating_articles is 0 for every candidate"):
        fit_weights(never, ("margin",), ("corroborating_articles",))  # e.g. a --runs file from before the feature


@pytest.mark.parametrize("option, expected", [
    (None, ("margin",)), ("", ()), ("span_score, dense_score", ("span_score", "dense_score")),
    ("span_score,nonsense", "unknown features"), ("margin,margin", "named twice"),
])
def test_which_features_an_option_names(option, expected):
    if isinstance(expected, tuple):
        assert feature_names(option, default=("margin",)) == expected
    else:
        with pytest.raises(SystemExit, match=expected):
            feature_names(option, default=("margin",))


def test_kept_runs_are_reused_only_when_asked_the_same_way(monkeypatch, tmp_path):
    from rag.config import load_models_config

    asked = []
    monkeypatch.setattr(tune_abstention, "ask_pool", lambda args, config: asked.append(args.pool) or (["run"], ["check"], "pool"))
    config = load_models_config(ROOT / "models.toml")
    args = SimpleNamespace(pool="both", tune=ROOT / "eval" / "tune.jsonl", seeds=ROOT / "seeds", runs=tmp_path / "runs.pkl")
    assert tune_abstention.asked_runs(args, config) == (["run"], ["check"], "pool")
    assert tune_abstention.asked_runs(args, config) == (["run"], ["check"], "pool") and asked == ["both"]
    with pytest.raises(SystemExit, match="asked with another pool"):
        tune_abstention.asked_runs(SimpleNamespace(**{**vars(args), "pool": "tune"}), config)
    other_reader = SimpleNamespace(reader=SimpleNamespace(fingerprint=lambda: "another", settings=config.reader.settings),
                                   embedder=config.embedder, retrieval=config.retrieval, chunking=config.chunking)
    with pytest.raises(SystemExit, match="asked with another reader"):
        tune_abstention.asked_runs(args, other_reader)
    monkeypatch.setattr(tune_abstention, "EVIDENCE_RULES", tune_abstention.EVIDENCE_RULES + 1)
    with pytest.raises(SystemExit, match="asked with another version of the rules"):  # the candidates' evidence was computed otherwise
        tune_abstention.asked_runs(args, config)


def test_weights_are_taken_by_name_and_a_list_of_another_length_is_refused():
    from rag.decision import Abstention

    weights = [-1.0, *range(len(FEATURES))]
    decision = Abstention.from_weights(weights, 0.4)
    assert decision.bias == -1.0 and [getattr(decision, name) for name in FEATURES] == list(range(len(FEATURES)))
    with pytest.raises(ValueError, match="weights for"):
        Abstention.from_weights(weights[:-1], 0.4)  # zip() dropped the last name's weight silently
