"""A whole archive in Milvus (rag.milvus_archive): on Milvus Lite with the fake embedder here;
a real Milvus gRPC server (Milvus Lite's, on a local port) for two `rag add` processes at once."""
import dataclasses
import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from rag.corpus import ChunkSettings, chunk_corpus, load_corpus
from rag.dates import DateRange
from rag.errors import RagError
from tests.conftest import ROOT, SEEDS
from tests.fakes import FakeEmbedder

pytest.importorskip("pymilvus", reason="pip install -e '.[milvus]' to test the Milvus store")
pytest.importorskip("milvus_lite", reason="pip install -e '.[milvus]' to test the Milvus store")
from rag import milvus_archive  # noqa: E402
from rag.milvus_archive import ArchiveArticles, MilvusArchive, write_documents  # noqa: E402
from rag.retrieval.milvus_retriever import MilvusRetriever  # noqa: E402
from rag.retrieval.milvus_store import literal  # noqa: E402

CHUNKING = ChunkSettings()


@pytest.fixture
def spec(tmp_path):
    return f"milvus:{tmp_path / 'archive.db'}"


@pytest.fixture
def corpus():
    return load_corpus(SEEDS)


def seeded(spec: str):
    embedder = FakeEmbedder()
    made = MilvusArchive.create(spec, milvus_archive.expected_manifest(embedder, CHUNKING))
    write_documents(made, list(load_corpus(SEEDS).documents.values()), embedder, CHUNKING)
    return made


@pytest.fixture
def archive(spec):
    """The bundled articles in a Milvus Lite archive of their own, for tests that change it."""
    return seeded(spec)


@pytest.fixture(scope="module")
def readonly(tmp_path_factory):
    """The same, made once for the tests that only read it."""
    return seeded(f"milvus:{tmp_path_factory.mktemp('readonly') / 'archive.db'}")


def every_passage_row(archive) -> list[dict]:
    return archive.passages.query("", ["doc_id", "start", "end", "version"])


def test_passages_carry_their_article_as_fields(readonly, corpus):
    rows = readonly.passages.query('doc_id == "002_517ffae1740f5ca3"', ["doc_id", "start", "end", "day", "title", "text"])
    document = corpus.documents["002_517ffae1740f5ca3"]
    assert rows and all(r["day"] == 20210825 for r in rows)
    assert all(r["text"] == document.text[r["start"]:r["end"]] and r["title"] == (document.title or "") for r in rows)
    assert len(every_passage_row(readonly)) == len(chunk_corpus(corpus, CHUNKING)) == readonly.count()[1]


def test_an_article_comes_back_exactly_as_it_went_in(readonly, corpus):
    articles = ArchiveArticles(readonly)
    assert set(articles) == set(corpus.documents) and len(articles) == 5
    for doc_id, document in corpus.documents.items():
        assert articles[doc_id] == document
    assert articles.date_range == corpus.date_range and articles.undated == corpus.undated == 1


def test_a_long_article_is_stored_in_parts_and_joined_back(spec):
    embedder = FakeEmbedder()
    archive = MilvusArchive.create(spec, milvus_archive.expected_manifest(embedder, CHUNKING))
    long = load_corpus(SEEDS).documents["002_517ffae1740f5ca3"]
    long = dataclasses.replace(long, doc_id="long", text=long.text * 40)  # ~250k characters: many parts
    write_documents(archive, [long], embedder, CHUNKING)
    assert archive.markers()["long"].parts > 1
    assert ArchiveArticles(archive)["long"].text == long.text


def test_a_date_filter_is_a_milvus_expression_with_the_faiss_stores_meaning(readonly, corpus):
    retriever = MilvusRetriever(FakeEmbedder(), readonly, ArchiveArticles(readonly), 60, 50)
    for dates in (DateRange("2021-08-25", None), DateRange(None, "2021-08-24"), DateRange("2021-08-24", "2021-08-24")):
        hits = retriever.retrieve("Taliban Panjshir resistance Massoud", 45, dates)
        allowed = {d for d, doc in corpus.documents.items() if doc.date and (not dates.since or doc.date >= dates.since)
                   and (not dates.until or doc.date <= dates.until)}
        assert hits and {h.passage.doc_id for h in hits} <= allowed
    undated = [d for d, doc in corpus.documents.items() if not doc.date]
    assert undated and not {h.passage.doc_id for h in retriever.retrieve("Taliban", 45, DateRange("1900-01-01", None))} & set(undated)


