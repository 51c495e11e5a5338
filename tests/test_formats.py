"""Markdown, HTML and JSON Lines articles through to cited answers (fake models: milliseconds)."""
import json
import shutil

import pytest

from rag.assembly import build_pipeline
from rag.config import load_models_config
from rag.corpus import load_corpus
from rag.decision import Abstention
from rag.dates import DateRange
from rag.pipeline import Pipeline
from tests.conftest import ROOT, SEEDS
from tests.fakes import FakeEmbedder, FakeReader

FORMATS = ROOT / "tests" / "formats"


@pytest.fixture(autouse=True)
def conversion_keys_of_the_converters_as_they_are():
    """A test that changes a converter's VERSION must not leave keys made with it cached."""
    from rag.converters import _made_by

    _made_by.cache_clear()
    yield
    _made_by.cache_clear()


@pytest.fixture
def archive(tmp_path):
    folder = tmp_path / "archive"
    shutil.copytree(FORMATS, folder)
    shutil.copy(SEEDS / "001_fb70659820c0e01f.txt", folder)
    return folder


def test_each_format_gives_documents_with_title_date_and_source(archive):
    corpus = load_corpus(archive)
    docs = corpus.documents
    assert set(docs) == {"valley-report.md", "taliban-claim.html", "wire-export.jsonl#w-101",
                         "wire-export.jsonl#w-102", "001_fb70659820c0e01f"}
    md = docs["valley-report.md"]
    assert md.title == "Resistance says it still holds the valley" and md.date == "2021-09-03"
    assert "**" not in md.text and "](" not in md.text and "Fahim Dashti" in md.text and "seven districts" in md.text
    page = docs["taliban-claim.html"]
    assert page.date == "2021-09-06" and "Taliban claim" in page.title
    assert page.source == "https://news.example.org/2021/09/06/taliban-claim-panjshir"
    assert "Zabihullah Mujahid" in page.text and "recipes" not in page.text and "Copyright" not in page.text
    for converted in (md, page):  # each block a paragraph of its own: no answer runs from a heading into the body
        assert "\n" not in converted.text.replace("\n\n", "") and converted.text.count("\n\n") >= 2
    wire = docs["wire-export.jsonl#w-101"]
    assert wire.title == "Saleh vows to stay" and wire.date == "2021-08-19" and wire.source == "https://wire.example.org/w-101"
    assert docs["001_fb70659820c0e01f"].source.endswith("001_fb70659820c0e01f.txt")
    assert "wire-export.jsonl line 3: not JSON (Expecting value at column 1)" in corpus.skipped  # named, and the rest is read
    assert "wire-export.jsonl line 4: no text" in corpus.skipped


@pytest.mark.parametrize("question, answer, doc_id", [
    ("Who is the spokesman of the front?", "Fahim Dashti", "valley-report.md"),
    ("Who is the Taliban's chief spokesman?", "Zabihullah Mujahid", "taliban-claim.html"),
    ("Where did the aid flight land?", "Mazar-i-Sharif", "wire-export.jsonl#w-102"),
])
def test_converted_articles_answer_with_citations_into_their_text(archive, tmp_path, question, answer, doc_id):
    parts = build_pipeline(load_models_config(ROOT / "models.toml"), archive, tmp_path / "index",
                           embedder=FakeEmbedder(), reader=FakeReader([]))
    pipeline = Pipeline(parts.corpus, parts.retriever, FakeReader([answer]), Abstention(bias=-4.0), 50)
    result = pipeline.ask(question)
    c = result.citation
    doc = parts.corpus.documents[c.doc_id]
    assert c.doc_id == doc_id and doc.text[c.start:c.end] == answer
    assert c.title == doc.title and c.source == doc.source and c.date == doc.date
    assert doc.text[c.sentence_start:c.sentence_start + len(c.sentence)] == c.sentence


def test_date_filters_work_across_formats(archive, tmp_path):
    parts = build_pipeline(load_models_config(ROOT / "models.toml"), archive, tmp_path / "index",
                           embedder=FakeEmbedder(), reader=FakeReader([]))
    pipeline = Pipeline(parts.corpus, parts.retriever, FakeReader(["Panjshir"]), Abstention(bias=-4.0), 50)
    answer = pipeline.ask("Panjshir", DateRange(since="2021-09-04"))
    assert {r.passage.doc_id for r in answer.passages} == {"taliban-claim.html", "wire-export.jsonl#w-102"}


