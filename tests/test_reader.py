import pytest
from rag.corpus import load_corpus
from rag.schema import Passage
from tests.conftest import SEEDS

pytestmark = pytest.mark.integration  # real models


def whole_article_passage(doc_id: str) -> tuple[str, Passage]:
    doc = load_corpus(SEEDS).documents[doc_id]
    return doc.text, Passage(doc_id, doc.body_start, len(doc.text), doc.text[doc.body_start:])


def test_a_long_passage_is_read_in_strided_windows(pipeline):
    """Article 004 is ~1,100 tokens: the answer near its end is only in a later window."""
    text, passage = whole_article_passage("004_5381029668afd7ea")
    reader = pipeline.reader
    assert len(reader.windows("Who is the Taliban spokesman?", [passage])) >= 3
    (guess,) = reader.read("Who is the Taliban spokesman?", [passage])
    assert text[guess.start:guess.end] == "Zabihullah Mujahid"


def test_one_guess_per_passage_with_offsets_into_the_article(pipeline):
    text, passage = whole_article_passage("000_882549ac45e52293")
    _, other = whole_article_passage("001_fb70659820c0e01f")
    guesses = pipeline.reader.read("What does Panjshir mean?", [passage, other])
    assert [g.passage_index for g in guesses] == [0, 1]
    assert text[guesses[0].start:guesses[0].end] == "five lions"
    assert all(g.end - g.start > 0 for g in guesses)


def test_no_answer_comes_from_what_is_closed_to_it(pipeline):
    """A date line under a headline (corpus.date_lines_in) was the answer to "when?" at 0.84."""
    text = "Old Mill bridge repairs delayed\nDate: 2024-05-06\n\nThe Old Mill bridge will stay closed for another two months."
    passage = Passage("bridge", 0, len(text), text)
    question = "When was the Old Mill bridge article dated?"
    (open_,) = pipeline.reader.read(question, [passage])
    assert "2024" in text[open_.start:open_.end]  # the reader's own pick, open to it
    date_line = (text.index("Date:"), text.index("\n\n"))
    (guess,) = pipeline.reader.read(question, [passage], closed=[[date_line]])
    spans = [(guess.start, guess.end), *[(start, end) for start, end, _ in guess.runners_up]]
    assert all(end <= date_line[0] or start >= date_line[1] for start, end in spans)


def test_a_very_long_question_is_clipped_not_fatal(pipeline):
    _, passage = whole_article_passage("000_882549ac45e52293")
    (guess,) = pipeline.reader.read("What does Panjshir mean? " * 60, [passage])
    assert guess.end > guess.start


def test_a_window_longer_than_the_reader_takes_is_refused_as_it_loads(models):
    """The model has 512 positions: a longer window would crash it at the first long passage."""
    import dataclasses

    from rag.errors import RagError
    from rag.reader import Reader

    too_long = dataclasses.replace(models.reader, settings=dataclasses.replace(models.reader.settings, max_seq_len=1024))
    with pytest.raises(RagError, match=r"max_seq_len = 1024 is past what the reader at .* takes \(512 tokens\)"):
        Reader(too_long)


def test_an_answer_ending_in_an_accent_written_apart_keeps_its_accent(pipeline):
    """The tokenizer strips accents: "René" written as an e and U+0301 ended before the accent."""
    text = "The resistance in the valley is led by Jose\u0301, its founder."
    (guess,) = pipeline.reader.read("Who leads the resistance in the valley?", [Passage("a", 0, len(text), text)])
    assert text[guess.start:guess.end] == "Jose\u0301"  # not "Jose", half of the last letter


def test_no_span_runs_from_a_headline_into_the_body_or_past_a_list_item_but_one_may_cross_a_wrapped_line(pipeline):
    """Without the rule the reader's best span here was "Steve Kerr⏎⏎Stephen Douglas Kerr":
    an answer printed over three lines, and a cited sentence that began at the headline. A line
    wrapped inside a paragraph (a wire story at 72 columns) is no such break."""
    text = ("Steve Kerr\n\nStephen Douglas Kerr (born September 27, 1965) is an American professional basketball "
            "coach who is the head coach of the Golden State Warriors.")
    (guess,) = pipeline.reader.read("Who is head coach of the Golden State Warriors?", [Passage("a", 0, len(text), text)])
    assert "Kerr" in text[guess.start:guess.end]
    for start, end, _ in [(guess.start, guess.end, None), *guess.runners_up]:
        assert "\n" not in text[start:end]
    wrapped = "The resistance in the valley is led by Ahmad\nMassoud, the son of a commander."
    (guess,) = pipeline.reader.read("Who leads the resistance in the valley?", [Passage("a", 0, len(wrapped), wrapped)])
    assert wrapped[guess.start:guess.end] == "Ahmad\nMassoud"
    listed = ("The government announced two measures for the harvest:\n1. a freeze on grain export licences until "
              "December\n2. interest-free loans for farmers.")
    (guess,) = pipeline.reader.read("Until when are grain export licences frozen?", [Passage("a", 0, len(listed), listed)])
    assert listed[guess.start:guess.end] == "December"  # was "December⏎2", the next item's number run into it
