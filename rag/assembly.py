"""Making the parts from settings and handing them to a Pipeline: the one place that knows
which embedder, store, reader and decision a models.toml asks for."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from rag.config import ModelsConfig, load_models_config
from rag.corpus import Corpus, load_corpus
from rag.errors import RagError
from rag.index import IndexNotUsable, IndexStore, Manifest, PassageIndex, build_index
from rag.pipeline import Pipeline, default_index_dir, default_seeds_dir
from rag.retrieval import Retriever, parse_store

Status = Callable[[str], None]
Progress = Callable[[int, int], None]


def _quiet(message: str) -> None:
    pass


@dataclass
class OpenedIndex:
    corpus: Corpus
    index: PassageIndex
    embedder: object
    directory: Path


def with_store(config: ModelsConfig, store: str | None) -> ModelsConfig:
    """The config with [retrieval] vector_store overridden (by --store or RAG_STORE), when given."""
    if not store:
        return config
    return dataclasses.replace(config, retrieval=dataclasses.replace(config.retrieval, vector_store=store))


def with_top_k(config: ModelsConfig, top_k: int | None) -> ModelsConfig:
    """The config with [retrieval] top_k overridden (by --top-k), when given."""
    if top_k is None:
        return config
    return dataclasses.replace(config, retrieval=dataclasses.replace(config.retrieval, top_k=top_k))


def open_index(config: ModelsConfig, seeds_dir: Path | None = None, index_dir: Path | None = None,
               rebuild: bool = False, on_status: Status = _quiet, on_progress: Progress | None = None,
               embedder=None) -> OpenedIndex:
    """The articles and their index, built (or rebuilt) when missing, stale or unreadable."""
    try:
        parse_store(config.retrieval.vector_store)
    except ValueError as problem:
        raise RagError(f"[retrieval] vector_store (or --store) {config.retrieval.vector_store!r} is not valid: {problem}") from None
    seeds_dir = Path(seeds_dir) if seeds_dir else default_seeds_dir()
    store = IndexStore(index_dir or default_index_dir(seeds_dir))
    corpus = load_corpus(seeds_dir, store.known_documents())
    for reason in corpus.skipped:
        on_status(f"skipped {reason}")
    if embedder is None:
        from rag.embedder import Embedder

        embedder = Embedder(config.embedder, on_status)
    expected = Manifest.expected(corpus, embedder.spec.id, embedder.spec.fingerprint(), embedder.dimension,
                                 config.chunking, config.retrieval.vector_store)
    index = None
    if not rebuild:
        try:
            index = store.load(corpus, expected)
            store.remove_stale_builds()
        except IndexNotUsable as why:
            on_status(f"{why}; bringing it up to date")
    if index is None:
        store.prepare_for_writing()  # an unwritable folder is found out before the embedding, not after
        reusable = None if rebuild else store.reusable(corpus, expected)
        checkpoint = store.embedding_checkpoint(expected.embedder_fingerprint)
        index, counts = build_index(corpus, embedder, config.chunking, config.retrieval.vector_store,
                                    on_progress, reusable, checkpoint)
        store.save(index)
        checkpoint.clear()
        resumed = f", {counts.resumed} from a stopped build" if counts.resumed else ""
        on_status(f"indexed {len(index.passages)} passages from {len(corpus.documents)} articles into "
                  f"{store.directory} ({counts.embedded} embedded, {counts.reused} reused{resumed})")
    return OpenedIndex(corpus, index, embedder, store.directory)


def build_pipeline(config: ModelsConfig | None = None, seeds_dir: Path | None = None, index_dir: Path | None = None,
                   rebuild: bool = False, on_status: Status = _quiet, on_progress: Progress | None = None,
                   embedder=None, reader=None) -> Pipeline:
    """A ready Pipeline: articles, index (built if needed), retriever, reader and decision.
    `embedder` and `reader` replace the configured models (tests pass fakes)."""
    config = config or load_models_config()
    if config.retrieval.top_k < 1:
        raise RagError("--top-k must be at least 1", 2)
    if reader is None:
        config.reader.resolve()  # a missing reader is reported now, not after building an index
    _warn_if_fitted_for_another_reader(config, on_status)
    opened = open_index(config, seeds_dir, index_dir, rebuild, on_status, on_progress, embedder)
    retriever = Retriever(opened.embedder, opened.index.passages, opened.index.vectors, opened.index.keywords,
                          config.retrieval.rrf_k, config.retrieval.candidates, opened.corpus.documents)
    if reader is None:
        from rag.reader import Reader

        reader = Reader(config.reader, on_status)
    return Pipeline(opened.corpus, retriever, reader, config.reader.settings.abstention, config.retrieval.top_k)


def _warn_if_fitted_for_another_reader(config: ModelsConfig, on_status: Status) -> None:
    """The decision's weights mean something only for the reader they were fitted on."""
    fitted_for = config.reader.settings.abstention.fitted_for
    if not fitted_for:
        return
    try:
        current = config.reader.fingerprint()
    except RagError:
        return  # a missing reader is reported where it is loaded
    if fitted_for != current:
        on_status(f"warning: [reader.abstention] in {config.path} was fitted for another reader ({fitted_for}; "
                  f"this one is {current}): refit it with python eval/tune_abstention.py")