@pytest.mark.parametrize("fusion", ["rrf", "milvus"])
def test_both_fusions_find_the_passage_and_slice_it_from_the_article(readonly, corpus, fusion):
    retriever = MilvusRetriever(FakeEmbedder(), readonly, ArchiveArticles(readonly), 60, 50, fusion=fusion)
    hits = retriever.retrieve("Who leads the resistance in the Panjshir Valley? Ahmad Massoud", 5)
    assert len(hits) == 5 and any("Ahmad Massoud" in h.passage.text for h in hits)
    for h in hits:
        assert h.passage.text == corpus.documents[h.passage.doc_id].text[h.passage.start:h.passage.end]
        assert -1 <= h.dense_score <= 1


def killed(*args):
    raise KeyboardInterrupt  # the process dies here, between the passages and text and the marker


def test_a_crash_before_the_marker_leaves_the_old_version_whole(archive, corpus, monkeypatch):
    """Passages and text of the edited version are written, then the process dies before the
    marker: readers still see the old version; the next write of the article cleans up."""
    old = corpus.documents["002_517ffae1740f5ca3"]
    edited = dataclasses.replace(old, text=old.text + " Massoud vowed to fight on.")
    monkeypatch.setattr(archive, "mark_present", killed)
    with pytest.raises(KeyboardInterrupt):
        write_documents(archive, [edited], FakeEmbedder(), CHUNKING)
    reopened = MilvusArchive.open(archive.spec)
    assert ArchiveArticles(reopened)[old.doc_id] == old
    retriever = MilvusRetriever(FakeEmbedder(), reopened, ArchiveArticles(reopened), 60, 50)
    mine = [h.passage for h in retriever.retrieve("Massoud vowed to fight on", 45) if h.passage.doc_id == old.doc_id]
    assert mine and all(p.text == old.text[p.start:p.end] and "vowed to fight on" not in p.text for p in mine)
    assert len(every_passage_row(reopened)) > reopened.count()[1]  # the half-written version is there, unseen

    change = write_documents(reopened, [edited], FakeEmbedder(), CHUNKING)
    assert change.written == [old.doc_id] and ArchiveArticles(reopened)[old.doc_id] == edited
    assert len(every_passage_row(reopened)) == reopened.count()[1]  # no version but the present one is left


def test_a_crash_while_adding_a_new_article_leaves_no_trace_for_readers(archive, corpus, monkeypatch):
    new = dataclasses.replace(corpus.documents["000_882549ac45e52293"], doc_id="new", path="new.txt")
    monkeypatch.setattr(archive, "mark_present", killed)
    with pytest.raises(KeyboardInterrupt):
        write_documents(archive, [new], FakeEmbedder(), CHUNKING)
    assert "new" not in archive.markers() and archive.count() == (5, len(chunk_corpus(corpus, CHUNKING)))
    retriever = MilvusRetriever(FakeEmbedder(), archive, ArchiveArticles(archive), 60, 50)
    assert "new" not in {h.passage.doc_id for h in retriever.retrieve(new.text[:200], 60)}


def test_rows_no_reader_sees_take_no_place_in_either_ranking_before_they_are_fused():
    """Fused after the fact, rows of a version no reader sees (a crashed or concurrent write)
    would move the passages readers do see; so each ranking keeps present versions only,
    searched deeper where hidden rows took places. (Milvus's BM25 statistics still count them.)"""
    from types import SimpleNamespace

    from rag.retrieval.fusion import rrf

    def row(n, version="v1"):
        return {"id": n, "doc_id": f"d{n}", "start": 0, "end": 4, "version": version, "score": 1.0 / (n + 1)}

    dense_order = [row(1, "hidden"), row(2), row(3, "hidden"), *(row(n) for n in range(4, 15))]
    keyword_order = [row(5), row(1, "hidden"), row(2)]
    searched = []

    def ranked(rows):
        return lambda vector_or_text, depth, where, fields: searched.append(depth) or rows[:depth]

    passages = SimpleNamespace(dense_hits=ranked(dense_order), keyword_hits=ranked(keyword_order), vectors=None)
    archive = SimpleNamespace(passages=passages,
                              markers=lambda ids: {d: SimpleNamespace(doc_id=d, version="v1") for d in ids})
    articles = SimpleNamespace(at=lambda marker: SimpleNamespace(text=f"{marker.doc_id:4}"))  # a text each: none is a copy
    retriever = MilvusRetriever(FakeEmbedder(), archive, articles, rrf_k=60, candidates=3)
    found = [hit.passage.doc_id for hit in retriever.retrieve("question", 3)]
    fused = rrf([[2, *range(4, 15)], [5, 2]], 60)  # the present rows alone, 12 deep (4 x k)
    assert found == [f"d{n}" for n in sorted(fused, key=lambda n: (-fused[n], n))][:3]
    assert searched == [12, 24, 12]  # 2 of the first 12 dense places were hidden: searched again, deeper


