import textwrap
from pathlib import Path

import pytest

from rag.corpus import ChunkSettings, chunk_corpus, chunk_document, load_corpus, read_documents, sentence_around, sentence_spans
from rag.errors import RagError
from rag.schema import Document, Passage
from tests.conftest import SEEDS, read_source


def test_doc_ids_are_file_stems_and_dates_are_metadata():
    corpus = load_corpus(SEEDS)
    assert sorted(corpus.documents) == sorted(p.stem for p in SEEDS.glob("*.txt"))
    dated = corpus.documents["000_882549ac45e52293"]
    assert dated.date == "2021-08-24"
    assert dated.text == read_source("000_882549ac45e52293")  # offsets index the file as it is
    assert dated.text[dated.body_start:].startswith("After the Taliban")
    undated = corpus.documents["001_fb70659820c0e01f"]
    assert undated.date is None and undated.body_start == 0
    assert corpus.date_range == ("2021-08-24", "2021-08-25")


def test_sentences_lie_in_the_body_and_slice_the_file():
    for doc in load_corpus(SEEDS).documents.values():
        spans = sentence_spans(doc)
        assert spans and all(doc.body_start <= s < e <= len(doc.text) for s, e in spans)
        assert all(doc.text[s:e] == doc.text[s:e].strip() for s, e in spans)
        assert "date 20" not in doc.text[spans[0][0]:spans[0][1]]
    doc = load_corpus(SEEDS).documents["000_882549ac45e52293"]
    start = doc.text.index("five lions")
    s, e = sentence_around(doc, start, start + len("five lions"))
    assert doc.text[s:e].startswith("Home to the country’s largest ethnic Tajik population")
    assert doc.text[s:e].endswith("in the 1980s.")


@pytest.mark.parametrize("text, sentences", [
    ("Sen. Lindsey Graham spoke on Sept. 11 in Kabul. Gov. Andrew Cuomo did not.",
     ["Sen. Lindsey Graham spoke on Sept. 11 in Kabul.", "Gov. Andrew Cuomo did not."]),
    ("John F. Kennedy met J.K. Rowling at the U.S. Embassy. Martin Luther King Jr. Day followed.",
     ["John F. Kennedy met J.K. Rowling at the U.S. Embassy.", "Martin Luther King Jr. Day followed."]),
    ("Maj. Gen. Smith arrived on Aug. 15. He left. Shares of Acme Inc. The rest fell.",
     ["Maj. Gen. Smith arrived on Aug. 15.", "He left.", "Shares of Acme Inc.", "The rest fell."]),
    ("The civil rights leader W. E. B. Du Bois wrote it. T-cells bind vitamin D. Not only that.",
     ["The civil rights leader W. E. B. Du Bois wrote it.", "T-cells bind vitamin D.", "Not only that."]),
    ("It grew after World War I. Extensions followed.", ["It grew after World War I.", "Extensions followed."]),
    ("It opened in 2020.[1] Critics praised it.[2][3] It closed.",
     ["It opened in 2020.[1]", "Critics praised it.[2][3]", "It closed."]),
    ("He left.\nF. Scott Fitzgerald wrote it. He left.", ["He left.", "F. Scott Fitzgerald wrote it.", "He left."]),
    ("ST. LOUIS — Nexon said it. BOULDER, Colo. (AP) — A fire began at 2 p.m. Tuesday. It spread by 5 p.m. Crews came.",
     ["ST. LOUIS — Nexon said it.", "BOULDER, Colo. (AP) — A fire began at 2 p.m. Tuesday.", "It spread by 5 p.m.",
      "Crews came."]),
    ("“John F. Kennedy” spoke (John F. Kennedy). Then —John F. Kennedy, Dr. J. Robert Oppenheimer, Ángel F. Pérez.",
     ["“John F. Kennedy” spoke (John F. Kennedy).", "Then —John F. Kennedy, Dr. J. Robert Oppenheimer, Ángel F. Pérez."]),
])
def test_a_title_a_month_or_an_initial_ends_no_sentence(text, sentences):
    doc = Document("a", "a.txt", text, None, 0)
    assert [text[s:e] for s, e in sentence_spans(doc)] == sentences