def test_ids_stay_unique_across_formats_and_a_clash_is_named(tmp_path):
    folder = tmp_path / "clash"
    folder.mkdir()
    (folder / "a.txt").write_text("Plain text about Kabul.")
    (folder / "a.md").write_text("# A\n\nMarkdown about Kabul.")
    (folder / "a.md.txt").write_text("A text file whose stem is a.md.")
    (folder / "broken.html").write_bytes(b"<html><body><script>1</script></body></html>")
    corpus = load_corpus(folder)
    assert set(corpus.documents) == {"a", "a.md"}
    assert "a.md.txt: its id 'a.md' is taken by a.md" in corpus.skipped
    assert "broken.html: no article text found in the page" in corpus.skipped


def test_show_warns_when_the_article_changed_or_came_after_the_index_citations_come_from(tmp_path):
    """A hand edit moves the text under a citation's offsets: `rag show` marked other words, silently."""
    from tests.conftest import run_rag

    seeds, index = tmp_path / "seeds", tmp_path / "index"
    seeds.mkdir()
    (seeds / "cork.txt").write_text("The mayor of Cork is Dan Boyle.\n", encoding="utf-8")
    build_pipeline(load_models_config(ROOT / "models.toml"), seeds, index, embedder=FakeEmbedder(), reader=FakeReader([]))
    where = ["--seeds", str(seeds), "--index-dir", str(index)]
    as_indexed = run_rag("show", "cork", "--start", "21", "--end", "30", *where)
    assert as_indexed.returncode == 0 and as_indexed.stderr == "" and "⟦Dan Boyle⟧" in as_indexed.stdout
    (seeds / "cork.txt").write_text("Some words inserted. The mayor of Cork is Dan Boyle.\n", encoding="utf-8")
    edited = run_rag("show", "cork", "--start", "21", "--end", "30", "--json", *where)
    assert edited.returncode == 0 and edited.stderr.startswith("warning: cork changed since it was indexed (")
    assert "a span cited before may mark other text now" in " ".join(edited.stderr.split())
    (seeds / "late.txt").write_text("A story added after the index was built.\n", encoding="utf-8")
    late = run_rag("show", "late", *where)
    assert late.returncode == 0 and "late is not in the index yet" in late.stderr
    (seeds / "cork.txt").write_text("Dan Boyle.\n", encoding="utf-8")  # the span is now past its end
    shortened = run_rag("show", "cork", "--start", "21", "--end", "30", *where)
    assert shortened.returncode == 2 and shortened.stderr.startswith("warning: cork changed since it was indexed (")
    assert "error: --start 21 --end 30 is not a span of cork" in shortened.stderr


def test_show_gives_the_text_citations_slice_with_the_span_marked(archive):
    from rag.render import ArticleView

    corpus = load_corpus(archive)
    doc = corpus.documents["taliban-claim.html"]
    start = doc.text.index("Zabihullah Mujahid")
    view = ArticleView.of(corpus, "taliban-claim.html", start, start + len("Zabihullah Mujahid"))
    assert view.to_json() == {"doc_id": "taliban-claim.html", "title": doc.title, "date": "2021-09-06",
                              "source": doc.source, "text": doc.text,
                              "span": {"start": start, "end": start + 18, "text": "Zabihullah Mujahid"}}
    assert "⟦Zabihullah Mujahid⟧" in view.body(marked_style=None).plain
    assert view.header().startswith("taliban-claim.html · Taliban claim")
    from rag.errors import RagError

    with pytest.raises(RagError, match="no article 'nope'"):
        ArticleView.of(corpus, "nope", None, None)
    with pytest.raises(RagError, match="is not a span of"):
        ArticleView.of(corpus, "taliban-claim.html", 5, 10**6)


