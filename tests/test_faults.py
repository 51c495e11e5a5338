"""Careless users, bad files and damaged state (issue: reliability). Each test is one repro
that failed before the fix: the harm is named in the test's name."""
import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest

from rag.assembly import build_pipeline

from rag import cli
from rag.config import load_models_config
from rag.corpus import ChunkSettings, chunk_document, load_corpus, read_documents
from rag.errors import BadInput, RagError
from rag.index import IndexNotUsable, IndexStore, Manifest, build_index
from rag.models import OUTPUTS, onnx_cache_dir, onnx_graph
from rag.pipeline import validate_question
from rag.reader import Reader
from rag.schema import Passage
from tests.conftest import ROOT, SEEDS, read_only, read_source, run_rag
from tests.fakes import FakeEmbedder, FakeReader


integration = pytest.mark.integration  # real models, or rag in a subprocess


@pytest.fixture
def embedder():
    return FakeEmbedder()


def fake_pipeline(index_dir: Path, **kwargs):
    return build_pipeline(load_models_config(ROOT / "models.toml"), SEEDS, index_dir, embedder=FakeEmbedder(),
                          reader=FakeReader(["five lions"]), **kwargs)


@pytest.fixture
def saved(tmp_path, embedder):
    """An index of the bundled articles saved in a fresh folder: (store, build, corpus, expected)."""
    corpus = load_corpus(SEEDS)
    store = IndexStore(tmp_path / "index")
    build = store.save(build_index(corpus, embedder, ChunkSettings(), "faiss")[0])
    expected = Manifest.expected(corpus, embedder.spec.id, embedder.spec.fingerprint(), embedder.dimension, ChunkSettings(), "faiss")
    return store, build, corpus, expected


@contextmanager
def time_limit(seconds: int):
    """Fails the test instead of hanging it."""
    def expired(signum, frame):
        raise TimeoutError(f"still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def rag_bytes(*args, stdin: bytes, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "rag", *args], input=stdin, capture_output=True, timeout=300,
                          cwd=ROOT, env={**os.environ, **(env or {})})


# 1. data loss

@integration
def test_an_index_dir_holding_other_things_is_refused_and_left_untouched(tmp_path):
    project = tmp_path / "proj"
    (project / "build-artifacts").mkdir(parents=True)
    (project / "build-artifacts" / "important.bin").write_text("precious")
    result = run_rag("index", "--index-dir", str(project))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "is not empty and is not a rag index" in result.stderr
    assert (project / "build-artifacts" / "important.bin").read_text() == "precious"


def test_a_folder_of_other_things_is_refused_first_not_after_saying_no_index_yet(tmp_path):
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "draft.txt").write_text("precious", encoding="utf-8")
    said = []
    with pytest.raises(RagError, match="is not empty and is not a rag index"):
        fake_pipeline(tmp_path / "notes", on_status=said.append)
    assert said == [] and (tmp_path / "notes" / "draft.txt").read_text(encoding="utf-8") == "precious"


def test_only_builds_rag_made_are_removed_from_its_own_folder(saved, embedder):
    store, build, corpus, _ = saved
    users = store.directory / "build-artifacts"
    users.mkdir()
    lookalike = store.directory / "build-20200101-000000-1"  # named like a build, but not marked as one
    lookalike.mkdir()
    (lookalike / "notes.txt").write_text("mine")
    store.save(build_index(corpus, embedder, ChunkSettings(), "faiss")[0])
    assert users.is_dir() and (lookalike / "notes.txt").is_file() and not build.exists()


# 2. batches

@integration
@pytest.mark.parametrize("env", [{}, {"PYTHONIOENCODING": "utf-8"}, {"LC_ALL": "C"}])
def test_an_undecodable_line_is_its_own_error_and_the_batch_goes_on(env, tmp_path):
    questions = b"What does Panjshir mean?\n\xff\xfe bad\n\nWho is Ahmad Massoud?\n"
    result = rag_bytes("ask", "--json", "--index-dir", str(tmp_path / "index"), stdin=questions, env=env)
    assert result.returncode == 1 and b"Traceback" not in result.stderr
    rows = [json.loads(line) for line in result.stdout.decode("utf-8").splitlines()]
    assert [r["line"] for r in rows] == [1, 2, 4]
    assert rows[0]["answer"] == "five lions"
    assert set(rows[1]) == {"question", "error", "line"} and "not UTF-8" in rows[1]["error"]
    assert rows[2]["question"] == "Who is Ahmad Massoud?" and "error" not in rows[2]


@integration
def test_piped_chat_names_the_line_of_each_question_it_cannot_take_and_goes_on(tmp_path):
    result = rag_bytes("chat", "--index-dir", str(tmp_path / "index"), stdin=b"\xff bad\n???\nWhat does Panjshir mean?\n",
                       env={"XDG_DATA_HOME": str(tmp_path)})
    text = result.stdout.decode("utf-8")
    assert result.returncode == 0 and b"Traceback" not in result.stderr
    assert "line 1: the line is not UTF-8 text" in text and "line 2: the question has no words" in text
    assert "five lions" in text