STORY = ("KABUL (Reuters) - The resistance's head of foreign relations, Ali Nazary, told BBC Radio 4's Today "
         "programme they had thousands of forces ready for the resistance. He said the Taliban had not entered "
         "the valley, and that talks had stalled.")
STORY_SENTENCES = [STORY[:STORY.index(" He said")], STORY[STORY.index("He said"):]]
WRAPPED = textwrap.fill(STORY, 72)  # wire copy, as a wrapping tool leaves it: every sentence crosses a line break


@pytest.mark.parametrize("above", ["Taliban advance on Panjshir",  # a short headline
                                   "Taliban say they have taken Panjshir, the last holdout of the resistance",  # as wide
                                   "Taliban say they have taken the Panjshir valley, the last holdout of the armed resistance",
                                   "Taliban advance on Panjshir\nPublished: 2021-09-06", ""])
@pytest.mark.parametrize("last_mark", [".", ":"])  # a paragraph that introduces a list ends in a colon
def test_a_sentence_goes_on_across_the_wraps_of_a_hard_wrapped_paragraph(above, last_mark):
    """Wire copy wrapped at 72 columns: the cited sentence starts where its sentence starts, not
    at the line the answer is on; a headline (and a date line) right above the story, however
    wide, stays a line of its own."""
    wrapped = WRAPPED[:-1] + last_mark
    text = f"{above}\n{wrapped}\n" if above else wrapped
    doc = Document("a", "a.txt", text, None, 0)
    assert [text[s:e].replace("\n", " ") for s, e in sentence_spans(doc)] == [
        *[line for line in above.splitlines() if not line.startswith("Published:")],  # a date line is no sentence
        STORY_SENTENCES[0], STORY_SENTENCES[1][:-1] + last_mark]
    start = text.index("thousands")
    s, e = sentence_around(doc, start, start + len("thousands"))
    assert text[s:e].startswith("KABUL (Reuters)") and text[s:e].endswith("ready for the resistance.")


@pytest.mark.parametrize("line", ["Date: 2024-05-06", "Published: 2024-05-06 14:05 UTC", "date 2024-05-06", "2024-05-07",
                                  "Posted: 2024-05-08", "Date: 09/05/2024", "Date: May 6, 2024", "Updated: 2024-07-08",
                                  "Date: 2024-05-10 (updated 2024-05-11)", "Monday, 6 May 2024",
                                  "Published: 2024-05-06 | Updated: 2024-05-07"])
def test_a_line_that_only_dates_the_article_is_no_sentence_and_no_answer_comes_from_it(line):
    """Under a headline, "Date: 2024-05-06" stayed a sentence in the text: asked when the bridge
    reopens, the reader answered the article's own date at 0.84 (and "Posted: …", "May 6, 2024"…
    after the first fix)."""
    from rag.corpus import chunk_document, date_lines, date_lines_in
    from rag.config import ChunkSettings

    text = f"Old Mill bridge repairs delayed\n{line}\n\nThe bridge stays closed for two months. Dated 2024-05-06 is no date line.\n"
    doc = Document("bridge", "bridge.txt", text, "2024-05-06", 0)
    assert [text[s:e] for s, e in date_lines(doc)] == [line]
    assert line not in [text[s:e] for s, e in sentence_spans(doc)]
    (passage,) = chunk_document(doc, ChunkSettings())
    assert passage.text.startswith("Old Mill bridge") and passage.text.endswith("no date line.")  # the headline still read
    assert [passage.text[s:e] for s, e in date_lines_in(doc, passage)] == [line]


