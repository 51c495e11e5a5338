"""The evidence the decision weighs besides the reader's scores (rag.evidence), in milliseconds."""
import pytest

from rag.decision import FEATURES, Abstention
from rag.evidence import (Evidence, agreement, asked_names, corroboration, fit_to_question, question_overlap,
                          repeats_question, type_match, unmentioned)


@pytest.mark.parametrize("question, answer, expected", [
    ("How many fighters does Massoud have?", "thousands", -1.0),
    ("How many fighters does Massoud have?", "6,000", 1.0),
    ("How far is Panjshir from Kabul?", "150 kilometers", 1.0),
    ("When did the Taliban take Kabul?", "15 August", 1.0),
    ("When did the Taliban take Kabul?", "the Taliban", -1.0),
    ("Who leads the resistance?", "Ahmad Massoud", 1.0),
    ("Who leads the resistance?", "peaceful negotiations", -1.0),
    ("What does the NRF want?", "peaceful negotiations", 0.0),
])
def test_the_answer_type_is_checked_against_the_question_word(question, answer, expected):
    assert type_match(question, answer) == expected


def test_overlap_and_repetition_count_content_words_only():
    assert question_overlap("Who leads the resistance in Panjshir?", "The resistance in Panjshir is led by Massoud.") == pytest.approx(2 / 3)
    assert repeats_question("Who leads the resistance in Panjshir?", "the Panjshir resistance") == 1.0
    assert repeats_question("Who leads the resistance in Panjshir?", "Ahmad Massoud") == 0.0


@pytest.mark.parametrize("question, names", [
    ("Who is the mayor of Manchester?", ["Manchester"]),
    ("Who won the regional election in 2019?", ["2019"]),
    ("Did the U.S. pledge 2.5 million?", ["U.S.", "2.5"]),  # as the question writes them
    ("When did Ahmad Massoud's op-ed appear in The Washington Post?", ["Ahmad", "Massoud's", "Washington", "Post"]),
    ("Manchester: who is its mayor?", []),  # a question's first word is capitalised whatever it is
    ("who is the mayor of manchester?", []),  # written in lower case, it names nothing to look for
    ("WHO IS THE MAYOR OF MANCHESTER IN 2019?", ["2019"]),  # nor in capitals: but its numbers
    ("Manchester's mayor is who?", []),  # a first word is a name only as an abbreviation: "Today's" is none
    ("NATO troops left when?", ["NATO"]),
    ("What did WHO officials and the IT department warn of?", ["WHO", "IT"]),  # an abbreviation that is also a word
])
def test_a_questions_names_are_its_capitalised_words_and_its_numbers(question, names):
    assert asked_names(question) == names


def test_a_name_is_mentioned_in_any_case_accent_or_form_of_the_same_word():
    article = "The Afghanistan-based TAJIK community of Bogotá met the U.S. envoy; Massoud spoke.It pledged 2.5 million."
    assert unmentioned(["Afghan", "Tajiks", "Bogota", "Massoud's", "US", "U.S.", "2.5", "pledged"], article) == []
    assert unmentioned(["Manchester", "UN", "2019"], article) == ["Manchester", "UN", "2019"]  # "UN" only as it is


def test_an_abbreviation_is_mentioned_only_by_a_capitalised_word():
    """"What did the U.S. pledge?" passed as mentioned by an article saying "they told us": "us" is "U.S." undotted."""
    assert unmentioned(["U.S.", "WHO", "IT"], "They told us who bought it.") == ["U.S.", "WHO", "IT"]
    assert unmentioned(["U.S.", "NATO", "IT"], "The US joined Nato's IT project.") == []
    assert unmentioned(["US", "UN"], "Us doctors are tired, said Un Lee.") == ["US", "UN"]  # a short one only in capitals


def test_a_number_is_mentioned_only_as_it_is_and_a_name_only_in_its_own_other_forms():
    """A new user's cases: "1,500" was read as "1" and "500", "25" passed for "2.5", and Niger for Nigeria."""
    assert asked_names("How many people did the quake in Turkey kill, 1,500?") == ["Turkey", "1,500"]
    assert unmentioned(["1,500"], "The quake killed 500 people.") == ["1,500"]
    assert unmentioned(["1,500", "2.5"], "The quake killed 1500 people and cost 2.5 billion.") == []
    assert unmentioned(["25", "2030"], "It costs 2.5 billion by 2031.") == ["25", "2030"]
    assert unmentioned(["Niger", "India", "Europe", "Pakistani"], "Nigeria, Indiana, the European Union, Pakistan") == \
        ["Niger", "India"]


def test_an_articles_title_and_date_mention_names_too():
    """A .jsonl record titled "Glasgow subway strike", dated 2023-06-01, never names Glasgow in its text."""
    from rag.pipeline import heading_of
    from rag.schema import Document

    record = Document("feed.jsonl#x", "feed.jsonl", "Drivers walked out on Monday.", "2023-06-01", 0,
                      title="Glasgow subway strike")
    assert unmentioned(["Glasgow", "June", "2023", "May"], record.text, heading_of(record)) == ["May"]
    # asked "… on 1 June?": it said "check it: the cited article never mentions “1”"
    assert unmentioned(["1", "June", "3"], record.text, heading_of(record)) == ["3"]