def test_a_writer_that_marks_while_another_writes_the_same_article_leaves_the_winner_whole(archive, corpus, monkeypatch):
    """B writes its version's rows; before B marks, C writes and marks another version (and
    cleans up); then B marks. B's version is present, and its rows survived C's cleanup."""
    old = corpus.documents["002_517ffae1740f5ca3"]
    b_version = dataclasses.replace(old, text=old.text + " B says so.")
    c_version = dataclasses.replace(old, text=old.text + " C says otherwise.")
    b_marks = archive.mark_present

    def c_writes_first(*args):
        write_documents(MilvusArchive.open(archive.spec), [c_version], FakeEmbedder(), CHUNKING)
        b_marks(*args)

    monkeypatch.setattr(archive, "mark_present", c_writes_first)
    write_documents(archive, [b_version], FakeEmbedder(), CHUNKING)
    reopened = MilvusArchive.open(archive.spec)
    assert ArchiveArticles(reopened)[old.doc_id] == b_version
    retriever = MilvusRetriever(FakeEmbedder(), reopened, ArchiveArticles(reopened), 60, 50)
    assert any("B says so" in h.passage.text for h in retriever.retrieve("B says so", 10))


def test_doc_ids_with_quotes_and_backslashes_are_written_found_and_removed(archive, corpus):
    odd = dataclasses.replace(corpus.documents["003_1053def13e2cd472"], doc_id='O\'Brien "says" back\\slash')
    write_documents(archive, [odd], FakeEmbedder(), CHUNKING)
    assert ArchiveArticles(archive)[odd.doc_id] == odd
    archive.remove(odd.doc_id)
    assert odd.doc_id not in archive.markers() and not archive.passages.query(f"doc_id == {literal(odd.doc_id)}", ["id"])


def test_an_article_id_too_long_for_a_milvus_server_is_refused_by_its_bytes_before_anything_is_written(archive, corpus):
    # a server counts a VARCHAR in UTF-8 bytes (Milvus Lite, under the tests, in characters)
    fitting = dataclasses.replace(corpus.documents["003_1053def13e2cd472"], doc_id="報" * 166)  # 498 bytes
    write_documents(archive, [fitting], FakeEmbedder(), CHUNKING)
    assert fitting.doc_id in archive.markers()
    too_long = dataclasses.replace(fitting, doc_id="報" * 200)  # 200 characters, 600 bytes
    with pytest.raises(RagError, match=r"is over 500 bytes \(UTF-8\), too long for Milvus"):
        write_documents(archive, [too_long], FakeEmbedder(), CHUNKING)
    assert too_long.doc_id not in archive.markers()
    assert not archive.passages.query(f"doc_id == {literal(too_long.doc_id)}", ["id"])


def test_unchanged_articles_are_not_embedded_again_and_removal_takes_every_row(archive, corpus):
    embedder = FakeEmbedder()
    change = write_documents(archive, list(corpus.documents.values()), embedder, CHUNKING)
    assert embedder.encoded == 0 and len(change.unchanged) == 5
    archive.remove("002_517ffae1740f5ca3")
    assert "002_517ffae1740f5ca3" not in archive.markers()
    assert not archive.passages.query('doc_id == "002_517ffae1740f5ca3"', ["id"])