@integration
@pytest.mark.parametrize("output", ["--json", "--why"])  # --why: plain text, printed by rich
def test_a_closed_output_pipe_is_not_an_error(tmp_path, output):
    index = tmp_path / "index"
    shell = (f"printf 'What does Panjshir mean?\\nWho is Ahmad Massoud?\\nWhat?\\n' | "
             f"{sys.executable} -m rag ask {output} --index-dir {index} | head -1 > /dev/null; echo ${{PIPESTATUS[1]}}")
    result = subprocess.run(["bash", "-c", shell], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert result.stdout.strip() == "0", result.stderr
    assert "Traceback" not in result.stderr and "Exception ignored" not in result.stderr


# 3. hangs and unbounded reads in seeds/

def test_fifos_devices_huge_and_binary_files_are_skipped_without_reading_them(tmp_path):
    seeds = tmp_path / "seeds"
    shutil.copytree(SEEDS, seeds)
    os.mkfifo(seeds / "x.txt")
    (seeds / "z.txt").symlink_to("/dev/zero")
    with (seeds / "huge.txt").open("wb") as f:  # sparse: 2 GB on paper, nothing on disk
        f.truncate(2_000_000_000)
    (seeds / "binary.txt").write_bytes(b"\0" * 10 + b"x" * 5_000_000)
    with time_limit(20):
        corpus = load_corpus(seeds)
    skipped = " | ".join(corpus.skipped)
    assert "x.txt: not a regular file" in skipped and "z.txt: not a regular file" in skipped
    assert "huge.txt: too big for an article (2,000.0 MB; the limit is 10 MB)" in skipped
    assert "binary.txt: binary file" in skipped
    assert len(corpus.documents) == 5


def test_symlinks_to_files_elsewhere_are_read_and_subfolders_and_hidden_files_are_named(tmp_path):
    seeds = tmp_path / "seeds"
    seeds.mkdir()
    outside = tmp_path / "elsewhere.txt"
    outside.write_text("An article kept elsewhere.")
    (seeds / "linked.txt").symlink_to(outside)
    (seeds / "2021").mkdir()
    (seeds / "2021" / "nested.txt").write_text("Nested.")
    (seeds / ".txt").write_text("A file with no name.")
    (seeds / "report.pdf").write_bytes(b"%PDF-1.7")
    (seeds / "README").write_text("What this folder is.")
    corpus = load_corpus(seeds)
    assert set(corpus.documents) == {"linked"}
    assert ".txt: hidden file, not read" in corpus.skipped and "2021: subfolders are not read" in corpus.skipped
    assert "README, report.pdf: not a kind of file rag reads (.txt, .md, .markdown, .html, .htm, .jsonl)" in corpus.skipped


# 4. silent corruption

def test_overwritten_bytes_in_the_vectors_are_detected(saved):
    store, build, corpus, expected = saved
    with (build / "vectors.faiss").open("r+b") as f:  # dd bs=1 seek=20000 count=8192 conv=notrunc
        f.seek(20000)
        f.write(os.urandom(8192))
    with pytest.raises(IndexNotUsable, match="vectors.faiss does not match its checksum"):
        store.load(corpus, expected)


# 5. corrupt states that never healed

@pytest.mark.parametrize("damage, message", [
    (lambda store, build: (store.directory / "CURRENT").write_bytes(b"\xff\xfe\x00"), "pointer .* unreadable"),
    (lambda store, build: ((store.directory / "CURRENT").unlink(), (store.directory / "CURRENT").mkdir()), "pointer .* unreadable"),
    (lambda store, build: (store.directory / "CURRENT").write_text("../../etc\n"), "names no build"),
    (lambda store, build: (build / "passages.jsonl").write_text("[1, 2]\n"), "checksum"),
    (lambda store, build: _edit_manifest(build, documents=["not", "a", "dict"]), "documents is a list"),
    (lambda store, build: _edit_manifest(build, passages="45"), "passages is a str"),
    (lambda store, build: (build / "manifest.json").write_text("[]"), "not a JSON object"),
])
def test_every_damaged_state_is_reported_as_unusable(saved, damage, message):
    store, build, corpus, expected = saved
    damage(store, build)
    with pytest.raises(IndexNotUsable, match=message):
        store.load(corpus, expected)


def _edit_manifest(build: Path, **changes) -> None:
    manifest = json.loads((build / "manifest.json").read_text())
    (build / "manifest.json").write_text(json.dumps({**manifest, **changes}))


def test_a_damaged_pointer_heals_on_the_next_question(saved):
    store, _, _, _ = saved
    (store.directory / "CURRENT").write_bytes(b"\xff\xfe")
    messages = []
    pipeline = fake_pipeline(store.directory, on_status=messages.append)
    assert any("unreadable" in m for m in messages)
    assert pipeline.ask("What does Panjshir mean?").text == "five lions"
    assert store.current_build is not None


@integration
def test_another_models_graph_in_the_cache_is_replaced(models, tmp_path, monkeypatch):
    embedder_graph = onnx_graph(models.embedder, "AutoModel")
    reader_graph = onnx_graph(models.reader, "AutoModelForQuestionAnswering")
    good_reader = Reader(models.reader)
    monkeypatch.setenv("RAG_CACHE_DIR", str(tmp_path))
    onnx_cache_dir().mkdir(parents=True)
    wrong = onnx_cache_dir() / reader_graph.name
    shutil.copy(embedder_graph, wrong)  # the embedder's graph under the reader's name
    messages = []
    reader = Reader(models.reader, messages.append)
    assert any(str(wrong) in m and "another model's graph" in m for m in messages)
    doc = load_corpus(SEEDS).documents["000_882549ac45e52293"]
    passages = [Passage(doc.doc_id, 0, len(doc.text), doc.text)]
    assert reader.read("What does Panjshir mean?", passages) == good_reader.read("What does Panjshir mean?", passages)
    import onnxruntime

    assert [o.name for o in onnxruntime.InferenceSession(str(wrong)).get_outputs()] == OUTPUTS["AutoModelForQuestionAnswering"]


@integration
def test_an_unreadable_cached_graph_is_an_error_and_is_kept(models, monkeypatch):
    graph = onnx_graph(models.reader, "AutoModelForQuestionAnswering")
    real_open = Path.open

    def denied(self, *args, **kwargs):
        if self == graph:
            raise PermissionError(13, "Permission denied")
        return real_open(self, *args, **kwargs)

    monkeypatch.setattr(Path, "open", denied)
    with pytest.raises(RagError, match="cannot read the cached ONNX model .*Permission denied.*fix its permissions"):
        Reader(models.reader)
    monkeypatch.undo()
    assert graph.is_file()


@integration
def test_an_abandoned_export_is_cleaned_up(models):
    graph = onnx_graph(models.reader, "AutoModelForQuestionAnswering")
    abandoned = graph.with_name(f"{graph.name}.999999999.tmp")
    abandoned.write_bytes(b"half a graph")
    onnx_graph(models.reader, "AutoModelForQuestionAnswering")
    assert not abandoned.exists()


# 6. rich markup in user text

@integration
def test_brackets_in_paths_and_messages_are_printed_as_they_are(tmp_path):
    result = run_rag("ask", "Who?", "--seeds", str(tmp_path / "a[/x]b"))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip() == f"error: articles folder not found: {tmp_path / 'a[/x]b'}"
    models = tmp_path / "models[1].toml"
    models.write_text((ROOT / "models.toml").read_text().replace("max_seq_len = 384", "max_seq_len = true"))
    result = run_rag("ask", "Who?", "--models", str(models))
    assert result.stderr.strip() == f"error: {models}: [reader] max_seq_len = True is not valid: expected a whole number"


# 7. models.toml values of the wrong type

def test_a_setting_of_the_wrong_type_names_file_table_key_value_and_type(tmp_path):
    models = tmp_path / "models.toml"
    models.write_text((ROOT / "models.toml").read_text().replace("batch_size = 32", 'batch_size = "thirty-two"'))
    with pytest.raises(RagError) as error:
        load_models_config(models)
    assert str(error.value) == f"{models}: [embedder] batch_size = 'thirty-two' is not valid: expected a whole number"
    models.write_text((ROOT / "models.toml").read_text().replace("threshold = ", "treshold = "))
    with pytest.raises(RagError, match=r"\[reader.abstention\] has an unknown key 'treshold'"):
        load_models_config(models)


# 8. late failures

def test_an_index_dir_that_is_a_file_fails_before_any_embedding(tmp_path):
    not_a_folder = tmp_path / "index"
    not_a_folder.write_text("")
    embedded, said = [], []
    with pytest.raises(RagError, match="is a file, not a folder"):
        fake_pipeline(not_a_folder, on_progress=lambda done, total: embedded.append(done), on_status=said.append)
    assert said == []  # not first "the index pointer … is unreadable; bringing it up to date"
    with pytest.raises(RagError, match="cannot create the index folder"):
        fake_pipeline(not_a_folder / "below", on_progress=lambda done, total: embedded.append(done), on_status=said.append)
    assert embedded == [] and said == []


@integration
def test_eval_with_a_folder_for_predictions_fails_before_answering(tmp_path):
    result = run_rag("eval", "--predictions", str(tmp_path), "--index-dir", str(tmp_path / "index"))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert f"cannot write {tmp_path}: it is a folder" in result.stderr
    assert not (tmp_path / "index").exists()


# 9. a reader racing a rebuild

def test_a_reader_racing_rebuilds_always_loads_an_index(saved, embedder):
    store, _, corpus, expected = saved
    index = build_index(corpus, embedder, ChunkSettings(), "faiss")[0]
    failures, stop = [], threading.Event()

    def rebuild():
        for _ in range(15):
            store.save(index)
        stop.set()

    writer = threading.Thread(target=rebuild, daemon=True)
    writer.start()
    loads, deadline = 0, time.monotonic() + 60
    while not stop.is_set() and time.monotonic() < deadline:  # back to back, with no pause: the writer must still get its turn
        try:
            store.load(corpus, expected)
            loads += 1
        except IndexNotUsable as why:
            failures.append(str(why))
    writer.join(timeout=60)
    assert not writer.is_alive(), "the writer was starved by the readers"
    assert failures == [] and loads > 0


# 10. smaller ones

def test_a_date_line_after_a_byte_order_mark_is_read(tmp_path):
    path = tmp_path / "bom.txt"
    path.write_bytes("\ufeff date 2021-09-01\nThe Taliban said so.".encode("utf-8"))
    (doc,), _ = read_documents(path)
    assert doc.date == "2021-09-01" and doc.text[doc.body_start:].strip() == "The Taliban said so."


def test_builds_left_by_killed_runs_are_removed_on_the_next_open(saved):
    store, build, _, _ = saved
    stale = store.directory / "build-20200101-000000-4242"
    stale.mkdir()
    (stale / ".rag-build").write_text("")
    fake_pipeline(store.directory)
    assert not stale.exists() and build.exists()


@pytest.mark.parametrize("question", ["\u200b\u200b", "\u200b \ufeff", "?!", "\udcff who"])
def test_questions_without_words_or_with_broken_text_are_refused(question):
    with pytest.raises(BadInput):
        validate_question(question)


@integration
def test_usage_errors_are_one_line():
    result = run_rag("ask", "--no-such-option")
    assert result.returncode == 2
    assert result.stderr.strip() == "error: No such option: --no-such-option (see rag ask --help)"


def test_the_switch_to_a_new_build_is_made_durable(saved, embedder, monkeypatch):
    store, _, corpus, _ = saved
    import rag.index as index_module

    events = []
    real_replace = os.replace
    monkeypatch.setattr(index_module.os, "replace", lambda a, b: (events.append(("replace", Path(b).name)), real_replace(a, b)))
    monkeypatch.setattr(index_module, "fsync_dir", lambda folder: events.append(("fsync", Path(folder))))
    store.save(build_index(corpus, embedder, ChunkSettings(), "faiss")[0])
    switched = events.index(("replace", "CURRENT"))
    assert ("fsync", store.directory) in events[switched + 1:]


def test_unexpected_errors_are_one_line_and_rag_debug_shows_the_traceback(monkeypatch, capsys):
    def broken(**kwargs):
        raise ZeroDivisionError("boom")

    monkeypatch.setattr(cli, "app", broken)
    for debug, traceback_shown in (("", False), ("1", True)):
        monkeypatch.setenv("RAG_DEBUG", debug)
        with pytest.raises(SystemExit) as exit_:
            cli.main()
        err = capsys.readouterr().err
        assert exit_.value.code == 1 and "unexpected error: ZeroDivisionError: boom" in err
        assert ("Traceback" in err) == traceback_shown


# found in review

@pytest.mark.parametrize("table, key, value", [("chunking", "max_chars", 0), ("chunking", "overlap_sentences", -1),
                                               ("retrieval", "rrf_k", -1), ("retrieval", "top_k", 0)])
def test_settings_out_of_range_are_refused_with_their_name(tmp_path, table, key, value):
    models = tmp_path / "models.toml"
    models.write_text((ROOT / "models.toml").read_text() + f"\n[{table}]\n{key} = {value}\n")
    with pytest.raises(RagError, match=rf"\[{table}\] {key} = {value} is not valid: expected at least"):
        load_models_config(models)


@pytest.mark.parametrize("key, value, says", [
    ("stride", "400", r"\[reader\] stride = 400 is not valid: it must be under .* = 285"),
    ("threshold", "nan", r"\[reader.abstention\] threshold = nan is not valid: expected a finite number"),
    ("threshold", "7", r"\[reader.abstention\] threshold = 7 is not valid: expected at most 1.0"),
    ("threshold", "-1", r"\[reader.abstention\] threshold = -1 is not valid: expected at least 0.0"),
    ("margin", "inf", r"\[reader.abstention\] margin = inf is not valid: expected a finite number"),
])
def test_reader_settings_that_could_never_work_are_refused_as_the_file_is_read(tmp_path, key, value, says):
    shipped = (ROOT / "models.toml").read_text()
    models = tmp_path / "models.toml"
    models.write_text(re.sub(rf"^{key} = .*$", f"{key} = {value}", shipped, count=1, flags=re.MULTILINE))
    with pytest.raises(RagError, match=says):
        load_models_config(models)


def test_an_article_renamed_keeps_its_vectors_under_its_new_id(tmp_path):
    """A file renamed (an archive's files given a date prefix) was embedded again whole."""
    seeds = tmp_path / "seeds"
    shutil.copytree(SEEDS, seeds)
    fake_pipeline_over(seeds, tmp_path / "index")
    (seeds / "001_fb70659820c0e01f.txt").rename(seeds / "2021-08-25-panjshir.txt")
    (seeds / "003_1053def13e2cd472.txt").unlink()  # gone, and its text comes back under another name twice
    for name in ("copy-a.txt", "copy-b.txt"):
        (seeds / name).write_text(read_source("003_1053def13e2cd472"), encoding="utf-8")
    said, embedder = [], FakeEmbedder()
    pipeline = build_pipeline(load_models_config(ROOT / "models.toml"), seeds, tmp_path / "index", embedder=embedder,
                              reader=FakeReader([]), on_status=said.append)
    third = len(chunk_document(pipeline.corpus.documents["copy-b"], load_models_config(ROOT / "models.toml").chunking))
    assert embedder.encoded == third  # the second copy of a text, and only it, is new
    renamed = [n for n, p in enumerate(pipeline.retriever.passages) if p.doc_id == "2021-08-25-panjshir"]
    assert renamed and not any(p.doc_id == "001_fb70659820c0e01f" for p in pipeline.retriever.passages)
    first = pipeline.retriever.passages[renamed[0]]
    assert pipeline.retriever.vectors.search(FakeEmbedder().encode([first.text])[0], 1)[0][0] == renamed[0]
    (seeds / "000_882549ac45e52293.txt").rename(seeds / "swap.txt")  # two files swap their names
    (seeds / "002_517ffae1740f5ca3.txt").rename(seeds / "000_882549ac45e52293.txt")
    (seeds / "swap.txt").rename(seeds / "002_517ffae1740f5ca3.txt")
    swapped = FakeEmbedder()
    build_pipeline(load_models_config(ROOT / "models.toml"), seeds, tmp_path / "index", embedder=swapped, reader=FakeReader([]))
    assert swapped.encoded == 0


def test_a_damaged_checkpoint_chunk_is_embedded_again(tmp_path):
    from rag.checkpoint import EmbeddingCheckpoint

    checkpoint = EmbeddingCheckpoint(tmp_path / "cp", "e")
    checkpoint.save_chunk(["a"], np.ones((1, 4), dtype=np.float32))
    (tmp_path / "cp" / "chunk-000009-1.npz").write_bytes(b"")  # as a power cut may leave it
    (tmp_path / "cp" / "chunk-000010-1.npz").write_bytes(b"PK\x03\x04 cut off")
    assert set(checkpoint.load()) == {"a"} and len(list((tmp_path / "cp").glob("chunk-*"))) == 1


def test_articles_with_no_text_to_index_are_one_clear_error(tmp_path):
    seeds = tmp_path / "seeds"
    seeds.mkdir()
    (seeds / "a.txt").write_text(" date 2024-01-01\n")
    with pytest.raises(RagError, match=r"no readable articles .* \(a\.txt: no words in it\)"):
        fake_pipeline_over(seeds, tmp_path / "index")


def fake_pipeline_over(seeds: Path, index_dir: Path, reader: FakeReader | None = None):
    return build_pipeline(load_models_config(ROOT / "models.toml"), seeds, index_dir, embedder=FakeEmbedder(),
                          reader=reader or FakeReader([]))


def test_week_dates_are_not_days():
    from rag.dates import DateRange

    with pytest.raises(BadInput, match="is not a date"):
        DateRange.parse("2024-W01-1", None)


def test_remove_checks_every_id_before_moving_anything(tmp_path):
    from rag.archive import remove_documents

    seeds = tmp_path / "seeds"
    shutil.copytree(SEEDS, seeds)
    documents = load_corpus(seeds).documents
    with pytest.raises(RagError, match="no article 'nosuch'.*nothing was removed"):
        remove_documents(seeds, ["000_882549ac45e52293", "nosuch"], documents, tmp_path / "trash")
    with pytest.raises(RagError, match=r"no article 'seeds/001_fb70659820c0e01f\.txt' in .* \(rag remove takes article "
                                       r"ids: that file's is '001_fb70659820c0e01f'\); nothing was removed"):
        remove_documents(seeds, ["seeds/001_fb70659820c0e01f.txt"], documents, tmp_path / "trash")
    assert (seeds / "000_882549ac45e52293.txt").is_file()
    remove_documents(seeds, ["000_882549ac45e52293", "000_882549ac45e52293"], documents, tmp_path / "trash")
    assert len(list((tmp_path / "trash").iterdir())) == 1


def test_removing_every_article_is_refused_before_any_file_moves(tmp_path):
    """The file moved, then the index could not be made of nothing: exit 1 with the archive emptied."""
    from rag.archive import remove_documents

    seeds = tmp_path / "seeds"
    shutil.copytree(SEEDS, seeds)
    documents = load_corpus(seeds).documents
    with pytest.raises(RagError, match="would remove every article .* nothing was removed"):
        remove_documents(seeds, list(documents), documents, tmp_path / "trash")
    assert sorted(p.name for p in seeds.iterdir()) == sorted(p.name for p in SEEDS.iterdir())


def test_adding_a_different_file_of_the_same_name_keeps_the_old_one(tmp_path):
    from rag.archive import add_files

    seeds, elsewhere = tmp_path / "seeds", tmp_path / "downloads"
    seeds.mkdir()
    elsewhere.mkdir()
    (seeds / "report.txt").write_text("The first report.")
    (elsewhere / "report.txt").write_text("A different report.")
    change = add_files(seeds, [elsewhere / "report.txt"], tmp_path / "trash")
    assert change.updated == ["report.txt"] and (seeds / "report.txt").read_text() == "A different report."
    (kept,) = (tmp_path / "trash").glob("*/report.txt")
    assert kept.read_text() == "The first report."


def test_a_hidden_file_named_to_add_is_skipped_not_copied_in(tmp_path):
    from rag.archive import add_files

    seeds, inbox = tmp_path / "seeds", tmp_path / "inbox"
    seeds.mkdir()
    inbox.mkdir()
    (inbox / ".note.txt").write_text("A note the articles folder would never read.")
    change = add_files(seeds, [inbox / ".note.txt"], tmp_path / "trash")
    assert change.added == [] and change.skipped == [f"{inbox / '.note.txt'}: hidden file, not read"]
    assert list(seeds.iterdir()) == []


def test_an_articles_folder_that_cannot_be_listed_is_one_line(tmp_path, monkeypatch):
    seeds = tmp_path / "seeds"
    seeds.mkdir()

    def refused(self):
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "iterdir", refused)  # as chmod 000 does for a user who is not root
    with pytest.raises(RagError, match=rf"^cannot read the articles folder {re.escape(str(seeds))}: Permission denied$"):
        load_corpus(seeds)