def test_the_index_keeps_converted_text_so_unchanged_pages_are_not_converted_again(archive, tmp_path, monkeypatch):
    from rag.converters import html

    calls = []
    real = html.convert
    monkeypatch.setattr(html, "convert", lambda path, raw: calls.append(path.name) or real(path, raw))
    config = load_models_config(ROOT / "models.toml")

    def open_archive():
        return build_pipeline(config, archive, tmp_path / "index", embedder=FakeEmbedder(), reader=FakeReader([]))

    first = open_archive()
    assert calls == ["taliban-claim.html"]
    second = open_archive()
    assert calls == ["taliban-claim.html"]  # the page is unchanged: its text came from the index
    assert second.corpus.documents["taliban-claim.html"] == first.corpus.documents["taliban-claim.html"]
    page = archive / "taliban-claim.html"
    page.write_text(page.read_text().replace("Monday", "Tuesday"))
    third = open_archive()
    assert calls == ["taliban-claim.html"] * 2 and "Tuesday" in third.corpus.documents["taliban-claim.html"].text
    from rag.converters import _made_by

    monkeypatch.setattr(html, "VERSION", html.VERSION + 1)  # a better converter: the same bytes convert anew
    _made_by.cache_clear()
    open_archive()
    open_archive()  # and what it gave is kept: not converted at every start from then on
    assert calls == ["taliban-claim.html"] * 3
    page.write_text(page.read_text().replace("</body>", "<nav>New links</nav></body>"))  # new bytes, same text
    open_archive()
    open_archive()
    assert calls == ["taliban-claim.html"] * 4


def test_show_chat_and_remove_take_converted_articles_from_the_index_too(archive, tmp_path, monkeypatch):
    """They read the folder before answering (chat: before its prompt) and converted every page
    again at each start: minutes on a web archive."""
    from typer.testing import CliRunner

    from rag.archive import Archive, FolderChange
    from rag.assembly import load_articles
    from rag.cli import app
    from rag.converters import html

    build_pipeline(load_models_config(ROOT / "models.toml"), archive, tmp_path / "index", embedder=FakeEmbedder(),
                   reader=FakeReader([]))
    calls = []
    real = html.convert
    monkeypatch.setattr(html, "convert", lambda path, raw: calls.append(path.name) or real(path, raw))
    articles = load_articles(archive, tmp_path / "index")
    assert calls == [] and articles.documents["taliban-claim.html"] == load_corpus(archive).documents["taliban-claim.html"]
    calls.clear()
    shown = CliRunner().invoke(app, ["show", "taliban-claim.html", "--json", "--seeds", str(archive),
                                     "--index-dir", str(tmp_path / "index")])  # an index kept elsewhere too
    assert calls == [] and json.loads(shown.stdout)["text"] == articles.documents["taliban-claim.html"].text
    (tmp_path / "late.txt").write_text("A late article.", encoding="utf-8")
    added = FolderChange()
    Archive.at(archive, tmp_path / "index").add([tmp_path / "late.txt"], added)
    assert added.added == ["late.txt"]  # ids read, not converted
    Archive.at(archive, tmp_path / "index").remove(["valley-report.md"], FolderChange())
    assert calls == [] and not (archive / "valley-report.md").exists()
    (tmp_path / "not-an-index").write_text("mine", encoding="utf-8")
    assert "taliban-claim.html" in load_articles(archive, tmp_path / "not-an-index").documents  # read, not refused


def test_what_a_converted_file_skipped_is_said_again_when_its_text_comes_from_the_index(tmp_path):
    folder = tmp_path / "archive"
    folder.mkdir()
    (folder / "feed.jsonl").write_text('{"id": "a", "text": "Kept."}\n{"id": "b"}\n{"id": "a", "text": "Twice."}\n',
                                       encoding="utf-8")
    (folder / "other.jsonl").write_text('{"id": "c", "text": "Also kept."}\n', encoding="utf-8")
    config = load_models_config(ROOT / "models.toml")

    def skipped():
        parts = build_pipeline(config, folder, tmp_path / "index", embedder=FakeEmbedder(), reader=FakeReader([]))
        return sorted(parts.corpus.skipped)

    first = skipped()
    assert first == ["feed.jsonl line 2: no text", "feed.jsonl line 3: its id is line 1's too"]
    assert skipped() == first  # the second run reads the file's documents from the index


def test_half_a_character_escaped_in_json_lines_is_indexed_as_a_replacement_character(tmp_path):
    """"\\ud83d" alone (a broken emoji) cannot be written to the index or hashed: it crashed
    every command once the file was in the folder. It becomes U+FFFD, keeping every offset."""
    folder = tmp_path / "archive"
    folder.mkdir()
    (folder / "feed.jsonl").write_text('{"id": "a\\ud83d", "title": "Fenwick \\udc00", '
                                       '"text": "Emoji \\ud83d broken. \\ud83d\\ude00 The mayor of Fenwick is Dana Oduya."}\n',
                                       encoding="utf-8")
    config = load_models_config(ROOT / "models.toml")
    for _ in range(2):  # built, then read back from the index
        parts = build_pipeline(config, folder, tmp_path / "index", embedder=FakeEmbedder(), reader=FakeReader([]))
        (doc,) = parts.corpus.documents.values()
        assert (doc.doc_id, doc.title) == ("feed.jsonl#a\ufffd", "Fenwick \ufffd")
        assert doc.text == "Emoji \ufffd broken. \U0001F600 The mayor of Fenwick is Dana Oduya."