@pytest.mark.parametrize("text", [
    "Committee meets\n\nThe committee meets to decide on the bridge.\nDate: 2024-06-10\nPlace: Town Hall\n",  # the story's
    "Bridge delayed\nBy Jane Doe, May 6, 2024\n\nThe council met on 6 May 2024.\nMay 2024 was wet.\n",  # not only a date
])
def test_a_date_in_the_story_or_beside_other_words_stays_a_sentence(text):
    """Only the article's head is dated: a meeting's "Date: 2024-06-10" below the first sentence
    is what "When does the committee meet?" asks for."""
    from rag.corpus import date_lines

    doc = Document("y", "y.txt", text, None, 0)
    assert date_lines(doc) == () and len(sentence_spans(doc)) == len([line for line in text.splitlines() if line.strip()])


@pytest.mark.parametrize("block", [
    "Supplies listed by the aid group in the valley on Monday, as the road closed:\n- food and fuel for the winter\n"
    "- medicine for the displaced families in the valley",  # a list
    "PANJSHIR AT A GLANCE\nPopulation: about 173,000 people in seven districts\nArea: 3,610 square kilometres, "
    "north-east of Kabul\nCapital: Bazarak, a town on the Panjshir river",  # a fact box: no sentence ends it
    "Team                 W    L   Pts    Goals for\nKabul Lions         10    2    30        28.",  # a table
    "A headline with no full stop at all in it here\n" + "A paragraph written on one line, " * 8 + "ends.",
])
def test_lines_that_are_no_wrapped_prose_each_end_at_their_break(block):
    doc = Document("b", "b.txt", block, None, 0)
    assert [block[s:e] for s, e in sentence_spans(doc)] == block.split("\n")


def test_a_rule_or_a_subhead_inside_wrapped_text_stands_apart_and_a_rewrapped_edit_is_read_by_lines():
    rule, subhead = "-" * 72, "RESISTANCE VOWS TO FIGHT ON"
    text = f"{WRAPPED}\n{rule}\n{subhead}\n{WRAPPED}"
    spans = [text[s:e].replace("\n", " ") for s, e in sentence_spans(Document("c", "c.txt", text, None, 0))]
    assert spans == [*STORY_SENTENCES, subhead, *STORY_SENTENCES]  # the rule holds no words: no sentence
    edited = WRAPPED.replace("told BBC Radio 4's Today", "told the BBC", 1)  # a line shortened after wrapping:
    assert "told the BBC" in edited  # no one width explains its breaks any more
    spans = [edited[s:e] for s, e in sentence_spans(Document("d", "d.txt", edited, None, 0))]
    assert spans[0] == edited.split("\n")[0]


def test_passages_cover_every_sentence_with_overlap_and_bounded_size():
    settings = ChunkSettings(max_chars=400, overlap_sentences=1)
    corpus = load_corpus(SEEDS)
    for doc in corpus.documents.values():
        passages = chunk_document(doc, settings)
        assert all(p.text == doc.text[p.start:p.end] and p.end - p.start <= 400 for p in passages)
        for s, e in sentence_spans(doc):
            if e - s <= 400:
                assert any(p.start <= s and e <= p.end for p in passages), doc.text[s:e]
        for a, b in zip(passages, passages[1:]):
            sentences_in_a = [x for x in sentence_spans(doc) if a.start <= x[0] and x[1] <= a.end]
            if len(sentences_in_a) > 1:  # a passage that is one sentence cannot share it and still advance
                assert b.start < a.end and b.start == sentences_in_a[-1][0], "the last sentence is repeated"
    assert {p.doc_id for p in chunk_corpus(corpus, settings)} == set(corpus.documents)


def test_an_answer_where_a_long_sentence_is_cut_is_whole_in_one_passage():
    """A caption or a tweet of a thousand characters is one sentence: its pieces overlap, so the
    words at a cut ("150 | kilometers") are read together somewhere."""
    text = "The valley lies " + "far away " * 64 + "150 kilometers north of Kabul, " + "and so on " * 70 + "."
    doc = Document("a", "a.txt", text, None, 0)
    answer = text.index("150 kilometers")
    passages = chunk_document(doc, ChunkSettings(max_chars=600))
    assert any(p.start <= answer and answer + len("150 kilometers") <= p.end for p in passages)
    assert all(p.end - p.start <= 600 and p.text == text[p.start:p.end] for p in passages)
    assert passages[-1].end == len(text)