def test_writing_an_older_copy_over_an_edit_names_the_articles_it_replaced(archive, corpus):
    """On a team's archive, indexing an old folder replaces a colleague's edit: the line says which."""
    edited = dataclasses.replace(corpus.documents["001_fb70659820c0e01f"], text="Edited: 145 kilometres north of Kabul.")
    new = dataclasses.replace(edited, doc_id="009_new", text="A new article.")
    change = write_documents(archive, [edited, new], FakeEmbedder(), CHUNKING)
    assert change.replaced == ["001_fb70659820c0e01f"] and sorted(change.written) == ["001_fb70659820c0e01f", "009_new"]
    assert "2 passages embedded; 1 of them replaced another version in the archive: 001_fb70659820c0e01f)" in change.summary(archive)
    again = write_documents(archive, list(corpus.documents.values()), FakeEmbedder(), CHUNKING)  # the old copy, back
    assert again.replaced == ["001_fb70659820c0e01f"]


def test_an_archive_cut_by_older_sentence_rules_still_opens_for_reading_and_writing(spec):
    """A team's archive written before rag recorded its sentence rules is not refused after an
    upgrade: its passages still slice their articles; `rag index --force` cuts them anew."""
    embedder = FakeEmbedder()
    older = dataclasses.replace(milvus_archive.expected_manifest(embedder, CHUNKING),
                                chunking=dataclasses.asdict(CHUNKING))  # no "sentence_rules": rules 1
    MilvusArchive.create(spec, older)
    current = milvus_archive.expected_manifest(embedder, CHUNKING)
    assert milvus_archive.open_for_reading(spec, current, Path("team.toml")) is not None
    assert milvus_archive.open_for_writing(spec, current, Path("team.toml"), False, embedder, CHUNKING,
                                           lambda message: None) is not None


def test_other_settings_are_stale_with_the_reason_and_a_rebuild_replaces_the_archive(archive, spec):
    other = milvus_archive.ArchiveManifest(milvus_archive.FORMAT, "fake/bag-of-words", "fake-1", 64,
                                           ChunkSettings(max_chars=300).as_dict())
    with pytest.raises(RagError, match=r"chunking settings changed .*rag index --force --store milvus:.* --models team\.toml$"):
        milvus_archive.open_for_reading(spec, other, Path("team.toml"))
    before = archive.count()
    rebuilt = milvus_archive.open_for_writing(spec, other, Path("team.toml"), True, FakeEmbedder(), ChunkSettings(max_chars=300),
                                              lambda message: None)
    assert MilvusArchive.open(spec).articles == rebuilt.articles != archive.articles
    assert rebuilt.count()[0] == before[0] and rebuilt.count()[1] > before[1]  # every article, cut smaller


def test_a_running_reader_follows_a_rebuild_made_elsewhere(archive, spec):
    retriever = MilvusRetriever(FakeEmbedder(), archive, ArchiveArticles(archive), 60, 50)
    before = [(h.passage.doc_id, h.passage.start) for h in retriever.retrieve("Panjshir resistance", 5)]
    milvus_archive.open_for_writing(spec, archive.manifest, Path("models.toml"), True, FakeEmbedder(), CHUNKING,
                                    lambda message: None)
    assert [(h.passage.doc_id, h.passage.start) for h in retriever.retrieve("Panjshir resistance", 5)] == before
    assert retriever.archive.articles == MilvusArchive.open(spec).articles


def test_a_collection_of_another_shape_under_the_name_is_one_line(spec):
    from pymilvus import MilvusClient

    client = MilvusClient(spec.partition(":")[2])
    client.create_collection("someone_elses", dimension=8)
    client.create_alias("someone_elses", "rag")
    with pytest.raises(RagError, match=r"someone_elses .* at .*archive\.db is not a rag archive .*point --store at another"):
        MilvusArchive.open(spec)


# -- several processes, one Milvus server --------------------------------------------------

@pytest.fixture
def server(tmp_path):
    """A real Milvus gRPC server (Milvus Lite's engine behind it) on a free local port."""
    from milvus_lite.adapter.grpc.server import start_server_in_thread

    grpc_server, db, port = start_server_in_thread(str(tmp_path / "served"))
    yield f"milvus://127.0.0.1:{port}"
    grpc_server.stop(grace=2)
    db.close()