STORY = "<p>The council of Fenwick voted on Tuesday to close the old quarry, ending a mining plan first drawn up in 2019. " \
        "The decision passed by seven votes to two after a long debate in the town hall.</p>"


@pytest.mark.parametrize("marks, date", [
    ("", None),  # undated: not a year the story mentions
    ('<time datetime="2022-03-04">4 March 2022</time>', "2022-03-04"),
    ('<p class="byline">Published 4 March 2022</p>', "2022-03-04"),
])
def test_a_web_page_is_dated_by_its_own_marks_never_by_a_year_its_story_mentions(tmp_path, marks, date):
    from rag.converters.html import convert

    page = f"<html><head><title>Quarry</title></head><body><article><h1>Council closes quarry</h1>{marks}{STORY}</article></body></html>"
    (doc,), _ = convert(tmp_path / "quarry.html", page.encode())
    assert doc.date == date


def test_a_date_that_is_no_real_day_leaves_the_article_undated_and_is_said(tmp_path):
    """2021-13-45 was taken as a date (sorting as the latest, passing --since filters), and
    "September 6, 2021" was dropped without a word (a date filter then left the article out)."""
    from rag.corpus import load_corpus, status_line

    (tmp_path / "a.txt").write_text(" date 2021-13-45\nThe mayor resigned.\n", encoding="utf-8")
    (tmp_path / "b.md").write_text("---\ndate: Sept 7 2021\n---\n# Minister\n\nAmir Khan Muttaqi was named.\n", encoding="utf-8")
    (tmp_path / "c.jsonl").write_text('{"id": "x", "date": "2021-02-30", "text": "A record."}\n'
                                      '{"id": "y", "date": "2021-09-06T08:30:00Z", "text": "Another record."}\n'
                                      '{"id": "z", "date": 20210907, "text": "A third record."}\n'
                                      '{"id": "w", "date": "2021-09-061", "text": "A fourth record."}\n', encoding="utf-8")
    (tmp_path / "d.txt").write_text(" date March 15, 2024 The council met.\n", encoding="utf-8")
    (tmp_path / "e.txt").write_text("date palms grow in the valley.\n", encoding="utf-8")  # no date meant: nothing said
    (tmp_path / "f.txt").write_text("Date: March 5, 2024\n\nThe port reopened.\n", encoding="utf-8")  # read since
    corpus = load_corpus(tmp_path)
    assert {d: doc.date for d, doc in corpus.documents.items()} == {"a": None, "b.md": None, "c.jsonl#x": None,
                                                                      "c.jsonl#y": "2021-09-06", "c.jsonl#z": None,
                                                                      "c.jsonl#w": None, "d": None, "e": None, "f": "2024-03-05"}
    assert corpus.documents["a"].text[corpus.documents["a"].body_start:].strip() == "The mayor resigned."
    assert sorted(map(status_line, corpus.skipped)) == [  # as it is printed: read all the same, not "skipped"
        "warning: a.txt: date '2021-13-45' is no day of the calendar: the article is read as undated",
        "warning: b.md: date 'Sept 7 2021' is not a day written YYYY-MM-DD: the article is read as undated",
        "warning: c.jsonl line 1: date '2021-02-30' is no day of the calendar: the article is read as undated",
        "warning: c.jsonl line 3: date '20210907' is not a day written YYYY-MM-DD: the article is read as undated",
        "warning: c.jsonl line 4: date '2021-09-061' is not a day written YYYY-MM-DD: the article is read as undated",
        "warning: d.txt: its first line starts like a date ('date March 15, 2024'), but a date is read from a line that "
        "holds only the date (written YYYY-MM-DD or with the month's name), or from 'Date: YYYY-MM-DD' before the text: "
        "the article is read as undated"]


@pytest.mark.parametrize("first_line", ["date 2024-03-02", "Date: 2024-03-02", "date:2024-03-02", "DATE : 2024-03-02",
                                        "Date: 2024-03-02T10:00:00Z", "Published: 2024-03-02", "PUBLISHED 2024-03-02",
                                        "Published: 2024-03-02 14:05", "date 2024-03-02 9:30 a.m. UTC",
                                        "Date: 2024-03-02 14:05:33+02:00", "Date: 2024-03-02, 14:05",
                                        "Posted: 2024-03-02 | 14:05 BST", "Updated: 2024-03-02"])