@pytest.mark.parametrize("opening", [
    "Photo: https://example.com/" + "a" * 700 + " the minister said 40 million people would vote.",
    "北京 — " + "中国政府今天宣布了新的经济计划。" * 60,
])
def test_a_long_first_sentence_leaves_nothing_after_it_out(opening):
    """A first sentence over max_chars with no space in its second quarter once sent the next cut
    to a bound counted from the article's end: everything between was never indexed."""
    text = opening + "\n" + "Joe Biden visited the valley on Tuesday. " * 60
    doc = Document("a", "a.txt", text, None, 0)
    passages = chunk_document(doc, ChunkSettings(max_chars=600))
    covered = set()
    for p in passages:
        assert p.start < p.end and p.text == text[p.start:p.end]
        covered.update(range(p.start, p.end))
    assert all(i in covered for i, c in enumerate(text) if not c.isspace())


def test_the_sentence_cited_from_an_article_on_one_line_is_cut_around_the_answer():
    text = "It began " + "and went on " * 50_000 + "150 kilometers from Kabul" + " and on" * 50_000 + "."
    doc = Document("a", "a.txt", text, None, 0)
    start = text.index("150 kilometers")
    s, e = sentence_around(doc, start, start + 14)
    assert s <= start and start + 14 <= e and e - s <= 1000
    assert text[s - 1] == " " and text[e] == " "  # whole words
    assert sentence_around(doc, 0, 8)[0] == 0 and sentence_around(doc, 0, 8)[1] <= 1000  # at the sentence's start


def test_fingerprint_changes_with_content(seeds_copy):
    before = load_corpus(seeds_copy).fingerprint
    path = seeds_copy / "003_1053def13e2cd472.txt"
    path.write_text(path.read_text(encoding="utf-8") + "\nOne more line.", encoding="utf-8")
    assert load_corpus(seeds_copy).fingerprint != before


def test_a_file_with_no_words_is_skipped_not_read_as_an_empty_passage(seeds_copy):
    """Notepad saves an empty file as a byte-order mark: read as a passage with nothing the reader
    could tokenise, it crashed every question that retrieved it."""
    (seeds_copy / "notes.txt").write_bytes(b"\xef\xbb\xbf")
    (seeds_copy / "blank.txt").write_text("\u200b\u200b\n\u0301", encoding="utf-8")
    (seeds_copy / "feed.jsonl").write_text('{"id": "a", "text": "\\u200b"}\n{"id": "b", "text": "Kabul fell."}\n',
                                           encoding="utf-8")
    corpus = load_corpus(seeds_copy)
    assert "notes.txt: no words in it" in corpus.skipped and "blank.txt: no words in it" in corpus.skipped
    assert "feed.jsonl: feed.jsonl#a has no words in it" in corpus.skipped
    assert "feed.jsonl#b" in corpus.documents and not {"notes", "blank", "feed.jsonl#a"} & set(corpus.documents)


def test_unreadable_files_are_skipped_with_a_reason(seeds_copy):
    (seeds_copy / "image.txt").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    (seeds_copy / "latin1.txt").write_bytes("caf\xe9 cr\xe8me".encode("latin-1"))
    (seeds_copy / "blank.txt").write_text("  \n", encoding="utf-8")
    corpus = load_corpus(seeds_copy)
    assert len(corpus.documents) == 5
    reasons = " | ".join(corpus.skipped)
    assert "image.txt: binary" in reasons and "latin1.txt: not UTF-8" in reasons and "blank.txt: no words in it" in reasons


def test_no_readable_articles_is_a_clear_error(tmp_path):
    with pytest.raises(RagError, match="no readable articles"):
        load_corpus(tmp_path)
    with pytest.raises(RagError, match="not found"):
        load_corpus(tmp_path / "missing")