WRITER = """
import sys
import threading
from pathlib import Path
from rag.archive import read_files
from rag.corpus import ChunkSettings
from rag import milvus_archive
from tests.fakes import FakeEmbedder
spec, folder = sys.argv[1], Path(sys.argv[2])
embedder = FakeEmbedder()
archive = milvus_archive.open_for_writing(spec, milvus_archive.expected_manifest(embedder, ChunkSettings()),
                                          Path("models.toml"), False, embedder, ChunkSettings(), lambda m: None)
milvus_archive.write_documents(archive, read_files([folder])[0], embedder, ChunkSettings())
"""


def shards(tmp_path, count: int, articles: int) -> list:
    """`count` folders of `articles` articles each, all different (made from the bundled ones)."""
    texts = [p.read_text(encoding="utf-8") for p in sorted(SEEDS.glob("*.txt"))]
    folders = []
    for s in range(count):
        folder = tmp_path / f"shard-{s}"
        folder.mkdir()
        for a in range(articles):
            (folder / f"s{s}-a{a}.txt").write_text(f"Shard {s} article {a}. " + texts[a % len(texts)], encoding="utf-8")
        folders.append(folder)
    return folders


def test_two_writers_at_once_lose_nothing_and_write_nothing_twice(server, tmp_path):
    folders = shards(tmp_path, 2, 12)
    env = os.environ | {"PYTHONPATH": str(ROOT)}
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, server, str(f)], env=env, cwd=ROOT,
                                stderr=subprocess.PIPE, text=True) for f in folders]
    for w in writers:
        assert w.wait(timeout=300) == 0, w.stderr.read()
    archive = MilvusArchive.open(server)
    expected = load_corpus(folders[0]).documents | load_corpus(folders[1]).documents
    assert set(archive.markers()) == set(expected)
    rows = every_passage_row(archive)
    keys = [(r["doc_id"], r["start"], r["end"]) for r in rows]
    assert len(keys) == len(set(keys)) == len(chunk_corpus(load_corpus(folders[0]), CHUNKING)) * 2
    for doc_id, document in expected.items():
        assert ArchiveArticles(archive)[doc_id] == document


def test_a_server_that_goes_away_mid_session_is_one_line_naming_it(tmp_path):
    from milvus_lite.adapter.grpc.server import start_server_in_thread

    grpc_server, db, port = start_server_in_thread(str(tmp_path / "served"))
    archive = seeded(f"milvus://127.0.0.1:{port}")
    grpc_server.stop(grace=0)
    db.close()
    started = time.time()
    with pytest.raises(RagError, match=rf"^Milvus at http://127\.0\.0\.1:{port} failed: .*check that it runs"):
        archive.count()
    assert time.time() - started < 15


def test_a_server_restarted_mid_session_is_read_again_without_restarting_rag(tmp_path, corpus):
    """A restarted server holds the collections released; each would fail until loaded again."""
    from milvus_lite.adapter.grpc.server import start_server_in_thread

    grpc_server, db, port = start_server_in_thread(str(tmp_path / "served"))
    archive = seeded(f"milvus://127.0.0.1:{port}")
    retriever = MilvusRetriever(FakeEmbedder(), archive, ArchiveArticles(archive), 60, 50)
    before = [(r.passage.doc_id, r.passage.start) for r in retriever.retrieve("Who leads the resistance?", 3)]
    grpc_server.stop(grace=0)
    db.close()
    grpc_server, db, _ = start_server_in_thread(str(tmp_path / "served"), port=port)
    try:
        assert [(r.passage.doc_id, r.passage.start) for r in retriever.retrieve("Who leads the resistance?", 3)] == before
        assert archive.count()[0] == len(corpus.documents)
    finally:
        grpc_server.stop(grace=0)
        db.close()


def test_an_unreachable_server_is_one_line_within_the_timeout():
    started = time.time()
    with pytest.raises(RagError, match=r"cannot reach Milvus at http://127\.0\.0\.1:9 .*--store faiss"):
        MilvusArchive.open("milvus://127.0.0.1:9")
    assert time.time() - started < 15