def test_a_date_line_is_read_as_people_write_it(tmp_path, first_line):
    """"Date: 2024-03-02" left the article undated without a word, and a date filter then left it out;
    after "Date: 2024-03-02, 14:05" the body began at ", 14:05" (an answer to "when?"), and a
    markdown file's was undated; "Posted: 2024-03-02" was undated without a word."""
    (tmp_path / "a.txt").write_text(f"{first_line}\nThe mayor resigned.\n", encoding="utf-8")
    (tmp_path / "b.md").write_text(f"{first_line}\n\n# Council\n\nThe mayor resigned.\n", encoding="utf-8")
    corpus = load_corpus(tmp_path)
    assert corpus.skipped == [] and {doc.date for doc in corpus.documents.values()} == {"2024-03-02"}
    a = corpus.documents["a"]
    assert a.text[a.body_start:].strip() == "The mayor resigned." and "2024" not in corpus.documents["b.md"].text


@pytest.mark.parametrize("between", ["\n", "\n\n"])
def test_a_date_line_under_the_headline_dates_the_article_and_the_headline_is_its_title(tmp_path, between):
    """Saved news pages put the headline first: every such article was undated, without a word,
    and a date filter left it out. Both lines stay in the text; the headline is a sentence of its
    own, the date line none (no answer comes from it)."""
    from rag.corpus import load_corpus, sentence_spans

    text = f"Valley holds out{between}Published: 2021-09-03\nThe resistance said it held the valley.\n"
    (tmp_path / "a.txt").write_text(text, encoding="utf-8")
    (tmp_path / "b.txt").write_text("Valley holds out\nPublished: Sept 3, 2021\nThe resistance held.\n", encoding="utf-8")
    (tmp_path / "c.txt").write_text("Valley holds out\nBy Jane Doe\nMon 3 Sep 2021 14.05 BST\nIt held.\n", encoding="utf-8")
    (tmp_path / "d.txt").write_text("Valley holds out\nPublished: 03/09/2021\nThe resistance held.\n", encoding="utf-8")
    corpus = load_corpus(tmp_path)
    a = corpus.documents["a"]
    assert (a.title, a.date, a.text) == ("Valley holds out", "2021-09-03", text)
    assert [text[s:e] for s, e in sentence_spans(a)] == ["Valley holds out", "The resistance said it held the valley."]
    # with the month's name, and under a byline too (they were undated without a word)
    assert [(corpus.documents[d].title, corpus.documents[d].date) for d in "bc"] == [("Valley holds out", "2021-09-03")] * 2
    assert corpus.documents["d"].date is None and corpus.skipped == [  # day or month first?
        "warning: d.txt: its line 'Published: 03/09/2021' dates it in numbers only, which could be day or month first: "
        "write the date YYYY-MM-DD (or with the month's name); the article is read as undated"]


def test_conversions_made_again_beside_a_read_only_index_leave_it_serving(archive, tmp_path, monkeypatch):
    """Keeping them needs a build; where the index folder cannot be written, the index it has
    still serves the articles (they are converted again next time), rather than an error."""
    from rag.converters import _made_by, html
    from rag.errors import RagError
    from rag.index import IndexStore

    config = load_models_config(ROOT / "models.toml")
    first = build_pipeline(config, archive, tmp_path / "index", embedder=FakeEmbedder(), reader=FakeReader([]))
    monkeypatch.setattr(html, "VERSION", html.VERSION + 1)
    monkeypatch.setattr(IndexStore, "prepare_for_writing", lambda self: (_ for _ in ()).throw(RagError("read-only")))
    _made_by.cache_clear()
    said = []
    again = build_pipeline(config, archive, tmp_path / "index", embedder=FakeEmbedder(), reader=FakeReader([]),
                           on_status=said.append)
    assert [p.doc_id for p in again.retriever.passages] == [p.doc_id for p in first.retriever.passages]
    assert any("cannot be written, so they will be converted again next time" in m for m in said), said


@pytest.mark.parametrize("first_line", ["Date 12 of the tour was cancelled.", "Date night is back.", "Dated 1990s rules.",
                                        "Published 12 times, the poet"])
