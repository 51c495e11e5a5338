import json
import signal
import subprocess
import sys
import time

import pytest

from rag.corpus import ChunkSettings, load_corpus
from rag.assembly import build_pipeline
from rag.index import IndexNotUsable, IndexStore, Manifest, build_index
from rag.retrieval import Retriever
from tests.conftest import ROOT, SEEDS

pytestmark = pytest.mark.integration  # real models


@pytest.fixture(scope="module")
def embedder(pipeline):
    return pipeline.retriever.embedder


def expected_manifest(corpus, embedder, chunking=ChunkSettings()):
    return Manifest.expected(corpus, embedder.spec.id, embedder.spec.fingerprint(), embedder.dimension, chunking, "faiss")


def test_saved_index_loads_back_the_same(tmp_path, embedder):
    corpus = load_corpus(SEEDS)
    built = build_index(corpus, embedder, ChunkSettings(), "faiss")[0]
    store = IndexStore(tmp_path / "index")
    store.save(built)
    loaded = store.load(corpus, expected_manifest(corpus, embedder))
    assert loaded.passages == built.passages and len(loaded.vectors) == len(built.passages)
    manifest = loaded.manifest
    assert manifest.embedder_id == "sentence-transformers/all-MiniLM-L6-v2" and manifest.dimension == 384
    assert manifest.chunking == ChunkSettings().as_dict() and manifest.corpus_fingerprint == corpus.fingerprint
    question = "How far is Panjshir from Kabul?"
    hits = Retriever(embedder, loaded.passages, loaded.vectors, loaded.keywords, corpus.documents, 60, 50).retrieve(question, k=5)
    assert len(hits) == 5 and all(-1 <= h.dense_score <= 1 for h in hits)
    assert any("Kabul" in h.passage.text for h in hits[:2])


def test_stale_index_is_noticed_and_says_why(tmp_path, embedder, seeds_copy):
    corpus = load_corpus(seeds_copy)
    store = IndexStore(tmp_path / "index")
    store.save(build_index(corpus, embedder, ChunkSettings(), "faiss")[0])
    (seeds_copy / "003_1053def13e2cd472.txt").write_text(" date 2021-08-26 Replaced text.", encoding="utf-8")
    (seeds_copy / "005_new.txt").write_text("A new article.", encoding="utf-8")
    changed = load_corpus(seeds_copy)
    with pytest.raises(IndexNotUsable, match="articles changed .*added 1: 005_new.*edited 1: 003_1053def13e2cd472"):
        store.load(changed, expected_manifest(changed, embedder))
    with pytest.raises(IndexNotUsable, match="chunking settings changed"):
        store.load(corpus, expected_manifest(corpus, embedder, ChunkSettings(max_chars=300)))
    other_model = Manifest.expected(corpus, "another/model", "abc", 384, ChunkSettings(), "faiss")
    with pytest.raises(IndexNotUsable, match="embedder changed"):
        store.load(corpus, other_model)
    same_model_other_files = Manifest.expected(corpus, embedder.spec.id, "abc", 384, ChunkSettings(), "faiss")
    with pytest.raises(IndexNotUsable, match=r"the embedder's files or precision changed \(.*: \w+ -> abc\)"):
        store.load(corpus, same_model_other_files)


def test_thousands_of_changed_articles_are_counted_and_the_first_few_named():
    from rag.index import describe_changes

    said = describe_changes({f"a{n:05d}": "x" for n in range(300)}, {f"a{n:05d}": "x" for n in range(100)})
    assert said == "removed 200: a00100, a00101, a00102, a00103, a00104, …"


def test_pipeline_rebuilds_a_stale_index(tmp_path, models, seeds_copy):
    messages = []
    build_pipeline(models, seeds_copy, tmp_path / "index", on_status=messages.append)
    (seeds_copy / "005_extra.txt").write_text("The capital of Panjshir province is Bazarak.", encoding="utf-8")
    pipeline = build_pipeline(models, seeds_copy, tmp_path / "index", on_status=messages.append)
    assert any("out of date" in m and "added 1: 005_extra" in m for m in messages)
    assert "005_extra" in {p.doc_id for p in pipeline.retriever.passages}


def test_corrupt_index_is_reported_and_rebuilt(tmp_path, models, embedder):
    corpus = load_corpus(SEEDS)
    store = IndexStore(tmp_path / "index")
    build = store.save(build_index(corpus, embedder, ChunkSettings(), "faiss")[0])
    (build / "vectors.faiss").write_bytes(b"not a faiss index")
    with pytest.raises(IndexNotUsable, match="unreadable"):
        store.load(corpus, expected_manifest(corpus, embedder))
    messages = []
    pipeline = build_pipeline(models, SEEDS, tmp_path / "index", on_status=messages.append)
    assert any("unreadable" in m for m in messages) and len(pipeline.retriever.vectors) > 0


def test_a_failed_build_leaves_the_old_index(tmp_path, embedder, monkeypatch):
    corpus = load_corpus(SEEDS)
    store = IndexStore(tmp_path / "index")
    store.save(build_index(corpus, embedder, ChunkSettings(), "faiss")[0])
    import faiss

    def crash(*args):
        raise OSError("disk full")

    monkeypatch.setattr(faiss, "write_index", crash)
    with pytest.raises(OSError):
        store.save(build_index(corpus, embedder, ChunkSettings(), "faiss")[0])
    monkeypatch.undo()
    assert len(store.load(corpus, expected_manifest(corpus, embedder)).vectors) > 0


def test_a_killed_build_leaves_the_old_index_loadable(tmp_path, models, embedder):
    """SIGKILL `rag index --force` at several moments; the old index must load every time."""
    corpus = load_corpus(SEEDS)
    store = IndexStore(tmp_path / "index")
    first = store.save(build_index(corpus, embedder, ChunkSettings(), "faiss")[0])
    command = [sys.executable, "-m", "rag", "index", "--force", "--index-dir", str(tmp_path / "index"), "--seeds", str(SEEDS)]
    for delay in (1.0, 3.0, 5.0, 7.0):
        process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(delay)
        process.send_signal(signal.SIGKILL)
        process.wait()
        loaded = store.load(corpus, expected_manifest(corpus, embedder))
        assert len(loaded.vectors) == len(loaded.passages) > 0
    assert store.current_build is not None and store.current_build.exists()
    assert first.exists() or store.current_build != first  # either untouched or replaced whole


def test_passages_are_written_a_line_each_as_json_dumps_writes_them(tmp_path):
    """passages.jsonl is written without a json.dumps a row (2.5 s of an update at 1M passages),
    byte for byte as json.dumps wrote it, quotes, backslashes and non-ASCII ids included."""
    from rag.index import _write_passages
    from rag.schema import Passage

    passages = [Passage('a "quoted" id', 0, 5, "x"), Passage("été\\path", 3, 10, "y"), Passage('a "quoted" id', 5, 9, "z"),
                Passage("feed.jsonl#\u2028", 0, 1, "w")]
    _write_passages(tmp_path / "passages.jsonl", passages)
    expected = "".join(json.dumps({"doc_id": p.doc_id, "start": p.start, "end": p.end}) + "\n" for p in passages)
    assert (tmp_path / "passages.jsonl").read_text(encoding="utf-8") == expected