def test_jsonl_text_may_hold_line_separators(tmp_path):
    folder = tmp_path / "seeds"
    folder.mkdir()
    (folder / "x.jsonl").write_text(json.dumps({"id": "1", "text": "One\u2028two."}, ensure_ascii=False) + "\n",
                                    encoding="utf-8")
    assert load_corpus(folder).documents["x.jsonl#1"].text == "One\u2028two."


def test_status_lines_with_brackets_do_not_break_the_chat_spinner():
    from rich.console import Console

    from rag.chat import BackgroundLoad

    loading = BackgroundLoad(lambda set_state: (set_state("loading [/b] from /data/[old]/"), time.sleep(0.3))[1])
    loading.state = "loading [/b] from /data/[old]/"
    console = Console(markup=False, force_terminal=True, file=open(os.devnull, "w"))
    loading.result(console)  # raised MarkupError before


def test_a_milvus_store_without_pymilvus_is_one_line_that_says_what_to_install(monkeypatch, tmp_path):
    from rag.errors import RagError
    from rag.milvus_archive import MilvusArchive

    monkeypatch.setitem(sys.modules, "pymilvus", None)  # as if it were not installed
    with pytest.raises(RagError, match=r"^the milvus store needs pymilvus and milvus-lite: pip install -e '\.\[milvus\]'$"):
        MilvusArchive.open(f"milvus:{tmp_path / 'archive.db'}")


def test_a_question_asked_during_another_build_waits_for_it_and_embeds_nothing_itself(tmp_path):
    """`rag add` copied new articles in and is building: a question asked now found the index
    stale and embedded everything again beside it (twice the CPU, for hours at archive scale)."""
    seeds = tmp_path / "seeds"
    shutil.copytree(SEEDS, seeds)
    config = load_models_config(ROOT / "models.toml")
    open_pipeline = lambda on_status: build_pipeline(config, seeds, tmp_path / "index", embedder=FakeEmbedder(),  # noqa: E731
                                                     reader=FakeReader([]), on_status=on_status)
    open_pipeline(lambda message: None)
    (seeds / "005_new.txt").write_text("The ferry between Calder and Marsh End was cancelled.", encoding="utf-8")
    store, said, asked = IndexStore(tmp_path / "index"), [], []
    with store.building():  # the add's build
        question = threading.Thread(target=lambda: asked.append(open_pipeline(said.append)))
        question.start()
        deadline = time.time() + 30
        while not any("waiting for it to finish" in m for m in said):
            assert time.time() < deadline and question.is_alive(), f"the question never waited: {said}"
            time.sleep(0.05)
        embedder = FakeEmbedder()  # what the add builds and saves, holding the lock
        built, _ = build_index(load_corpus(seeds), embedder, config.chunking, config.retrieval.vector_store)
        store.save(built)
    question.join(timeout=30)
    assert not any(m.startswith("indexed ") for m in said)  # it loaded the add's index: nothing embedded
    assert [p.doc_id for p in asked[0].retriever.passages] == [p.doc_id for p in built.passages]
    assert "005_new" in {p.doc_id for p in built.passages}


def _indexed_seeds(tmp_path):
    """What the opening of a pipeline over the bundled articles says, and a function that opens
    one (the fake models), the index built once already."""
    config = load_models_config(ROOT / "models.toml")
    said = []
    open_pipeline = lambda: build_pipeline(config, SEEDS, tmp_path / "index", embedder=FakeEmbedder(),  # noqa: E731
                                           reader=FakeReader([]), on_status=said.append)
    open_pipeline()
    return said, open_pipeline