def test_a_story_that_opens_with_the_word_date_is_neither_dated_nor_warned_about(tmp_path, first_line):
    (tmp_path / "a.txt").write_text(f"{first_line} The mayor resigned.\n", encoding="utf-8")
    corpus = load_corpus(tmp_path)
    assert corpus.skipped == [] and corpus.documents["a"].date is None and corpus.documents["a"].body_start == 0


def test_a_table_of_a_web_page_or_a_markdown_file_is_kept_a_row_a_line(tmp_path):
    """Tables were dropped from web pages (and a short page with one came out on one line), and
    a Markdown table ran into one paragraph with its rule row: their facts could not be answered."""
    from rag.corpus import load_corpus

    (tmp_path / "results.html").write_text(
        "<html><head><title>Kenyan runner wins Valdor marathon</title></head><body><article>"
        "<h1>Kenyan runner wins Valdor marathon</h1><p>Joyce Wanjiru won the Valdor City marathon on Sunday.</p>"
        "<h2>Results</h2><table><tr><th>Place</th><th>Runner</th></tr><tr><td>1</td><td>Joyce Wanjiru</td></tr>"
        "<tr><td>3</td><td>Lena Hoffmann</td></tr></table><p>About 14,000 runners took part.</p></article></body></html>",
        encoding="utf-8")
    (tmp_path / "table.md").write_text("# Final table\n\n| Team | Points |\n|---|---|\n| Riverton FC | 84 |\n"
                                       "| Ashford United | 79 |\n\nRiverton won the title.\n", encoding="utf-8")
    documents = load_corpus(tmp_path).documents
    page, markdown = documents["results.html"].text.split("\n\n"), documents["table.md"].text.split("\n\n")
    assert "| 3 | Lena Hoffmann |" in page and "Joyce Wanjiru won the Valdor City marathon on Sunday." in page
    assert markdown == ["Final table", "| Team | Points |", "| Riverton FC | 84 |", "| Ashford United | 79 |",
                        "Riverton won the title."]


def test_a_pipe_inside_a_markdown_tables_cell_stays_escaped_not_a_cell_boundary(tmp_path):
    """A cell "Wins \\| draws" read as two cells, "| Wins | draws | 12 |": the row had one more column."""
    from rag.corpus import load_corpus

    (tmp_path / "table.md").write_text("| Record | Games |\n|---|---|\n| Wins \\| draws | 12 |\n", encoding="utf-8")
    assert load_corpus(tmp_path).documents["table.md"].text.split("\n\n") == ["| Record | Games |", "| Wins \\| draws | 12 |"]


def test_a_json_lines_record_written_as_html_is_read_as_its_text(tmp_path):
    """CMS exports keep the body as HTML: its tags were indexed and cited as text, two paragraphs
    one "sentence"."""
    from rag.corpus import load_corpus, sentence_spans

    body = ("<p>The new tram line opens in <strong>May</strong> &amp; takes 24 minutes.</p>"
            "<p>The line cost 410 million euros.</p><table><tr><td>Central</td><td>0</td></tr></table>")
    (tmp_path / "cms.jsonl").write_text(json.dumps({"id": "t1", "text": body}) + "\n"
                                        + json.dumps({"id": "t2", "text": "A 3 < 4 comparison, in plain text."}) + "\n",
                                        encoding="utf-8")
    documents = load_corpus(tmp_path).documents
    tram = documents["cms.jsonl#t1"]
    assert tram.text == "The new tram line opens in May & takes 24 minutes.\n\nThe line cost 410 million euros.\n\n| Central | 0 |"
    assert [tram.text[s:e] for s, e in sentence_spans(tram)][:2] == [
        "The new tram line opens in May & takes 24 minutes.", "The line cost 410 million euros."]
    assert documents["cms.jsonl#t2"].text == "A 3 < 4 comparison, in plain text."


@pytest.mark.parametrize("text, read_as", [
    ("Reporting by Jane Doe <a.doe@example.com>\nin Kabul.", None),  # plain text that mentions an address
    ("See <p. 4> of the report.", None),
    ("Measures:\n- a <strong>freeze</strong> on exports\n- loans\n\nMore to come.",
     "Measures:\n- a freeze on exports\n- loans\n\nMore to come."),  # text with a few tags: its lines stay
    ("<p>First\x0bline</p><p>Second.</p>", "First line\n\nSecond."),  # Word's line break: no XML parser takes it
    ("<table><tr><td><p>Joyce</p></td><td>1</td></tr></table>", "| Joyce | 1 |"),  # a cell's blocks stay in its row
])
def test_a_records_html_is_read_and_plain_text_left_as_it_is(tmp_path, text, read_as):
    from rag.corpus import load_corpus

    (tmp_path / "cms.jsonl").write_text(json.dumps({"id": "r", "text": text}) + "\n", encoding="utf-8")
    assert load_corpus(tmp_path).documents["cms.jsonl#r"].text == (read_as or text)


