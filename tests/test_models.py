import dataclasses
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from rag.embedder import Embedder
from rag.errors import RagError
from rag.models import EXPORT_VERSION, load_for_inference, onnx_graph, pad_encodings, usable_cores
from rag.reader import Reader
from tests.test_reader import whole_article_passage

pytestmark = pytest.mark.integration  # real models


def with_runtime(spec, runtime: str):
    return dataclasses.replace(spec, settings=dataclasses.replace(spec.settings, runtime=runtime))


def test_onnx_and_torch_runtimes_read_and_embed_alike(models, pipeline):
    """The ONNX graph is exported from the transformers model: it must give the same spans,
    scores and vectors, or answers would change with the runtime."""
    text, passage = whole_article_passage("004_5381029668afd7ea")
    _, other = whole_article_passage("000_882549ac45e52293")
    question = "Who is the Taliban spokesman?"
    torch_reader = Reader(with_runtime(models.reader, "torch"))
    assert torch_reader.model.side_by_side == 1  # torch spreads one run over every core itself
    onnx_guesses = pipeline.reader.read(question, [passage, other])
    torch_guesses = torch_reader.read(question, [passage, other])
    assert [(g.start, g.end) for g in onnx_guesses] == [(g.start, g.end) for g in torch_guesses]
    assert np.allclose([g.span_score for g in onnx_guesses], [g.span_score for g in torch_guesses], atol=1e-3)
    assert np.allclose([g.null_score for g in onnx_guesses], [g.null_score for g in torch_guesses], atol=1e-3)
    assert text[onnx_guesses[0].start:onnx_guesses[0].end] == "Zabihullah Mujahid"
    texts = [question, passage.text]
    assert np.abs(pipeline.retriever.embedder.encode(texts) - Embedder(with_runtime(models.embedder, "torch")).encode(texts)).max() < 1e-5


def test_windows_run_side_by_side_give_the_logits_of_runs_one_after_another(models, pipeline):
    """The reader runs a question's windows side by side on ONNX Runtime, one per core (README,
    "Speed"): each window's logits must be bit for bit those of a run alone, whichever thread ran it."""
    model = load_for_inference(models.reader, "AutoModelForQuestionAnswering")
    assert model.side_by_side == usable_cores()
    _, passage = whole_article_passage("004_5381029668afd7ea")
    windows = [pad_encodings([w]) for _, w in pipeline.reader.windows("Who is the Taliban spokesman?", [passage])]
    assert len(windows) > 2
    with ThreadPoolExecutor(2) as pool:
        side_by_side = list(pool.map(model.run, windows))
    for alone, together in zip(map(model.run, windows), side_by_side):
        assert all(np.array_equal(a, b) for a, b in zip(alone, together))


def test_the_export_is_cached_and_a_broken_cache_file_is_replaced(models, tmp_path, monkeypatch):
    monkeypatch.setenv("RAG_CACHE_DIR", str(tmp_path))
    messages = []
    load_for_inference(models.embedder, "AutoModel", messages.append)
    (graph,) = (tmp_path / "onnx").glob("embedder-*.onnx")
    assert len(messages) == 1 and "once" in messages[0]
    load_for_inference(models.embedder, "AutoModel", messages.append)
    assert len(messages) == 1  # the second load reuses the graph
    graph.write_bytes(b"half a file")
    model = load_for_inference(models.embedder, "AutoModel", messages.append)  # exported again, once
    assert "could not be loaded" in messages[1] and str(graph) in messages[1] and "once" in messages[2]
    assert len(messages) == 3 and graph.stat().st_size > 1000 and model.config["hidden_size"] == 384


def test_a_new_export_removes_the_same_models_graphs_of_older_export_versions(models, tmp_path, monkeypatch):
    monkeypatch.setenv("RAG_CACHE_DIR", str(tmp_path))
    cache = tmp_path / "onnx"
    cache.mkdir()
    model = f"embedder-{models.embedder.files_fingerprint()}-AutoModel"
    older = [cache / f"{model}-v0.onnx", cache / f"{model}-v0-int8.onnx"]
    kept = [cache / "embedder-0123456789abcdef-AutoModel-v0.onnx",  # another model's
            cache / f"{model}-v{int(EXPORT_VERSION) + 1}.onnx",  # a newer rag's, sharing the cache
            cache / f"{model}-v{EXPORT_VERSION}-int8.onnx"]  # this version's int8 twin
    for path in (*older, *kept):
        path.write_bytes(b"a graph")
    load_for_inference(models.embedder, "AutoModel")
    assert not any(path.exists() for path in older) and all(path.exists() for path in kept)
    assert (cache / f"{model}-v{EXPORT_VERSION}.onnx").stat().st_size > 1000


def test_the_graph_is_exported_from_plain_attention(models):
    """PyTorch's fused attention traces into masking and NaN guards that made the reader's graph
    ~15 % slower on ONNX Runtime (README, "Speed"); the plain attention traces without them."""
    onnx = pytest.importorskip("onnx")
    graph = onnx.load(str(onnx_graph(models.reader, "AutoModelForQuestionAnswering")), load_external_data=False).graph
    assert "IsNaN" not in {node.op_type for node in graph.node}


def test_an_unknown_runtime_is_a_clear_error(models):
    with pytest.raises(RagError, match="runtime must be one of onnx, torch"):
        load_for_inference(with_runtime(models.reader, "tensorrt"), "AutoModelForQuestionAnswering")


def test_an_unwritable_cache_is_a_clear_error(models, tmp_path, monkeypatch):
    (tmp_path / "a-file").write_text("")
    monkeypatch.setenv("RAG_CACHE_DIR", str(tmp_path / "a-file" / "cache"))
    with pytest.raises(RagError, match="could not write the ONNX model .*RAG_CACHE_DIR"):
        load_for_inference(models.embedder, "AutoModel")