def test_a_damaged_keyword_index_is_rebuilt_without_embedding_a_passage_again(tmp_path):
    said, open_pipeline = _indexed_seeds(tmp_path)
    build = IndexStore(tmp_path / "index").current_build
    (next((build / "keywords").iterdir())).unlink()
    open_pipeline()
    assert "unreadable" in said[-2] and said[-1].endswith("(0 embedded, 45 reused)")


def test_an_index_with_the_older_keyword_layout_is_read_again_keeping_its_vectors(tmp_path):
    """Indexes written before the postings kept bm25s's scores in bm25/: an archive's vectors
    took hours to embed, so only the keyword index is built again, and the user is told why."""
    said, open_pipeline = _indexed_seeds(tmp_path)
    build = IndexStore(tmp_path / "index").current_build
    (build / "keywords").rename(build / "bm25")  # its files vouched for under that name, as they were
    manifest = (build / "manifest.json").read_text(encoding="utf-8")
    (build / "manifest.json").write_text(manifest.replace('"keywords/', '"bm25/'), encoding="utf-8")
    pipeline = open_pipeline()
    assert "keyword index is in an older layout" in said[-2] and said[-1].endswith("(0 embedded, 45 reused)")
    assert pipeline.retriever.keywords.ranking("What does Panjshir mean?", 3)[0]
    before = len(said)
    open_pipeline()
    assert said[before:] == []  # read as it is from then on: nothing built, nothing to say


def test_an_index_whose_words_were_cut_by_other_rules_has_its_keyword_index_built_again(tmp_path, monkeypatch):
    """Kept postings are never cut into words again: other rules (a bm25s with other stop words)
    must not leave old passages scored by the old ones beside new ones."""
    from rag.retrieval import keyword

    said, open_pipeline = _indexed_seeds(tmp_path)
    monkeypatch.setattr(keyword, "stop_words", lambda: frozenset({"the", "panjshir"}))
    keyword.word_rules.cache_clear()
    try:
        pipeline = open_pipeline()
        assert "words were cut by other rules" in said[-2] and said[-1].endswith("(0 embedded, 45 reused)")
        whole = keyword.KeywordIndex.build([p.text for p in pipeline.retriever.passages])
        assert np.array_equal(pipeline.retriever.keywords.scores("Panjshir valley"), whole.scores("Panjshir valley"))
    finally:
        keyword.word_rules.cache_clear()


def _indexed_copy_of_the_seeds_and_a_new_article(tmp_path):
    """A copy of the bundled articles, indexed (the fake models), then a new article written into
    it; with the config and a function that opens a pipeline over it, bringing the index up to date."""
    seeds = tmp_path / "seeds"
    shutil.copytree(SEEDS, seeds)
    config = load_models_config(ROOT / "models.toml")
    open_pipeline = lambda: build_pipeline(config, seeds, tmp_path / "index", embedder=FakeEmbedder(),  # noqa: E731
                                           reader=FakeReader([]))
    open_pipeline()
    (seeds / "005_ferry.txt").write_text("The ferry leaves at ten. It returns at noon.", encoding="utf-8")
    return seeds, config, open_pipeline