def test_a_page_laid_out_in_a_table_is_read_by_its_paragraphs(tmp_path):
    from rag.corpus import load_corpus

    paragraphs = "".join(f"<p>Paragraph {n} of the council's budget story, which runs on for a while to make a page "
                         f"of news that a reader would expect to find here.</p>" for n in range(6))
    (tmp_path / "old.html").write_text(f"<html><head><title>Council votes on budget</title></head><body><table><tr>"
                                       f"<td><a href='/'>Home</a><br><a href='/news'>News</a></td><td>"
                                       f"<h1>Council votes on budget</h1>{paragraphs}</td></tr></table></body></html>",
                                       encoding="utf-8")
    blocks = load_corpus(tmp_path).documents["old.html"].text.split("\n\n")
    assert sum(block.startswith("Paragraph") for block in blocks) == 6 and not any(b.startswith("|") for b in blocks)


def test_a_json_lines_record_cut_short_is_said_in_plain_words(tmp_path):
    """"not JSON (Unterminated string starting at at column 29)": the decoder's own words end in "at"."""
    from rag.corpus import load_corpus

    (tmp_path / "feed.jsonl").write_text('{"id": "a", "text": "Whole."}\n{"id": "b", "text": "Cut sho\n', encoding="utf-8")
    assert "feed.jsonl line 2: not JSON (Unterminated string starting at column 21)" in load_corpus(tmp_path).skipped


def test_a_crawled_sites_page_of_links_is_skipped_as_no_article_but_a_page_of_teasers_is_read(tmp_path):
    """A crawl's section page ("World": a list of headline links) was indexed as an article, and
    asked about a headline, rag cited the list, not the story."""
    from rag.corpus import load_corpus

    headlines = ["Taliban take Kabul as Ghani flees the country", "Resistance in Panjshir vows to fight on",
                 "UN calls emergency meeting on Afghanistan"]
    links = "".join(f"<li><a href='/a{n}'>{headline}</a></li>" for n, headline in enumerate(headlines))
    (tmp_path / "world.html").write_text(
        f"<html><head><title>World</title></head><body><nav><a href='/'>Home</a> <a href='/sport'>Sport</a></nav>"
        f"<main><h1>World</h1><ul>{links}</ul></main><footer><a href='/about'>About us</a></footer></body></html>",
        encoding="utf-8")
    (tmp_path / "sport.html").write_text(
        "<html><head><title>Sport</title></head><body><div><h2><a href='/s1'>Riverton win the league</a></h2>"
        "<p>Riverton FC beat Ashford 2-1 on Saturday to take the title.</p></div></body></html>", encoding="utf-8")
    timed = "".join(f"<li><a href='/a{n}'>{headline}</a> <span>{n + 2} hours ago</span></li>" for n, headline in enumerate(headlines))
    (tmp_path / "latest.html").write_text(f"<html><head><title>Latest</title></head><body><main><ul>{timed}</ul></main></body></html>",
                                          encoding="utf-8")
    paragraphs = "".join(f"<p><a href='/a{n}'>{headline}</a></p>" for n, headline in enumerate(headlines))
    (tmp_path / "front.html").write_text(f"<html><head><title>News</title></head><body><article>{paragraphs}</article></body></html>",
                                         encoding="utf-8")
    corpus = load_corpus(tmp_path)
    for page in ("world.html", "latest.html", "front.html"):  # whole lines of links, beside their times, or run together
        assert f"{page}: a page of links (a section or index page), not an article" in corpus.skipped
    assert "Riverton FC beat Ashford 2-1 on Saturday to take the title." in corpus.documents["sport.html"].text


