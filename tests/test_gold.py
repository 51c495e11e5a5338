"""The question files themselves: eval/gold.jsonl (measuring), eval/tune.jsonl (fitting the
abstention model) and tests/questions.jsonl (tests) must be valid and must not overlap."""
import re

import pytest

from rag.corpus import load_corpus
from rag.errors import RagError
from rag.evidence import content_words
from rag.gold import GoldQuestion, load_gold
from tests.conftest import ROOT, SEEDS

FILES = {"gold": ROOT / "eval" / "gold.jsonl", "tune": ROOT / "eval" / "tune.jsonl",
         "tests": ROOT / "tests" / "questions.jsonl"}


@pytest.fixture(scope="module")
def sets():
    return {name: load_gold(path) for name, path in FILES.items()}


@pytest.mark.parametrize("name", FILES)
def test_answers_occur_in_the_cited_articles(sets, name):
    documents = load_corpus(SEEDS).documents
    for q in sets[name]:
        assert q.question.strip() and (bool(q.answers) == bool(q.docs)), q.id
        for doc_id in q.docs:
            body = documents[doc_id].text[documents[doc_id].body_start:]
            assert any(a in body for a in q.answers), f"{q.id}: no answer in {doc_id}"
        for answer in q.answers:
            assert any(answer in documents[d].text[documents[d].body_start:] for d in q.docs), f"{q.id}: {answer!r}"


def test_the_gold_set_has_the_promised_shape(sets):
    gold = sets["gold"]
    answerable = [q for q in gold if q.answerable]
    assert len(gold) >= 60 and len(answerable) >= 40 and len(gold) - len(answerable) >= 10
    assert sum(q.paraphrased for q in answerable) >= 10
    assert sum(len(q.docs) > 1 for q in answerable) >= 3 and any(q.conflict for q in gold)
    assert {d for q in answerable for d in q.docs} == set(load_corpus(SEEDS).documents)


def test_ids_are_unique_and_sets_do_not_share_questions(sets):
    ids = [q.id for qs in sets.values() for q in qs]
    assert len(ids) == len(set(ids))
    texts = [" ".join(q.question.lower().split()) for qs in sets.values() for q in qs]
    assert len(texts) == len(set(texts))


def test_no_tune_question_asks_what_a_gold_question_asks(sets):
    """Fitting on a near-copy of a gold question would be fitting on the gold set."""
    def asked_words(question: str) -> set[str]:  # "the Taliban's leader" asks what "the leader of the Taliban" asks
        return content_words(re.sub(r"['’]s\b", "", question))

    gold_words = {gold.id: asked_words(gold.question) for gold in sets["gold"]}
    for tune in sets["tune"]:
        asked = asked_words(tune.question)
        for gold_id, words in gold_words.items():
            assert len(asked & words) / len(asked | words) <= 0.5, f"{tune.id} is close to {gold_id}"


def test_a_broken_gold_file_is_a_clear_error(tmp_path):
    path = tmp_path / "gold.jsonl"
    path.write_text('{"id": "a", "question": "q", "answers": []}\n{"id": "a", "question": "r", "answers": []}\n', encoding="utf-8")
    with pytest.raises(RagError, match="duplicate id 'a'"):
        load_gold(path)
    path.write_text('{"id": "a"\n', encoding="utf-8")
    with pytest.raises(RagError, match="gold.jsonl:1: not a gold question"):
        load_gold(path)
    path.write_bytes(b'{"id": "caf\xe9"}\n')
    with pytest.raises(RagError, match="gold.jsonl is not UTF-8 text, so not a gold file"):
        load_gold(path)
    with pytest.raises(RagError, match=r"^cannot read the gold file \S+nope.jsonl: No such file or directory$"):
        load_gold(tmp_path / "nope.jsonl")