@pytest.mark.integration
def test_rag_add_from_two_machines_at_once_with_the_real_models(server, tmp_path):
    """What a newsroom does: two `rag add` processes, each with its shard, into one server;
    then `rag ask` from a third process finds an article of each."""
    from tests.conftest import run_rag

    folders = shards(tmp_path, 2, 6)
    env = os.environ | {"RAG_STORE": server}
    adds = [subprocess.Popen([sys.executable, "-m", "rag", "add", str(f)], env=env, cwd=tmp_path, stderr=subprocess.PIPE,
                             text=True) for f in folders]
    outputs = [a.communicate(timeout=600)[1] for a in adds]
    assert [a.returncode for a in adds] == [0, 0], outputs
    archive = MilvusArchive.open(server)
    assert archive.count()[0] == 12 and len(every_passage_row(archive)) == archive.count()[1]
    answer = run_rag("ask", "--json", "--store", server, "Who leads the resistance in the Panjshir Valley?")
    assert answer.returncode == 0, answer.stderr
    cited = json.loads(answer.stdout)["citation"]
    assert cited["doc_id"].startswith(("s0-", "s1-"))


@pytest.mark.integration
def test_the_gold_questions_get_faiss_answers_from_milvus(models, pipeline, tmp_path):
    """Same articles, same models, everything in Milvus Lite: the same answers and citations."""
    from rag.assembly import build_pipeline, with_store
    from rag.gold import load_gold

    on_milvus = build_pipeline(with_store(models, f"milvus:{tmp_path / 'gold.db'}"), SEEDS,
                               embedder=pipeline.retriever.embedder, reader=pipeline.reader)
    assert isinstance(on_milvus.retriever, MilvusRetriever)
    differ = []
    for q in load_gold(ROOT / "eval" / "gold.jsonl"):
        a, b = pipeline.ask(q.question), on_milvus.ask(q.question)
        if (a.text, a.citation) != (b.text, b.citation):
            differ.append(q.id)
    assert differ == []


@pytest.mark.integration
def test_rag_ask_add_remove_and_eval_on_milvus_lite(tmp_path, seeds_copy):
    from tests.conftest import read_source, run_rag

    store = ["--store", f"milvus:{tmp_path / 'archive.db'}", "--seeds", str(seeds_copy)]
    result = run_rag("ask", "--json", "Who leads the resistance in the Panjshir Valley?", *store)
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    c = answer["citation"]
    assert read_source(c["doc_id"], seeds_copy)[c["start"]:c["end"]] == answer["answer"] == "Ahmad Massoud"
    extra = tmp_path / "new" / "valley-note.txt"
    extra.parent.mkdir()
    extra.write_text(" date 2021-09-06 The Taliban said they had taken the Panjshir valley on Monday.\n", encoding="utf-8")
    added = run_rag("add", str(extra), *store)
    assert added.returncode == 0 and "written 1 (1 passages embedded)" in added.stderr and "6 articles" in added.stderr, added.stderr
    dated = run_rag("ask", "--json", "--since", "2021-09-06", "Who said they had taken the Panjshir valley?", *store)
    cited = json.loads(dated.stdout)
    assert cited["citation"]["doc_id"] == "valley-note", dated.stderr
    shown = run_rag("show", "valley-note", "--json", *store)  # from the archive: the added file is in no seeds folder
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["text"][cited["citation"]["start"]:cited["citation"]["end"]] == cited["answer"]
    chatted = run_rag("chat", *store, stdin="/quit\n")  # its banner counts the archive, not the seeds folder's five
    assert "rag · 6 articles · 2021-08-24 … 2021-09-06" in chatted.stdout, chatted.stderr
    removed = run_rag("remove", "valley-note", *store)
    assert removed.returncode == 0 and "5 articles" in removed.stderr, removed.stderr
    unreachable = run_rag("ask", "Who?", "--store", "milvus://127.0.0.1:9", timeout=60)
    assert unreachable.returncode == 1 and "Traceback" not in unreachable.stderr
    assert unreachable.stderr.strip().splitlines()[-1].startswith("error: cannot reach Milvus at http://127.0.0.1:9")
    evaluated = run_rag("eval", "--json", *store)
    assert evaluated.returncode == 0, evaluated.stderr
    summary = json.loads(evaluated.stdout)
    assert summary["questions"] == 64 and summary["f1"] > 60, summary