def test_windows_line_endings_read_like_open(tmp_path):
    path = tmp_path / "crlf.txt"
    path.write_bytes(b" date 2021-01-02 First line.\r\nSecond line.\r\n")
    (doc,), _ = read_documents(path)
    with open(path, encoding="utf-8") as f:
        assert doc.text == f.read()
    assert doc.date == "2021-01-02"


def test_a_byte_order_mark_is_read_past_in_json_lines_and_markdown(tmp_path):
    (tmp_path / "feed.jsonl").write_bytes('\ufeff{"id": "a", "text": "First record."}\n{"id": "b", "text": "Second."}\n'.encode())
    (tmp_path / "page.md").write_bytes("\ufeff# The valley\n\nIt held out.\n".encode())
    corpus = load_corpus(tmp_path)
    assert sorted(corpus.documents) == ["feed.jsonl#a", "feed.jsonl#b", "page.md"] and not corpus.skipped
    page = corpus.documents["page.md"]
    assert page.title == "The valley" and page.text == "The valley\n\nIt held out."  # a heading is a paragraph of its own


def test_json_lines_records_with_a_null_or_blank_id_are_named_by_their_line(tmp_path):
    records = ['{"id": null, "text": "One."}', '{"id": null, "text": "Two."}', '{"id": " ", "text": "Three."}']
    (tmp_path / "feed.jsonl").write_text("\n".join(records) + "\n", encoding="utf-8")
    corpus = load_corpus(tmp_path)
    assert sorted(corpus.documents) == ["feed.jsonl#1", "feed.jsonl#2", "feed.jsonl#3"]
    # said, as a line inserted above renames them (a gold set's docs, and citations, would name others)
    assert corpus.skipped == ["warning: feed.jsonl: 3 records without an id are named by their lines (feed.jsonl#1, "
                              "feed.jsonl#2, feed.jsonl#3): a line inserted above renames them; give each record an id"]


def test_a_file_whose_name_is_not_utf8_is_skipped_saying_so_not_a_crash(tmp_path):
    """Its id could not be written to the index: every command over the folder failed."""
    import os

    (tmp_path / os.fsdecode(b"caf\xe9-news.txt")).write_text("A Latin-1 file name.\n", encoding="utf-8")
    (tmp_path / "other.txt").write_text("The mayor of Fenwick is Dana Oduya.\n", encoding="utf-8")
    corpus = load_corpus(tmp_path)
    assert list(corpus.documents) == ["other"] and corpus.fingerprint
    assert corpus.skipped == ["caf\ufffd-news.txt: its file name is not UTF-8 text; rename it to read it"]
    (tmp_path / os.fsdecode(b"caf\xe9.jpg")).write_bytes(b"\xff\xd8")  # never read: named, printably
    (tmp_path / os.fsdecode(b".caf\xe9")).write_bytes(b"x")  # hidden, and no article's kind: not said
    assert load_corpus(tmp_path).skipped == [*corpus.skipped, "caf\ufffd.jpg: not a kind of file rag reads "
                                             "(.txt, .md, .markdown, .html, .htm, .jsonl)"]


def test_the_date_range_is_the_first_and_last_date_and_none_when_nothing_is_dated():
    from rag.corpus import date_range

    assert date_range([None, "2021-08-25", None, "2020-01-01", "2021-08-24"]) == ("2020-01-01", "2021-08-25")
    assert date_range([None, None]) is None and date_range([]) is None


