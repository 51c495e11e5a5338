"""`rag eval --squad` scores as the official SQuAD v2 script does, so its figures compare with
published ones; the gold set keeps news text's own normalisation (fast tier: no model)."""
from rag.metrics import exact_match, f1_score
from rag.squad import SquadQuestion, score


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