def test_an_article_added_by_a_relative_path_is_cited_by_its_absolute_one(tmp_path, monkeypatch, spec):
    from rag import assembly
    from rag.config import load_models_config

    (tmp_path / "new").mkdir()
    (tmp_path / "new" / "note.txt").write_text("The Taliban said they had taken the valley on Monday.", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    config = assembly.with_store(load_models_config(ROOT / "models.toml"), spec)
    archive, _ = assembly.index_milvus(config, embedder=FakeEmbedder(), paths=[Path("new/note.txt")])
    assert ArchiveArticles(archive)["note"].source == str(tmp_path / "new" / "note.txt")


def test_rag_show_reads_an_article_from_the_archive_and_says_when_there_is_none(archive, spec, corpus, tmp_path):
    from rag.assembly import stored_articles, with_store
    from rag.config import load_models_config
    from rag.render import ArticleView

    config = load_models_config(ROOT / "models.toml")
    doc_id = next(iter(corpus.documents))
    view = ArticleView.of(stored_articles(with_store(config, spec)), doc_id, 0, 10)
    assert view.to_json()["text"] == corpus.documents[doc_id].text
    missing = f"milvus:{tmp_path / 'none' / 'archive.db'}"
    with pytest.raises(RagError, match=rf"^no archive at {re.escape(missing)}; make one with: rag index --store {re.escape(missing)}"):
        stored_articles(with_store(config, missing))
    assert not (tmp_path / "none").exists()  # a mistyped path makes no empty archive


def test_a_lite_file_in_a_new_folder_is_made_only_when_an_archive_is_created(tmp_path):
    spec = f"milvus:{tmp_path / 'new' / 'sub' / 'archive.db'}"
    assert MilvusArchive.open(spec) is None
    assert not (tmp_path / "new").exists()  # reading a mistyped path leaves nothing behind
    MilvusArchive.create(spec, milvus_archive.expected_manifest(FakeEmbedder(), CHUNKING))
    assert (tmp_path / "new" / "sub" / "archive.db").exists()
    assert MilvusArchive.open(spec) is not None


def test_a_lite_file_held_by_another_process_is_one_line(tmp_path):
    spec = f"milvus:{tmp_path / 'archive.db'}"
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from pymilvus import MilvusClient; "
                               "c = MilvusClient(sys.argv[1]); print('held', flush=True); time.sleep(60)",
                               spec.partition(":")[2]], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(RagError, match=r"^cannot open the Milvus Lite file .*archive\.db .*one process at a time"):
            MilvusArchive.open(spec)
    finally:
        holder.kill()
        holder.wait()


def test_a_request_cites_the_version_it_retrieved_while_another_sees_a_newer_one(archive, corpus):
    """rag serve answers on several threads: one request's retrieval of an edited article must not
    move the text another request's citations slice."""
    old = corpus.documents["002_517ffae1740f5ca3"]
    articles = ArchiveArticles(archive)
    retriever = MilvusRetriever(FakeEmbedder(), archive, articles, 60, 50)
    assert old.doc_id in {h.passage.doc_id for h in retriever.retrieve(old.text[:200], 45)}
    edited = dataclasses.replace(old, text="Breaking: " + old.text)
    write_documents(archive, [edited], FakeEmbedder(), CHUNKING)

    other = threading.Thread(target=lambda: retriever.retrieve(old.text[:200], 45))
    other.start()
    other.join()
    assert articles[old.doc_id] == old  # this request still slices what it retrieved
    seen_by_other = []
    reader = threading.Thread(target=lambda: (retriever.retrieve(old.text[:200], 45),
                                              seen_by_other.append(articles[old.doc_id])))
    reader.start()
    reader.join()
    assert seen_by_other == [edited]


@pytest.mark.parametrize("fusion", ["rrf", "milvus"])
def test_a_passage_copied_word_for_word_into_another_article_is_retrieved_once(archive, corpus, fusion):
    original = corpus.documents["000_882549ac45e52293"]
    write_documents(archive, [dataclasses.replace(original, doc_id="copy", path="copy.txt")], FakeEmbedder(), CHUNKING)
    retriever = MilvusRetriever(FakeEmbedder(), archive, ArchiveArticles(archive), 60, 50, fusion=fusion)
    texts = [h.passage.text for h in retriever.retrieve(original.text[:300], 10)]
    assert len(texts) == 10 and len(set(texts)) == 10  # the copies leave their places to other passages