def test_an_article_id_whose_file_was_skipped_says_why(tmp_path):
    from rag.render import ArticleView

    (tmp_path / "ferry.txt").write_text("The ferry leaves at nine.", encoding="utf-8")
    (tmp_path / "baking.txt").write_bytes("Café au lait".encode("latin-1"))
    corpus = load_corpus(tmp_path)
    with pytest.raises(RagError, match=r"^no article 'baking' in .* \(baking\.txt: not UTF-8 text \(byte 0xe9 at line 1, "
                                       r"column 4; .*\)\)$"):
        ArticleView.of(corpus, "baking", None, None)
    with pytest.raises(RagError, match=r"^no article 'bakery' in [^(]*$"):
        ArticleView.of(corpus, "bakery", None, None)
    (tmp_path / "port.txt").write_text("Date: 05/03/2024\n\nThe port reopened.", encoding="utf-8")
    noted = load_corpus(tmp_path)  # read, with a warning: a note, not a skip
    assert "port" in noted.documents and any(reason.startswith("warning: ") for reason in noted.skipped)
    with pytest.raises(RagError, match=r"^no article 'warning' in [^(]*$"):
        ArticleView.of(noted, "warning", None, None)
    with pytest.raises(RagError, match=r"^no article 'ferry.txt' in .* \(that file's article id is 'ferry'\)$"):
        ArticleView.of(noted, "ferry.txt", None, None)
    (tmp_path / "wire.jsonl").write_text('{"id": "w1", "text": "One."}\n{"id": "w2", "text": "Two."}\n', encoding="utf-8")
    with pytest.raises(RagError, match=r"^no article 'wire.jsonl' in .* \(that file's records are wire.jsonl#w1, wire.jsonl#w2\)$"):
        ArticleView.of(load_corpus(tmp_path), "wire.jsonl", None, None)


def test_a_file_given_as_the_articles_folder_says_it_is_a_file(tmp_path):
    article = tmp_path / "ferry.txt"
    article.write_text("The ferry leaves at nine.", encoding="utf-8")
    with pytest.raises(RagError, match="ferry.txt is a file; --seeds takes the folder of articles"):
        load_corpus(article)
    with pytest.raises(RagError, match="^articles folder not found: "):
        load_corpus(tmp_path / "none")


@pytest.mark.parametrize("front", [
    '---\ntitle: "Valley holds"\ndate: 2021-09-03\n---\n',  # YAML, as Jekyll writes it
    '+++\ntitle = "Valley holds"\ndate = 2021-09-03T10:00:00Z\n+++\n',  # Hugo's TOML
    "Title: Valley holds\nDate: 2021-09-03 10:20\nTags: war\n\n",  # Pelican's
])
def test_markdown_front_matter_of_each_common_kind_gives_title_and_date(tmp_path, front):
    (tmp_path / "story.md").write_text(front + "The resistance said it still held the valley.\n")
    (doc,), problems = read_documents(tmp_path / "story.md")
    assert (doc.title, doc.date, doc.text, problems) == (
        "Valley holds", "2021-09-03", "The resistance said it still held the valley.", [])


def test_a_story_opening_like_a_field_stays_story_and_bad_toml_is_said(tmp_path):
    (tmp_path / "note.md").write_text("Note: the vote was close.\n\nIt passed.\n")
    (doc,), _ = read_documents(tmp_path / "note.md")
    assert doc.text == "Note: the vote was close.\n\nIt passed." and doc.title is None
    lead = "KABUL: The Taliban said they had taken the valley."  # a dateline with a colon, under a date line
    (tmp_path / "lead.md").write_text(f"Date: 2021-09-03\n{lead}\n\nThe resistance denied it.\n")
    (doc,), _ = read_documents(tmp_path / "lead.md")
    assert doc.text == f"{lead}\n\nThe resistance denied it." and doc.date == "2021-09-03"
    (tmp_path / "bad.md").write_text("+++\ntitle = \n+++\nIt passed.\n")
    (doc,), problems = read_documents(tmp_path / "bad.md")
    assert doc.text == "It passed." and doc.date is None
    assert len(problems) == 1 and "bad.md: its +++ front matter is not TOML" in problems[0]