def test_a_keyword_file_written_wrong_but_vouched_for_is_built_again_not_a_failed_question(tmp_path, monkeypatch):
    """A file that matches its checksum may still have been written wrong (by a bug): reading it
    must not make a question fail on the word it spoils."""
    from rag.index import _sha256
    from rag.retrieval import keyword

    said, open_pipeline = _indexed_seeds(tmp_path)
    build = IndexStore(tmp_path / "index").current_build
    postings = build / "keywords" / "passages.npy"
    spoiled = np.load(postings)
    spoiled[0] = 999_999
    np.save(postings, spoiled)
    manifest = json.loads((build / "manifest.json").read_text(encoding="utf-8"))
    manifest["files"]["keywords/passages.npy"] = _sha256(postings)
    (build / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    monkeypatch.setattr("rag.index.SAYS_WHAT_IT_DOES_FROM", 1)
    pipeline = open_pipeline()
    assert "names passages it does not hold" in said[-4]
    assert said[-3].startswith("building the keyword index of 45 passages (the stored one cannot be updated: "
                               "the keyword index names passages it does not hold)")
    assert said[-1].endswith("(0 embedded, 45 reused)")
    whole = keyword.KeywordIndex.build([p.text for p in pipeline.retriever.passages])
    for word in whole.words:
        assert np.array_equal(pipeline.retriever.keywords.scores(word), whole.scores(word))


def test_an_update_reads_only_the_new_passages_into_the_keyword_index(tmp_path, monkeypatch):
    """Reading every passage again for BM25 was most of an update's time at archive scale."""
    from rag.retrieval import keyword

    seeds, _, open_pipeline = _indexed_copy_of_the_seeds_and_a_new_article(tmp_path)
    (seeds / "002_517ffae1740f5ca3.txt").unlink()
    read = []
    real = keyword._postings
    monkeypatch.setattr(keyword, "_postings", lambda texts, ids: read.extend(texts) or real(texts, ids))
    pipeline = open_pipeline()
    assert read == ["The ferry leaves at ten. It returns at noon."]
    whole = keyword.KeywordIndex.build([p.text for p in pipeline.retriever.passages])
    for question in ("When does the ferry leave?", "What does Panjshir mean?", "Who leads the resistance?"):
        assert np.array_equal(pipeline.retriever.keywords.scores(question), whole.scores(question))


def test_an_update_of_an_ivf_index_keeps_its_clusters_and_finds_the_new_article(tmp_path, monkeypatch):
    """Training an archive's clusters again (k-means, then every vector placed again) made an
    update at a million passages take 33 s instead of 3 (eval/ivf_update.py)."""
    from rag.retrieval import faiss_store

    monkeypatch.setattr(faiss_store, "EXACT_BELOW", 20)  # the bundled articles' 45 passages make an IVF index
    seeds, _, open_pipeline = _indexed_copy_of_the_seeds_and_a_new_article(tmp_path)
    (seeds / "002_517ffae1740f5ca3.txt").unlink()
    trained = []
    real = faiss_store._trained_ivf
    monkeypatch.setattr(faiss_store, "_trained_ivf", lambda ids, rows: trained.append(len(ids)) or real(ids, rows))
    pipeline = open_pipeline()
    store, passages = pipeline.retriever.vectors, pipeline.retriever.passages
    assert trained == [] and store.kind == "ivf" and len(store) == len(passages)
    assert store.clusters.trained_for == 45 and store.clusters.added_since == 1
    ferry = next(n for n, p in enumerate(passages) if p.doc_id == "005_ferry")
    assert store.search(FakeEmbedder().encode([passages[ferry].text])[0], 1)[0][0] == ferry
    for n in (0, len(passages) - 1):  # each kept vector under its passage's new number
        np.testing.assert_allclose(store.vectors([n]), FakeEmbedder().encode([passages[n].text]), atol=1e-6)


@pytest.mark.parametrize("command", ["add", "remove"])
def test_an_add_or_remove_reads_each_article_once_and_the_index_matches_a_fresh_read(tmp_path, monkeypatch, command):
    """rag add reads the folder for the ids it holds, then again for the index (and rag remove
    for the ids it removes): reading every article twice was seconds of each change at a
    million passages. The second read takes every file that stands as it did from the first."""
    from collections import Counter

    from rag import assembly, corpus

    monkeypatch.setattr(corpus, "RACY_S", 0)  # the files were written a moment ago
    seeds = tmp_path / "seeds"
    shutil.copytree(SEEDS, seeds)
    (seeds / "notes.md").write_text("# Notes\n\nThe valley has one road.\n", encoding="utf-8")  # a converted file too
    config = load_models_config(ROOT / "models.toml")
    build_pipeline(config, seeds, tmp_path / "index", embedder=FakeEmbedder(), reader=FakeReader([]))
    new = tmp_path / "005_ferry.txt"
    new.write_text("The ferry leaves at ten. It returns at noon.", encoding="utf-8")
    read = Counter()
    real = corpus.read_article_bytes
    monkeypatch.setattr(corpus, "read_article_bytes", lambda path: read.update([Path(path).name]) or real(path))
    if command == "add":
        assembly.add_articles(config, [new], seeds, tmp_path / "index", embedder=FakeEmbedder())
        assert read == Counter({name: 1 for name in os.listdir(SEEDS)} | {"notes.md": 1, "005_ferry.txt": 2})  # the new one: where it comes from, then in the folder
    else:
        assembly.remove_articles(config, ["001_fb70659820c0e01f"], seeds, tmp_path / "index", embedder=FakeEmbedder())
        assert read == Counter({name: 1 for name in os.listdir(SEEDS)} | {"notes.md": 1})  # the removed one: for its id
    store = IndexStore(tmp_path / "index")
    fresh = load_corpus(seeds)
    manifest = Manifest.expected(fresh, FakeEmbedder.spec.id, FakeEmbedder.spec.fingerprint(), FakeEmbedder.dimension,
                                 config.chunking, config.retrieval.vector_store)
    assert store.load(fresh, manifest).manifest.documents == manifest.documents  # up to date with the folder as it is


def test_a_file_replaced_by_one_of_the_same_size_is_read_again_and_indexed(tmp_path, monkeypatch):
    """The second read of an add takes a file from the first only while it stands as it did:
    the file the add itself replaces (another inode), one edited in place with its
    modification time set back (its change time moves), are read again."""
    from rag import assembly, corpus

    monkeypatch.setattr(corpus, "RACY_S", 0)
    seeds = tmp_path / "seeds"
    seeds.mkdir()
    (seeds / "a.txt").write_text("The ferry leaves at ten.", encoding="utf-8")
    (seeds / "b.md").write_text("# B\n\nThe bus leaves at six.\n", encoding="utf-8")
    config = load_models_config(ROOT / "models.toml")
    build_pipeline(config, seeds, tmp_path / "index", embedder=FakeEmbedder(), reader=FakeReader([]))
    first = corpus.load_corpus(seeds)
    replacement = tmp_path / "a.txt"
    replacement.write_text("The train leaves at two.", encoding="utf-8")  # the same size
    assert replacement.stat().st_size == (seeds / "a.txt").stat().st_size
    assembly.add_articles(config, [replacement], seeds, tmp_path / "index", embedder=FakeEmbedder())
    edited = seeds / "b.md"
    times = edited.stat()
    edited.write_text("# B\n\nThe car leaves at six.\n", encoding="utf-8")
    os.utime(edited, ns=(times.st_atime_ns, times.st_mtime_ns))
    again = corpus.load_corpus(seeds, earlier=first)
    assert again.documents["a"].text == "The train leaves at two."
    assert "car" in again.documents["b.md"].text
    assert again.documents == corpus.load_corpus(seeds).documents
    store = IndexStore(tmp_path / "index")
    stored = json.loads((store.current_build / "manifest.json").read_text(encoding="utf-8"))["documents"]
    after_add = Manifest.expected(corpus.load_corpus(seeds), FakeEmbedder.spec.id, "", 0, config.chunking, "faiss").documents
    assert stored["a"] == after_add["a"]  # the add indexed the new text


def test_an_update_cuts_only_the_new_article_and_its_passages_are_those_a_whole_cut_gives(tmp_path, monkeypatch):
    """Cutting every article again was most of an update's time at archive scale: an unchanged
    article keeps the passages its stored index cut, by the same settings and rules."""
    from rag import index as index_module
    from rag.corpus import chunk_corpus

    seeds, config, open_pipeline = _indexed_copy_of_the_seeds_and_a_new_article(tmp_path)
    cut = []
    real = index_module.chunk_document
    monkeypatch.setattr(index_module, "chunk_document", lambda doc, settings: cut.append(doc.doc_id) or real(doc, settings))
    pipeline = open_pipeline()
    assert cut == ["005_ferry"]
    assert pipeline.retriever.passages == chunk_corpus(load_corpus(seeds), config.chunking)


def test_an_index_cut_by_older_sentence_rules_is_cut_again_embedding_only_what_moved(tmp_path, monkeypatch):
    from rag import corpus as corpus_module

    seeds = tmp_path / "seeds"
    shutil.copytree(SEEDS, seeds)
    five_sentences = " ".join(f"Meeting {n} of the council in the provincial capital went over the roads, the water "
                              f"supply and the schools once again." for n in range(5))  # 584 of a passage's 600 characters
    (seeds / "005_senate.txt").write_text(five_sentences + " Sen. Lindsey Graham spoke in Kabul.", encoding="utf-8")
    config = load_models_config(ROOT / "models.toml")
    said = []
    open_pipeline = lambda: build_pipeline(config, seeds, tmp_path / "index", embedder=FakeEmbedder(),  # noqa: E731
                                           reader=FakeReader([]), on_status=said.append)
    with monkeypatch.context() as older:  # rules 1: "Sen." ended a sentence, and indexes did not record the rules
        older.setattr(corpus_module, "TITLE_OR_MONTH", corpus_module.word_ending(
            corpus_module.ABBREVIATIONS - {"Sen."} | corpus_module.CAPITALISED - {"SEN."}))
        older.setattr(corpus_module.ChunkSettings, "as_dict", lambda self: asdict(self))
        corpus_module.sentence_spans.cache_clear()
        open_pipeline()
    corpus_module.sentence_spans.cache_clear()
    pipeline = open_pipeline()
    assert f"rag's sentence rules changed (1 -> {corpus_module.SENTENCE_RULES}), so passages are cut again" in said[-2]
    assert said[-1].endswith("(2 embedded, 45 reused)")  # only the new article's passages moved
    senate = [p.text for p in pipeline.retriever.passages if p.doc_id == "005_senate"]
    assert senate[-1].endswith("schools once again. Sen. Lindsey Graham spoke in Kabul.")
    assert not any(text.endswith("Sen.") for text in senate)  # rules 1 ended the first passage there


def test_a_build_for_an_older_view_of_the_folder_never_switches_the_index_back(tmp_path, monkeypatch):
    """Another process (a `rag add`) copies an article in and switches the index while this one
    loads its models, after it read the folder: building its own older view would drop the article."""
    import rag.assembly as assembly

    seeds = tmp_path / "seeds"
    shutil.copytree(SEEDS, seeds)
    config = load_models_config(ROOT / "models.toml")
    open_pipeline = lambda **kw: build_pipeline(config, seeds, tmp_path / "index", reader=FakeReader([]), **kw)  # noqa: E731
    open_pipeline(embedder=FakeEmbedder())

    def the_add_meanwhile(config, on_status):
        (seeds / "005_new.txt").write_text("The ferry between Calder and Marsh End was cancelled.", encoding="utf-8")
        open_pipeline(embedder=FakeEmbedder())
        return FakeEmbedder()

    monkeypatch.setattr(assembly, "_embedder", the_add_meanwhile)
    said = []
    opened = open_pipeline(on_status=said.append)
    assert "005_new" in {p.doc_id for p in opened.retriever.passages}
    monkeypatch.undo()
    assert "005_new" in {p.doc_id for p in open_pipeline(embedder=FakeEmbedder()).retriever.passages}


def test_a_build_asked_for_inside_a_build_of_the_same_index_is_an_error_not_a_hang(tmp_path):
    store = IndexStore(tmp_path / "index")
    store.prepare_for_writing()
    with store.building():
        with pytest.raises(RagError, match="is already being built by this process"):
            with IndexStore(tmp_path / "index").building():
                pass
    with store.building() as waited:  # released: free again
        assert not waited


@pytest.mark.parametrize("stopped_at", [0, 2])
def test_an_add_stopped_while_copying_says_what_it_copied_and_what_brings_the_index_up_to_date(tmp_path, monkeypatch,
                                                                                                stopped_at):
    """A Ctrl-C while files were copied said only "interrupted", with 60 of 300 files in the folder."""
    from rag import archive, assembly
    from rag.errors import Stopped

    seeds = tmp_path / "seeds"
    seeds.mkdir()
    (seeds / "a.txt").write_text("The bridge opened in 2021.", encoding="utf-8")
    fake_pipeline_over(seeds, tmp_path / "index")
    new = []
    for n in range(4):
        new.append(tmp_path / f"berth-{n}.txt")
        new[-1].write_text(f"The board approved berth {n} on Friday.", encoding="utf-8")
    real, calls = archive._put_in_place, []

    def stopping(*args):
        calls.append(args)
        if len(calls) > stopped_at:
            raise KeyboardInterrupt
        return real(*args)

    monkeypatch.setattr(archive, "_put_in_place", stopping)
    with pytest.raises(Stopped) as stop:
        assembly.add_articles(load_models_config(ROOT / "models.toml"), new, seeds, tmp_path / "index")
    if stopped_at:
        assert str(stop.value) == (f"stopped: files: added 2, updated 0, unchanged 0, skipped 0; rag index --seeds {seeds} "
                                   f"--index-dir {tmp_path / 'index'} brings the index up to date")
    else:
        assert str(stop.value) == "stopped: nothing was changed"
    assert stop.value.exit_code == 130 and len(os.listdir(seeds)) == 1 + stopped_at


def test_an_add_or_remove_that_fails_half_way_says_what_it_did_before_and_what_brings_the_index_up_to_date(
        tmp_path, monkeypatch):
    """A disk that filled on the third of four files said only "cannot put berth-2.txt into …":
    not that two were in the folder already, nor that the index was not brought up to date."""
    from rag import archive, assembly

    seeds, index = tmp_path / "seeds", tmp_path / "index"
    seeds.mkdir()
    (seeds / "a.txt").write_text("The bridge opened in 2021.", encoding="utf-8")
    fake_pipeline_over(seeds, index)
    new = []
    for n in range(4):
        new.append(tmp_path / f"berth-{n}.txt")
        new[-1].write_text(f"The board approved berth {n} on Friday.", encoding="utf-8")
    config, calls = load_models_config(ROOT / "models.toml"), []

    def failing(real, at):
        def fails_at_call(*args, **kwargs):
            calls.append(args)
            if len(calls) == at:
                raise RagError(f"cannot move {args[0].name}: No space left on device")
            return real(*args, **kwargs)
        return fails_at_call

    monkeypatch.setattr(archive, "_put_in_place", failing(archive._put_in_place, 3))
    with pytest.raises(RagError) as failed:
        assembly.add_articles(config, new, seeds, index)
    go_on = f"rag index --seeds {seeds} --index-dir {index} brings the index up to date"
    assert str(failed.value) == ("files: added 2, updated 0, unchanged 0, skipped 0; then: cannot move berth-2.txt: "
                                 f"No space left on device; {go_on}")
    monkeypatch.undo()
    calls.clear()
    monkeypatch.setattr(archive, "_keep_in_trash", failing(archive._keep_in_trash, 2))
    with pytest.raises(RagError) as failed:
        assembly.remove_articles(config, ["berth-0", "berth-1"], seeds, index)
    kept = next((index / "removed").glob("*/berth-0.txt"))
    assert str(failed.value) == (f"removed berth-0 (the file taken out is kept as {kept}); then: cannot move "
                                 f"berth-1.txt: No space left on device; {go_on}")


def test_rag_add_without_seeds_where_there_is_no_seeds_folder_leaves_the_bundled_articles_alone(tmp_path, monkeypatch):
    """It copied the article into the installed rag's seeds/: the gold set's articles, for good."""
    from rag.assembly import add_articles, remove_articles

    monkeypatch.chdir(tmp_path)
    article = tmp_path / "ghazni.txt"
    article.write_text("The governor of Ghazni resigned.", encoding="utf-8")
    before = sorted(p.name for p in SEEDS.iterdir())
    config = load_models_config(ROOT / "models.toml")
    for command, change in (("add", lambda: add_articles(config, [article])),
                            ("remove", lambda: remove_articles(config, ["000_882549ac45e52293"]))):
        with pytest.raises(RagError, match=rf"^rag {command} would change the bundled articles .* give --seeds DIR"):
            change()
    assert sorted(p.name for p in SEEDS.iterdir()) == before


def test_two_threads_preparing_one_index_folder_never_trip_on_each_others_probe(tmp_path):
    """A chat loads its index in a thread of its own: its write probe shared one name with a
    build in the main thread, and one thread's unlink took away the other's probe
    ("cannot write the index …: No such file or directory")."""
    store, problems = IndexStore(tmp_path / "index"), []

    def prepare():
        try:
            for _ in range(300):
                store.prepare_for_writing()
        except RagError as problem:
            problems.append(problem)

    threads = [threading.Thread(target=prepare) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert problems == []


def test_a_large_build_says_what_it_does_after_the_embedding(tmp_path, monkeypatch):
    """Building the keyword index and saving take seconds on a large archive, after the embedding's
    progress bar has ended: the build says so rather than seem to hang; a small one says nothing."""
    small = []
    fake_pipeline(tmp_path / "small", on_status=small.append)
    assert not any("keyword index" in m or "saving" in m for m in small)
    large = []
    monkeypatch.setattr("rag.index.SAYS_WHAT_IT_DOES_FROM", 1)
    fake_pipeline(tmp_path / "large", on_status=large.append)
    keyword = next(n for n, m in enumerate(large) if m.startswith("building the keyword index of "))
    saving = next(n for n, m in enumerate(large) if m.startswith("saving the index of ") and str(tmp_path / "large") in m)
    assert keyword < saving < next(n for n, m in enumerate(large) if m.startswith("indexed "))


def two_folders(tmp_path) -> tuple[Path, Path]:
    """Two articles folders that share no article: (arts, cities)."""
    arts, cities = tmp_path / "arts", tmp_path / "cities"
    for folder, name, text in ((arts, "a.txt", "The bridge opened in 2021."), (cities, "c.txt", "The mayor of Leeds is Jane Doe.")):
        folder.mkdir()
        (folder / name).write_text(text, encoding="utf-8")
    return arts, cities


def test_an_index_built_from_another_folder_is_refused_and_kept_whatever_the_command(tmp_path, monkeypatch):
    """`rag ask --seeds cities --index-dir idx` on arts' index said it was out of date and rebuilt
    it for cities, re-embedding from zero: the arts index was gone (hours, on an archive)."""
    from rag import assembly

    arts, cities = two_folders(tmp_path)
    index = tmp_path / "idx"
    fake_pipeline_over(arts, index)
    built = IndexStore(index).version()
    config = load_models_config(ROOT / "models.toml")
    new = tmp_path / "ferry.txt"
    new.write_text("The ferry leaves at ten.", encoding="utf-8")
    refused = f"^the index in {re.escape(str(index))} was built from {re.escape(str(arts.resolve()))}, not {re.escape(str(cities.resolve()))}; nothing was changed: "
    for command in (lambda: fake_pipeline_over(cities, index),
                    lambda: assembly.open_index(config, cities, index, embedder=FakeEmbedder()),
                    lambda: assembly.add_articles(config, [new], cities, index, embedder=FakeEmbedder()),
                    lambda: assembly.remove_articles(config, ["c"], cities, index, embedder=FakeEmbedder())):
        with pytest.raises(RagError, match=refused) as problem:
            command()
        assert "\n" not in str(problem.value) and "rag index --force" in str(problem.value)
        assert f"leave out --index-dir to use {cities.resolve()}'s own index" in str(problem.value)
    assert IndexStore(index).version() == built and sorted(os.listdir(cities)) == ["c.txt"]
    assert not (index / "removed").exists()
    fake_pipeline_over(arts, index)  # still the arts index, up to date: nothing embedded again
    assert IndexStore(index).version() == built


def test_rag_chat_refuses_another_folders_index_before_its_banner(tmp_path, monkeypatch, capsys):
    """It showed "rag · 1 article · …" and ended quietly on empty input, refusing only at a question."""
    arts, cities = two_folders(tmp_path)
    fake_pipeline_over(arts, tmp_path / "idx")
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    monkeypatch.setattr(sys, "argv", ["rag", "chat", "--seeds", str(cities), "--index-dir", str(tmp_path / "idx"),
                                      "--models", str(ROOT / "models.toml")])
    with pytest.raises(SystemExit) as ended:
        cli.main()
    said = capsys.readouterr()
    assert ended.value.code == 1 and "rag ·" not in said.out
    assert said.err.startswith(f"error: the index in {tmp_path / 'idx'} was built from {arts.resolve()}, not {cities.resolve()}")


def test_an_up_to_date_index_of_another_folder_is_refused_too(tmp_path):
    """A copy of the articles elsewhere: the index fits them, but is not theirs."""
    arts, _ = two_folders(tmp_path)
    copy = tmp_path / "arts-copy"
    shutil.copytree(arts, copy)
    fake_pipeline_over(arts, tmp_path / "idx")
    with pytest.raises(RagError, match=f"built from {re.escape(str(arts.resolve()))}, not {re.escape(str(copy.resolve()))}") \
            as refused:
        fake_pipeline_over(copy, tmp_path / "idx")
    # it holds the copy's articles: moved to the copy's own index folder, it is the copy's, embedding nothing
    own = copy.parent / ".rag" / copy.name
    assert str(refused.value).endswith(f"; if it is a copy made with this folder, move it to {own}: it is then "
                                       f"{copy.resolve()}'s own, and every vector is reused")
    own.parent.mkdir()
    (tmp_path / "idx").rename(own)
    built, said = IndexStore(own).version(), []
    build_pipeline(load_models_config(ROOT / "models.toml"), copy, None, embedder=FakeEmbedder(), reader=FakeReader([]),
                   on_status=said.append)
    assert said == [] and IndexStore(own).version() == built  # as it is: nothing embedded, nothing written


def test_rag_index_force_rebuilds_another_folders_index_on_purpose_and_then_it_is_that_folders(tmp_path):
    from rag.assembly import open_index

    arts, cities = two_folders(tmp_path)
    index = tmp_path / "idx"
    fake_pipeline_over(arts, index)
    config = load_models_config(ROOT / "models.toml")
    opened = open_index(config, cities, index, rebuild=True, embedder=FakeEmbedder())
    assert opened.index.manifest.articles_folder == str(cities.resolve()) and list(opened.index.manifest.documents) == ["c"]
    fake_pipeline_over(cities, index)
    with pytest.raises(RagError, match=f"built from {re.escape(str(cities.resolve()))}, not {re.escape(str(arts.resolve()))}"):
        fake_pipeline_over(arts, index)


def test_the_default_index_folder_of_a_copied_project_is_its_own_as_it_is(tmp_path):
    """A project copied with its .rag/ (the old folder still there): the copy's index is its own
    (it was refused, and every way out embedded all again), and nothing is written to say so: a
    folder seen at two paths (a host and a container) was rebuilt whole at every turn, recording
    each place."""
    project = tmp_path / "project"
    arts = project / "arts"
    arts.mkdir(parents=True)
    (arts / "a.txt").write_text("The bridge opened in 2021.", encoding="utf-8")
    fake_pipeline_over(arts, None)
    shutil.copytree(project, tmp_path / "copy")
    copy = (tmp_path / "copy" / "arts").resolve()
    copied = IndexStore(copy.parent / ".rag" / "arts")
    built, said = copied.version(), []
    build_pipeline(load_models_config(ROOT / "models.toml"), copy, None, embedder=FakeEmbedder(), reader=FakeReader([]),
                   on_status=said.append)
    assert said == [] and copied.version() == built
    assert copied.stored_manifest().articles_folder == str(arts.resolve())  # the place it was built in, as it was


def test_a_folder_seen_at_two_paths_by_turns_keeps_its_default_index_as_it_is(tmp_path):
    """A host and a container see one project at two paths, each without the other's: each run
    took the folder as moved and rebuilt the index to record its own place (1.5 GB at 1M passages)."""
    host = tmp_path / "home" / "project"
    (host / "arts").mkdir(parents=True)
    (host / "arts" / "a.txt").write_text("The bridge opened in 2021.", encoding="utf-8")
    fake_pipeline_over(host / "arts", None)
    built = IndexStore(host / ".rag" / "arts").version()
    container = tmp_path / "app"
    for there, here in ((host, container), (container, host), (host, container)):
        there.rename(here)  # the other machine's path is not there
        said = []
        build_pipeline(load_models_config(ROOT / "models.toml"), here / "arts", None, embedder=FakeEmbedder(),
                       reader=FakeReader([]), on_status=said.append)
        assert said == [] and IndexStore(here / ".rag" / "arts").version() == built


def indexed_recording(seeds: Path, index: Path, folder: str | None) -> IndexStore:
    """`seeds` indexed in `index`, its manifest then recording `folder` as its articles folder
    (None: recording none, as an index written before rag recorded it)."""
    fake_pipeline_over(seeds, index)
    store = IndexStore(index)
    manifest = json.loads((store.current_build / "manifest.json").read_text(encoding="utf-8"))
    if folder is None:
        del manifest["articles_folder"]
    else:
        manifest["articles_folder"] = folder
    (store.current_build / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    return store


def test_an_index_recorded_under_another_path_to_the_same_folder_is_its_own(tmp_path):
    """The same folder reached by another path (a case-insensitive filesystem, a bind mount) was refused."""
    arts, _ = two_folders(tmp_path)
    store = indexed_recording(arts, tmp_path / "idx", f"{arts.parent}/./{arts.name}")  # another spelling of its path
    built = store.version()
    fake_pipeline_over(arts, store.directory)
    assert store.version() == built


def test_an_index_that_recorded_no_folder_is_taken_as_the_folders_own(tmp_path):
    """Indexes written before rag recorded their folder load as they did: nothing is embedded again."""
    arts, cities = two_folders(tmp_path)
    index = tmp_path / "idx"
    store = indexed_recording(cities, index, None)
    built = store.version()
    fake_pipeline_over(cities, index)
    assert store.version() == built and store.stored_manifest().articles_folder == ""
    # unless it holds none of the folder's articles: then it is surely another folder's
    with pytest.raises(RagError, match=f"the index in {index} holds none of the articles in {arts.resolve()} "
                                       r"\(it was built by an older rag"):
        fake_pipeline_over(arts, index)
    assert store.version() == built


def test_a_moved_articles_folder_keeps_its_index_and_every_vector(tmp_path):
    """Its old place is gone and its articles are here: the index is taken as moved with it, said,
    and saved again with the new place, nothing embedded."""
    from rag.assembly import open_index

    arts, _ = two_folders(tmp_path)
    (arts / "b.txt").write_text("The tunnel closed in 2019.", encoding="utf-8")
    index = tmp_path / "idx"
    fake_pipeline_over(arts, index)
    moved = tmp_path / "archive" / "arts-2021"
    moved.parent.mkdir()
    arts.rename(moved)
    (moved / "b.txt").write_text("The tunnel closed in 2020.", encoding="utf-8")  # one of the two edited since
    said, embedder = [], FakeEmbedder()
    config = load_models_config(ROOT / "models.toml")
    opened = open_index(config, moved, index, on_status=said.append, embedder=embedder)
    assert f"the index in {index} was built from {arts.resolve()}, which is no longer there; {moved.resolve()} holds 1 of " \
           "its 2 articles unchanged, so it is taken as that folder, moved" in said
    assert opened.index.manifest.articles_folder == str(moved.resolve()) and embedder.encoded == 1  # the edited one
    said.clear()
    open_index(config, moved, index, on_status=said.append, embedder=embedder)
    assert said == [] and embedder.encoded == 1


def moved_after_indexing(tmp_path, monkeypatch, names: str) -> tuple[Path, Path]:
    """An articles folder of a.txt and these others, indexed with the fake embedder (as rag add
    and remove embed too), then moved: (where it is now, its index)."""
    from rag import assembly

    monkeypatch.setattr(assembly, "_embedder", lambda config, on_status: FakeEmbedder())
    arts, _ = two_folders(tmp_path)
    for name in names:
        (arts / f"{name}.txt").write_text(f"Article {name} says the bridge opened.", encoding="utf-8")
    index = tmp_path / "idx"
    fake_pipeline_over(arts, index)
    moved = tmp_path / "arts-2021"
    arts.rename(moved)
    return moved, index


def test_removing_most_of_a_moved_folders_articles_keeps_its_index(tmp_path, monkeypatch):
    """The folder was taken as moved before the files moved, then checked again after: with most
    of its articles gone it no longer held half of the index's, and the remove ended refused."""
    from rag import assembly

    moved, index = moved_after_indexing(tmp_path, monkeypatch, "bcd")
    said, loaded = [], []
    monkeypatch.setattr(assembly, "_embedder", lambda config, on_status: loaded.append(1) or FakeEmbedder())
    update = assembly.remove_articles(load_models_config(ROOT / "models.toml"), ["a", "b", "c"], moved, index, said.append)
    assert any("so it is taken as that folder, moved" in line for line in said)
    assert len(loaded) == 1  # the index is built twice (the new place recorded first), the model loaded once
    assert "index: 1 passage from 1 article" in update.line and sorted(os.listdir(moved)) == ["d.txt"]
    assert IndexStore(index).stored_manifest().articles_folder == str(moved.resolve())


def test_a_remove_stopped_half_way_in_a_moved_folder_names_a_command_that_goes_on(tmp_path, monkeypatch):
    """Stopped after three of four articles moved out, the line named `rag index`, which then
    refused the index: its folder was gone and it held under half of the folder's articles."""
    from rag import archive, assembly
    from rag.errors import Stopped

    moved, index = moved_after_indexing(tmp_path, monkeypatch, "bcde")
    real, moves = archive._keep_in_trash, []

    def stopped_at_the_fourth(*args, **kwargs):
        moves.append(args)
        if len(moves) == 4:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(archive, "_keep_in_trash", stopped_at_the_fourth)
    config = load_models_config(ROOT / "models.toml")
    with pytest.raises(Stopped, match=f"^stopped: removed a, b, c .*; rag index --seeds {re.escape(str(moved))} "):
        assembly.remove_articles(config, ["a", "b", "c", "d"], moved, index)
    opened = assembly.open_index(config, moved, index, embedder=FakeEmbedder())  # the command named goes on
    assert sorted(opened.index.manifest.documents) == ["d", "e"]


def test_an_index_whose_folder_is_gone_is_refused_for_a_folder_without_its_articles(tmp_path):
    """Not there (a drive not mounted, say) is not moved: another folder's articles do not take its index."""
    arts, cities = two_folders(tmp_path)
    index = tmp_path / "idx"
    fake_pipeline_over(arts, index)
    built = IndexStore(index).version()
    arts.rename(tmp_path / "elsewhere")
    with pytest.raises(RagError, match=f"built from {re.escape(str(arts.resolve()))}, which is no longer there, and "
                                       f"{re.escape(str(cities.resolve()))} holds 0 of its 1 article unchanged; nothing was changed"):
        fake_pipeline_over(cities, index)
    assert IndexStore(index).version() == built


# an index out of date that cannot be written (a read-only mount, an archive's index shared with readers)

def dated_articles(folder: Path) -> Path:
    """Three dated articles: the bridge's, the tunnel's and the market's."""
    folder.mkdir()
    for name, title, day, text in (("bridge", "Bridge opens", "03", "The bridge over the Kokcha river opened on Friday."),
                                   ("tunnel", "Tunnel closes", "04", "The tunnel under the Salang pass closed for repairs."),
                                   ("market", "Market burns", "05", "The old market in Kunduz burned down overnight.")):
        (folder / f"{name}.txt").write_text(f"{title}\nDate: 2021-09-{day}\n{text}\n", encoding="utf-8")
    return folder


def everything_in(folder: Path) -> list:
    return sorted((str(path.relative_to(folder)), path.stat().st_mtime_ns) for path in folder.rglob("*"))


def changed_since_indexed(seeds: Path) -> None:
    """The tunnel's article edited (its passages' offsets now fall elsewhere), the market's
    removed, the ferry's added."""
    (seeds / "tunnel.txt").write_text("Tunnel closes\nDate: 2021-09-04\nAfter a week of storms and two landslides, "
                                      "the tunnel under the Salang pass closed for repairs until spring.\n", encoding="utf-8")
    (seeds / "market.txt").unlink()
    (seeds / "ferry.txt").write_text("Ferry resumes\nDate: 2021-09-06\nThe ferry across the Amu Darya resumed service "
                                     "on Monday.\n", encoding="utf-8")


READS = ["Friday", "repairs", "spring", "Kunduz", "Monday"]  # what the fake reader answers, from any article


def test_an_out_of_date_index_that_cannot_be_written_answers_from_its_unchanged_articles_with_one_warning(tmp_path,
                                                                                                            monkeypatch):
    """A newsroom's archive index on a read-only mount, an article added to the folder since:
    every question failed with "cannot write the index …: Permission denied"."""
    seeds, index = dated_articles(tmp_path / "seeds"), tmp_path / "index"
    fake_pipeline_over(seeds, index)
    before = everything_in(index)
    read_only(monkeypatch, index)
    changed_since_indexed(seeds)
    said, embedder = [], FakeEmbedder()
    pipeline = build_pipeline(load_models_config(ROOT / "models.toml"), seeds, index, embedder=embedder,
                              reader=FakeReader(READS), on_status=said.append)
    built_at = IndexStore(index).stored_manifest().built_at
    assert said == [
        "warning: the index is out of date: the articles changed (added 1: ferry; removed 1: market; edited 1: tunnel); "
        f"it cannot be brought up to date here (cannot write the index to {index}: Permission denied), so it answers as "
        f"it is, from the 1 article unchanged since it was built ({built_at}); not searched: 1 article added since, "
        f"1 article edited since; to bring it up to date, run rag index where {index} can be written, or give "
        "--index-dir a folder that can be"]
    answer = pipeline.ask("When did the bridge over the Kokcha river open?")
    assert (answer.text, answer.citation.doc_id) == ("Friday", "bridge")
    assert embedder.encoded == 1  # the question: nothing was embedded for the index
    assert everything_in(index) == before


@pytest.mark.parametrize("since", [None, "2021-09-01"])
def test_an_article_edited_or_removed_since_an_unwritable_index_was_built_is_never_searched_nor_cited(tmp_path,
                                                                                                     monkeypatch, since):
    """Their stored offsets may slice other text now, or none: only unchanged articles' passages
    are searched (with a date filter too), so every citation slices its article as it reads now."""
    from rag.dates import DateRange

    seeds, index = dated_articles(tmp_path / "seeds"), tmp_path / "index"
    fake_pipeline_over(seeds, index)
    read_only(monkeypatch, index)
    changed_since_indexed(seeds)
    pipeline = fake_pipeline_over(seeds, index, reader=FakeReader(READS))
    assert pipeline.retriever.passage_count == 1 and list(pipeline.corpus.documents) == ["bridge"]
    for question in ("When did the tunnel under the Salang pass close for repairs?", "What burned down in Kunduz?",
                     "When did the ferry across the Amu Darya resume service?"):
        answer = pipeline.ask(question, DateRange.parse(since, None))
        assert [r.passage.doc_id for r in answer.passages] == ["bridge"], question
        assert answer.abstained or answer.citation.doc_id == "bridge", question
        for retrieved in answer.passages:
            passage = retrieved.passage
            assert passage.text == pipeline.corpus.documents[passage.doc_id].text[passage.start:passage.end]


def test_rag_index_on_an_out_of_date_index_that_cannot_be_written_still_fails_in_one_line(tmp_path, monkeypatch, capsys):
    """Its work is the writing: it does not settle for the index as it is."""
    from rag import assembly

    seeds, index = dated_articles(tmp_path / "seeds"), tmp_path / "index"
    fake_pipeline_over(seeds, index)
    before = everything_in(index)
    read_only(monkeypatch, index)
    changed_since_indexed(seeds)
    monkeypatch.setattr(assembly, "_embedder", lambda config, on_status: FakeEmbedder())
    monkeypatch.setattr(sys, "argv", ["rag", "index", "--seeds", str(seeds), "--index-dir", str(index),
                                      "--models", str(ROOT / "models.toml")])
    with pytest.raises(SystemExit) as ended:
        cli.main()
    err = capsys.readouterr().err
    assert ended.value.code == 1 and err.splitlines()[-1] == f"error: cannot write the index to {index}: Permission denied"
    assert "warning" not in err and "Traceback" not in err
    assert everything_in(index) == before


def test_rag_ask_on_an_out_of_date_index_that_cannot_be_written_answers_with_the_warning_once(tmp_path, monkeypatch,
                                                                                               capsys):
    from rag import assembly

    seeds, index = dated_articles(tmp_path / "seeds"), tmp_path / "index"
    fake_pipeline_over(seeds, index)
    read_only(monkeypatch, index)
    changed_since_indexed(seeds)
    real = assembly.build_pipeline
    monkeypatch.setattr(assembly, "build_pipeline", lambda *args, **kwargs: real(
        *args, **kwargs, embedder=FakeEmbedder(), reader=FakeReader(READS)))
    monkeypatch.setattr(sys, "argv", ["rag", "ask", "--seeds", str(seeds), "--index-dir", str(index),
                                      "--models", str(ROOT / "models.toml"), "When did the Kokcha bridge open?"])
    with pytest.raises(SystemExit) as ended:
        cli.main()
    said = capsys.readouterr()
    assert ended.value.code == 0 and "Friday" in said.out and "bridge · 2021-09-03" in said.out
    assert said.err.count("warning: the index is out of date") == 1 and "rag index where" in said.err


def test_rag_eval_on_an_out_of_date_index_that_cannot_be_written_leaves_out_what_it_does_not_search(tmp_path, monkeypatch,
                                                                                                      capsys):
    """A gold question citing an article edited since was refused as a typo ("names 'tunnel', no
    article of …"): it is in the folder, only not searched. It is left out, said in a note."""
    from rag import assembly

    seeds, index = dated_articles(tmp_path / "seeds"), tmp_path / "index"
    fake_pipeline_over(seeds, index)
    read_only(monkeypatch, index)
    changed_since_indexed(seeds)
    gold = tmp_path / "gold.jsonl"
    gold.write_text("\n".join(json.dumps(row) for row in (
        {"id": "q1", "question": "When did the Kokcha bridge open?", "answers": ["Friday"], "docs": ["bridge"]},
        {"id": "q2", "question": "Until when is the Salang tunnel closed?", "answers": ["spring"], "docs": ["tunnel"]},
        {"id": "q3", "question": "Who won the World Cup?", "answers": [], "docs": []})) + "\n", encoding="utf-8")
    real = assembly.build_pipeline
    monkeypatch.setattr(assembly, "build_pipeline", lambda *args, **kwargs: real(
        *args, **kwargs, embedder=FakeEmbedder(), reader=FakeReader(READS)))
    monkeypatch.setattr(sys, "argv", ["rag", "eval", "--json", "--gold", str(gold), "--seeds", str(seeds), "--index-dir",
                                      str(index), "--models", str(ROOT / "models.toml")])
    with pytest.raises(SystemExit) as ended:
        cli.main()
    said = capsys.readouterr()
    assert ended.value.code == 0, said.err
    assert "note: 1 questions left out, as only articles the index does not search (added or edited since it was " \
           "built) answer them: q2" in said.err and "no answer of these questions" not in said.err
    measured = json.loads(said.out)
    assert measured["left_out"] == ["q2"] and measured["f1"] == 100.0  # q1 answered from the bridge's article, as it is


def test_an_up_to_date_index_that_cannot_be_written_answers_without_a_warning(tmp_path, monkeypatch):
    seeds, index = dated_articles(tmp_path / "seeds"), tmp_path / "index"
    fake_pipeline_over(seeds, index)
    before = everything_in(index)
    read_only(monkeypatch, index)
    said = []
    pipeline = build_pipeline(load_models_config(ROOT / "models.toml"), seeds, index, embedder=FakeEmbedder(),
                              reader=FakeReader(READS), on_status=said.append)
    assert said == [] and pipeline.retriever.passage_count == 3
    assert pipeline.ask("What burned down in Kunduz?").citation.doc_id == "market"
    assert everything_in(index) == before


def test_an_unwritable_index_another_embedder_made_cannot_answer_as_it_is_and_says_why_it_is_not_rebuilt(tmp_path,
                                                                                                        monkeypatch):
    """Its vectors mean nothing to this embedder: the build is tried, and the folder blamed in one line."""
    from tests.fakes import FakeSpec

    class OtherEmbedder(FakeEmbedder):
        spec = FakeSpec("fake/another-bag-of-words")

    seeds, index = dated_articles(tmp_path / "seeds"), tmp_path / "index"
    fake_pipeline_over(seeds, index)
    read_only(monkeypatch, index)
    said = []
    with pytest.raises(RagError, match=f"^cannot write the index to {re.escape(str(index))}: Permission denied$"):
        build_pipeline(load_models_config(ROOT / "models.toml"), seeds, index, embedder=OtherEmbedder(),
                       reader=FakeReader(READS), on_status=said.append)
    assert said == ["the index is out of date: the embedder changed (fake/bag-of-words -> fake/another-bag-of-words); "
                    "bringing it up to date"]


class EmbedsThenStops(FakeEmbedder):
    """Embeds `chunks` calls' worth, then is stopped (Ctrl-C, or SIGTERM with `signal`)."""

    def __init__(self, chunks: int, signal: type[KeyboardInterrupt] = KeyboardInterrupt):
        super().__init__()
        self.chunks, self.signal = chunks, signal

    def encode(self, texts, on_batch=None):
        if self.chunks == 0:
            raise self.signal
        self.chunks -= 1
        return super().encode(texts, on_batch)


def run_cli(monkeypatch, capsys, *args: str) -> tuple[int, list[str]]:
    """`rag ARGS` in this process: its exit code and its stderr's lines."""
    monkeypatch.setattr(sys, "argv", ["rag", *args])
    with pytest.raises(SystemExit) as ended:
        cli.main()
    return ended.value.code, capsys.readouterr().err.splitlines()


def stop_lines(said: list[str]) -> list[str]:
    """The lines that speak of the stop (what was going on before it may be said too)."""
    return [line for line in said if line.startswith("stopped") or line == "interrupted"]


def test_a_stopped_add_says_in_one_line_what_it_kept_and_what_to_run_next(tmp_path, monkeypatch, capsys):
    """It said "stopped while embedding: …", then "stopped: files: added 1 …", then "interrupted"."""
    import rag.assembly

    seeds, index, incoming = tmp_path / "seeds", tmp_path / "index", tmp_path / "big.txt"
    seeds.mkdir()
    (seeds / "a.txt").write_text("The ferry leaves at nine.\n", encoding="utf-8")
    incoming.write_text("The bridge opens at ten.\n", encoding="utf-8")
    monkeypatch.setattr(rag.index, "CHUNK", 1)  # a save every passage
    monkeypatch.setattr(rag.assembly, "CHUNK", 1)  # and said so
    monkeypatch.setattr(rag.assembly, "_embedder", lambda config, on_status: EmbedsThenStops(1))
    code, said = run_cli(monkeypatch, capsys, "add", "--seeds", str(seeds), "--index-dir", str(index), str(incoming))
    assert code == 130 and stop_lines(said) == said[-1:]
    assert said[-1:] == [f"stopped while embedding: files: added 1, updated 0, unchanged 0, skipped 0; the 1 passage embedded "
                    f"so far is saved in {index} (every 1), and rag index --seeds {seeds} --index-dir {index} goes on "
                    "from the last save"]


def test_a_stopped_rebuild_says_that_only_force_again_goes_on_and_it_does(tmp_path, monkeypatch, capsys):
    """After a stopped `rag index --force` it said "the next rag index … goes on from the last
    save", but a plain rag index found the old index current and said "index ready"."""
    import rag.assembly
    import rag.index
    from rag.errors import Terminated

    seeds, index = tmp_path / "seeds", tmp_path / "index"
    seeds.mkdir()
    for n in range(6):
        (seeds / f"a{n}.txt").write_text(f"Story {n} tells of the ferry number {n}.\n", encoding="utf-8")
    monkeypatch.setattr(rag.index, "CHUNK", 2)  # a save every 2 passages
    monkeypatch.setattr(rag.assembly, "CHUNK", 2)  # and said so
    embedder = EmbedsThenStops(1, Terminated)  # the first chunk is embedded and saved, then SIGTERM
    monkeypatch.setattr(rag.assembly, "_embedder", lambda config, on_status: embedder)
    folders = ["--seeds", str(seeds), "--index-dir", str(index)]
    rag.assembly.open_index(load_models_config(ROOT / "models.toml"), seeds, index, embedder=FakeEmbedder())
    code, said = run_cli(monkeypatch, capsys, "index", "--force", *folders)
    assert code == 143 and stop_lines(said) == said[-1:]
    assert said[-1:] == [f"stopped (SIGTERM) while embedding: the index in {index} stays as it was (up to date: a plain rag "
                    "index keeps it); the 2 passages embedded so far are saved there (every 2), and rag index --force "
                    f"--seeds {seeds} --index-dir {index} goes on from the last save"]
    embedder.chunks = 99
    code, said = run_cli(monkeypatch, capsys, "index", *folders)
    assert code == 0 and embedder.encoded == 2 and said[-1].startswith("index ready: 6 passages")  # kept, as said
    code, said = run_cli(monkeypatch, capsys, "index", "--force", *folders)
    assert code == 0 and embedder.encoded == 6 and any("(4 embedded, 0 reused, 2 from a stopped build)" in line
                                                       for line in said)