def test_a_short_story_whose_topic_links_name_its_words_is_read(tmp_path):
    """The links' share counted each link at every place its text stood, overlapping links twice:
    a one-sentence brief with topic links "Kabul", "Kabul airport", "airport" came to 106 %."""
    from rag.corpus import load_corpus

    topics = "".join(f"<a href='/t/{n}'>{topic}</a> " for n, topic in enumerate(
        ["Kabul", "Kabul airport", "airport", "Taliban", "Afghanistan", "flights"]))
    (tmp_path / "brief.html").write_text(
        "<html><head><title>Flights resume at Kabul airport</title></head><body><article><h1>Flights resume at Kabul "
        "airport</h1><p>The first international flights since the Taliban takeover left Kabul airport on Thursday.</p>"
        f"</article><footer>Topics: {topics}</footer></body></html>", encoding="utf-8")
    assert "left Kabul airport on Thursday" in load_corpus(tmp_path).documents["brief.html"].text


@pytest.mark.parametrize("value, title, problem", [
    ("[broken", "Ferry", "its --- front matter's title ('[broken') opens a YAML list it never closes: no title read from it"),
    ('"Ferry cancelled', "Ferry", "its --- front matter's title ('\"Ferry cancelled') opens a quote it never closes: "
                                  "no title read from it"),
    ("{draft: true}", "Ferry", "its --- front matter's title ('{draft: true}') is a YAML map, not text: no title read from it"),
    ("'The ferry''s last run' # kept", "The ferry's last run", None),
    ('"Ferry \\"cancelled\\""', 'Ferry "cancelled"', None),
    ("[Update] Ferry cancelled", "Ferry", "its --- front matter's title ('[Update] Ferry cancelled') opens a YAML list "
                                          "it never closes: no title read from it"),
])
def test_yaml_front_matter_that_is_no_text_is_said_and_not_taken_for_the_title(tmp_path, value, title, problem):
    """`title: [broken` gave the title "[broken" without a word: YAML reads no text there."""
    from rag.corpus import read_documents

    (tmp_path / "story.md").write_text(f"---\ntitle: {value}\ndate: 2021-09-03\n---\n# Ferry\n\nThe ferry was cancelled.\n",
                                       encoding="utf-8")
    (doc,), problems = read_documents(tmp_path / "story.md")
    assert (doc.title, doc.date, doc.text) == (title, "2021-09-03", "Ferry\n\nThe ferry was cancelled.")
    assert problems == ([f"warning: story.md: {problem}"] if problem else [])  # read all the same, as it is said


@pytest.mark.parametrize("text, date, title, warned", [
    # a wrapped first paragraph whose line starts with a date is the story's, not the article's date
    ("Finance minister resigns\nThe finance minister resigned on Friday in a letter to the prime minister\n"
     "dated 2024-03-01, which the cabinet office published on Monday, saying\nshe had lost the cabinet's trust.\n",
     None, None, None),
    ("\n\nValley holds out\nMay 6, 2024\nThe resistance held.\n", "2024-05-06", "Valley holds out", None),  # blank lines first
    ("Valley holds out\n12/31/2024\nThe resistance held.\n", "2024-12-31", "Valley holds out", None),  # one order only
    ("Release notes\n3.10.12\nThe parser was mended.\n", None, None, None),  # a version, not a day: nothing said
    ("Valley holds out\nBy John Smith Jr.\nMay 6, 2024\nIt held.\n", "2024-05-06", "Valley holds out", None),  # a byline's stop
    ("Valley holds out\nBy the end of the day it held.\nMay 6, 2024\nIt held.\n", None, None, None),  # a sentence's
    ("Valley holds out\nPosted on May 6, 2024 by Jane Doe\nThe resistance held.\n", None, None,
     "its second line starts like a date ('Posted on May 6, 2024')"),
])
def test_a_heads_date_is_read_only_from_a_line_that_dates_it(tmp_path, text, date, title, warned):
    from rag.corpus import load_corpus

    (tmp_path / "a.txt").write_text(text, encoding="utf-8")
    corpus = load_corpus(tmp_path)
    a = corpus.documents["a"]
    assert (a.date, a.title) == (date, title)
    assert [line for line in corpus.skipped if warned and warned in line] == corpus.skipped and bool(corpus.skipped) == bool(warned)


def test_a_markdown_files_first_line_dates_it_as_a_texts_does(tmp_path):
    """"Posted on May 6, 2024" first dated a .txt and left a .md undated without a word."""
    from rag.corpus import load_corpus

    for name in ("a.md", "a.txt"):
        (tmp_path / name).write_text("Posted on May 6, 2024\n\n# Council\n\nThe mayor resigned.\n", encoding="utf-8")
    corpus = load_corpus(tmp_path)
    assert {doc.date for doc in corpus.documents.values()} == {"2024-05-06"} and corpus.skipped == []
    assert "2024" not in corpus.documents["a.md"].text