def test_the_share_of_the_questions_names_its_article_never_mentions_is_evidence():
    leeds = "The mayor of Leeds is Jane Doe. She was elected in 2022."
    assert fit_to_question("Who is the mayor of Leeds?", "Jane Doe", leeds, leeds)["unmentioned_names"] == 0.0
    assert fit_to_question("Who is the mayor of Manchester?", "Jane Doe", leeds, leeds)["unmentioned_names"] == 1.0
    assert fit_to_question("Who won in Leeds in 2019?", "Jane Doe", leeds, leeds)["unmentioned_names"] == 0.5
    assert fit_to_question("who is the mayor?", "Jane Doe", leeds, leeds)["unmentioned_names"] == 0.0  # no name asked


def test_agreement_counts_other_articles_and_passages_that_hold_the_same_answer():
    texts = [["Ahmad Massoud", "Kabul"], ["Massoud", "Saleh"], ["the Taliban", "Ahmad Massoud"], ["Ahmad Massoud"]]
    docs = ["a", "a", "b", "c"]
    margins = [[3.0, 1.0], [2.0, 1.0], [4.0, 0.5], [-1.0]]  # the last passage thinks "no answer" likelier
    articles, passages = zip(*agreement(texts, docs, margins))
    # passage 0: "Massoud" in passage 1 agrees (same article: a passage, not an article), so does a
    # runner-up of article b; article c's span scores below its "no answer"
    assert articles[0] == 1 and passages[0] == 2
    assert articles[2] == 0 and passages[2] == 0  # nobody else says "the Taliban"


def test_corroboration_counts_other_articles_saying_the_same_where_both_beat_no_answer_in_sentences_fitting_the_question():
    texts = ["Ahmad Massoud", "Massoud", "Ahmad Massoud", "Ahmad Massoud", "Ahmad Massoud", "Amrullah Saleh",
             "Ahmad Massoud, 32,"]
    docs = ["a", "b", "a", "c", "d", "e", "f"]
    margins = [3.0, 2.0, 4.0, -1.0, 5.0, 6.0, 1.0]  # article c's span scores below its "no answer"
    overlaps = [1.0, 0.7, 1.0, 1.0, 0.5, 1.0, 0.8]  # article d's sentence is about something else
    counts = corroboration(texts, docs, margins, overlaps)
    # only f: a is its own article, c says "no answer", d's sentence does not fit, and b's bare
    # "Massoud" does not say which Massoud
    assert counts[0] == 1
    assert counts[1] == 2  # articles a (counted once though two of its passages say it) and f say all of "Massoud"
    assert counts[3] == 0  # the reader rejects it, so it may not borrow the others' evidence
    assert counts[4] == 0  # its own sentence does not fit, so it may not either
    assert counts[5] == 0  # nobody else says "Amrullah Saleh"
    assert counts[6] == 0  # "Ahmad Massoud" does not say his age
    many = corroboration(["Kabul"] * 6, list("abcdef"), [1.0] * 6, [1.0] * 6)
    assert many == [3] * 6  # capped: more articles than MAX_AGREEING is not more evidence


def test_an_article_saying_it_in_the_same_sentence_word_for_word_is_no_second_source():
    said = "The bridge will reopen on April 1, the city said."
    sentences = [said, "  the bridge will  reopen on April 1, the city said.", "Officials expect it to reopen April 1."]
    counts = corroboration(["April 1"] * 3, ["paper", "copy", "other"], [2.0] * 3, [1.0] * 3, sentences)
    assert counts == [1, 1, 2]  # paper and copy are one report: each has only "other" beside it


def test_every_evidence_field_has_a_weight_and_unweighted_ones_count_nothing():
    from dataclasses import fields

    assert set(FEATURES) == {f.name for f in fields(Evidence)} and set(FEATURES) <= {f.name for f in fields(Abstention)}
    decision = Abstention(bias=0.0, margin=1.0)
    plain = Evidence(margin=2.0, span_score=5.0, dense_score=0.5)
    assert decision.confidence(plain) == decision.confidence(Evidence(2.0, 5.0, 0.5, agreeing_articles=3, type_match=-1))
    assert Abstention(agreeing_articles=1.0).confidence(Evidence(0, 0, 0, agreeing_articles=2)) > Abstention(agreeing_articles=1.0).confidence(plain.__class__(0, 0, 0))


def test_a_score_that_is_no_number_never_makes_a_confident_answer():
    nan = float("nan")
    decision = Abstention(bias=0.0, margin=1.0, dense_score=1.0, threshold=0.5)
    assert decision.confidence(Evidence(margin=nan, span_score=5.0, dense_score=0.5)) == 0.0
    assert decision.confidence(Evidence(margin=2.0, span_score=5.0, dense_score=nan)) == 0.0