@pytest.mark.parametrize("row, says", [
    ('"question": "Who?", "answers": "Ahmad Massoud"', '"answers" must be a list of strings'),  # not 13 one-letter answers
    ('"question": "Who?", "answers": [1996]', '"answers" must be a list of strings'),
    ('"question": "Who?", "answers": ["the"]', "the answer 'the' has no words to score"),
    ('"question": null, "answers": []', '"question" must be a string'),  # not the question "None"
    ('"question": "???", "answers": []', "the question has no words"),  # rag ask would refuse it mid-run
    ('"question": "  ", "answers": []', "the question is empty"),
    (f'"question": "{"why " * 200}", "answers": []', "the question is too long"),
    ('"question": "Who?", "answer": ["Powell"]', "unknown key 'answer'; a gold question has answers, conflict"),  # not unanswerable
    ('"question": "Who?"', 'no "answers" (the answers as the articles write them; [] for a question they do not answer)'),
    ('"answers": []', 'no "question"'),
    ('"question": "Who?", "answers": [], "paraphrased": "no"', '"paraphrased" must be true or false, not "no"'),
])
def test_a_row_that_could_not_be_asked_or_scored_is_refused_with_its_line(tmp_path, row, says):
    gold = tmp_path / "gold.jsonl"
    gold.write_text('{"id": "a", "question": "Who?", "answers": ["x"]}\n'
                    f'{{"id": "b", {row}}}\n', encoding="utf-8")
    with pytest.raises(RagError, match=f"gold.jsonl:2: not a gold question .*{re.escape(says)}"):
        load_gold(gold)


@pytest.mark.parametrize("line, says", [
    ('["b", "Who?"]', 'a line is one JSON object'),
    ('42', 'a line is one JSON object'),
    ('{"id": null, "question": "Who?", "answers": []}', '"id" must be a non-empty string or a whole number, not null'),
    ('{"id": " ", "question": "Who?", "answers": []}', '"id" must be a non-empty string or a whole number'),
    ('{"id": 1.5, "question": "Who?", "answers": []}', '"id" must be a non-empty string or a whole number, not 1.5'),
    ('{"question": "Who?", "answers": []}', 'no "id"'),
])
def test_a_line_that_is_no_question_says_what_a_line_must_be(tmp_path, line, says):
    gold = tmp_path / "gold.jsonl"
    gold.write_text(f'{{"id": "a", "question": "Who?", "answers": ["x"]}}\n{line}\n', encoding="utf-8")
    with pytest.raises(RagError, match=f"gold.jsonl:2: not a gold question .*{re.escape(says)}"):
        load_gold(gold)


def test_a_question_whose_answer_its_articles_do_not_hold_is_named():
    from rag.evaluate import answers_not_stated

    documents = load_corpus(SEEDS).documents
    questions = [GoldQuestion("held", "What does Panjshir mean?", ["five lions"], ["000_882549ac45e52293"]),
                 GoldQuestion("typo", "What does Panjshir mean?", ["five loins"], ["000_882549ac45e52293"]),
                 GoldQuestion("case", "What does Panjshir mean?", ["Five Lions"], ["000_882549ac45e52293"]),  # scored alike
                 GoldQuestion("none", "Who won?", [], [])]
    assert answers_not_stated(documents, questions) == ["typo"]


def test_under_a_date_filter_a_question_only_articles_outside_it_answer_is_named():
    from rag.dates import DateRange
    from rag.evaluate import answered_only_outside

    documents = load_corpus(SEEDS).documents  # 000 and 003 are dated 2021-08-24, 002 and 004 the 25th, 001 not
    questions = [GoldQuestion("early", "Q?", ["x"], ["000_882549ac45e52293"]),
                 GoldQuestion("undated", "Q?", ["x"], ["001_fb70659820c0e01f"]),
                 GoldQuestion("both", "Q?", ["x"], ["000_882549ac45e52293", "002_517ffae1740f5ca3"]),
                 GoldQuestion("late", "Q?", ["x"], ["004_5381029668afd7ea"]),
                 GoldQuestion("no docs", "Q?", ["x"], []),
                 GoldQuestion("unanswerable", "Q?", [], ["000_882549ac45e52293"])]
    assert answered_only_outside(documents, questions, DateRange("2021-08-25", None)) == ["early", "undated"]
    assert answered_only_outside(documents, questions, DateRange(None, "2021-08-24")) == ["undated", "late"]


def test_a_question_is_kept_as_the_pipeline_asks_it(tmp_path):
    gold = tmp_path / "gold.jsonl"
    gold.write_text('{"id": "a", "question": "Who  leads\\u200b the NRF?", "answers": []}\n', encoding="utf-8")
    assert load_gold(gold)[0].question == "Who leads the NRF?"