def test_a_passage_cut_mid_paragraph_sees_the_articles_wraps_and_its_list_breaks():
    """The reader told wraps apart on a passage alone: its first line, cut where a sentence
    starts, is short, so a wrap there looked like the end of a line of its own."""
    from rag.corpus import line_ends, line_ends_in

    lead = textwrap.fill("The government announced on Monday a package of measures for farmers hit by the "
                         "drought, which are:", 72)
    text = f"{WRAPPED}\n\n{lead}\n- a freeze on grain export licences until December\n- interest-free loans"
    doc = Document("e", "e.txt", text, None, 0)
    assert [text[s:e].replace("\n", " ") for s, e in sentence_spans(doc)][-3:] == [
        " ".join(lead.split()), "- a freeze on grain export licences until December", "- interest-free loans"]
    second = text.index("He said")
    passage = Passage("e", second, len(text), text[second:])
    ends = line_ends_in(doc, passage)
    assert [passage.text[end - 1:end + 3] for end in ends] == [".\n\nT", ":\n- ", "r\n- "]  # only its own lines end
    assert len(line_ends(passage.text)) > len(ends)  # the passage alone took a wrap for an end


def test_a_wrapped_line_that_opens_with_capitals_and_a_comma_is_no_dateline():
    text = ("The ministers met in Brussels on Tuesday to discuss the withdrawal, and\n"
            "NATO, the alliance that led the mission, said it would keep talking.")
    assert [text[s:e] for s, e in sentence_spans(Document("n", "n.txt", text, None, 0))] == [text]


def test_an_articles_source_is_its_files_whole_path_though_the_folder_was_given_relative(tmp_path, monkeypatch):
    """`rag serve --seeds seeds` cited "seeds/a.txt": a path that means nothing to whoever reads
    the answer from another folder."""
    (tmp_path / "seeds").mkdir()
    (tmp_path / "seeds" / "a.txt").write_text("The ferry leaves at ten.\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    assert load_corpus(Path("seeds")).documents["a"].source == str(tmp_path / "seeds" / "a.txt")


@pytest.mark.parametrize("name, raw, said", [
    ("utf16.txt", "The ferry leaves at nine.".encode("utf-16"),
     "utf16.txt: UTF-16 text, not UTF-8; iconv -f UTF-16 -t UTF-8 turns it into UTF-8"),
    ("utf16-no-bom.txt", "The ferry leaves at nine.".encode("utf-16-le"),  # iconv must be told the byte order
     "utf16-no-bom.txt: UTF-16 text, not UTF-8; iconv -f UTF-16LE -t UTF-8 turns it into UTF-8"),
    ("utf32.txt", "The ferry leaves at nine.".encode("utf-32"),
     "utf32.txt: UTF-32 text, not UTF-8; iconv -f UTF-32 -t UTF-8 turns it into UTF-8"),
    ("quote.txt", "The café’s ferry.\nThe captain said \u201cnine\u201d.".encode("utf-8").replace("\u201c".encode(), b"\x93"),
     "quote.txt: not UTF-8 text (byte 0x93 at line 2, column 18; if it was saved as Windows-1252 or Latin-1, "
     "iconv -f WINDOWS-1252 -t UTF-8 turns it into UTF-8)"),
    ("accented.txt", "Caf\u00e9 \u201cx".encode("utf-8").replace("\u201c".encode(), b"\x93"),  # columns count characters
     "accented.txt: not UTF-8 text (byte 0x93 at line 1, column 6; if it was saved as Windows-1252 or Latin-1, "
     "iconv -f WINDOWS-1252 -t UTF-8 turns it into UTF-8)"),
    ("photo.txt", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x01", "photo.txt: binary file, not text"),
    ("zeros.txt", bytes(4096), "zeros.txt: binary file, not text"),  # a file a crash left zeroed is no UTF-16
])
def test_a_file_that_is_not_utf8_says_what_it_is_and_how_to_mend_it(tmp_path, name, raw, said):
    """A UTF-16 file was "binary file, not text", and one stray Windows-1252 quote dropped the
    article as "not UTF-8 text" without saying where."""
    (tmp_path / "ferry.txt").write_text("The ferry leaves at nine.", encoding="utf-8")
    (tmp_path / name).write_bytes(raw)
    assert load_corpus(tmp_path).skipped == [said]
