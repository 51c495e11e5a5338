"""Making the parts from settings and handing them to a Pipeline: the one place that knows
which embedder, store, reader and decision a models.toml asks for."""
from __future__ import annotations

import dataclasses
import functools
import os
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from rag.config import ModelsConfig, default_models_file, load_models_config
from rag.corpus import Corpus, load_corpus, say_skipped
from rag.errors import RagError, Stopped
from rag.checkpoint import CHUNK, text_key
from rag.index import IndexNotUsable, IndexStore, Manifest, PassageIndex, build_index, takes_a_while
from rag.pipeline import BUNDLED_SEEDS, Pipeline, article_folders, default_index_dir, default_seeds_dir
from rag.retrieval import Retriever, parse_store
from rag.schema import NOTE
from rag.wording import counted

if TYPE_CHECKING:  # rag.archive is imported where an add or remove runs
    from rag.archive import Archive, FolderChange

Status = Callable[[str], None]
Progress = Callable[[int, int], None]


def _quiet(message: str) -> None:
    pass


@dataclass
class OpenedIndex:
    corpus: Corpus
    index: PassageIndex
    embedder: object


def with_store(config: ModelsConfig, store: str | None) -> ModelsConfig:
    """The config with [retrieval] vector_store overridden (by --store or RAG_STORE), when given."""
    if not store:
        return config
    try:
        return dataclasses.replace(config, retrieval=dataclasses.replace(config.retrieval, vector_store=store))
    except RagError as problem:
        raise RagError(f"--store (or RAG_STORE): {problem}") from None


def check_models(config: ModelsConfig) -> None:
    """Both models are where models.toml says: a missing one is reported at start-up, not at the
    first question (chat) or by /healthz later (serve)."""
    config.embedder.resolve()
    config.reader.resolve()


def with_top_k(config: ModelsConfig, top_k: int | None) -> ModelsConfig:
    """The config with [retrieval] top_k overridden (by --top-k), when given."""
    if top_k is None:
        return config
    if top_k < 1:  # models.toml's own top_k was checked as it was read
        raise RagError("--top-k must be at least 1", 2)
    return dataclasses.replace(config, retrieval=dataclasses.replace(config.retrieval, top_k=top_k))


def stored_articles(config: ModelsConfig, seeds_dir: Path | None = None, index_dir: Path | None = None):
    """The articles citations slice, with `.documents`, `.directory` and `.skipped`: the seeds
    folder's, or a Milvus archive's as it stands (no model is loaded)."""
    if not is_milvus(config):
        return load_articles(seeds_dir, index_dir)
    articles = existing_archive_articles(config)
    if articles is None:
        raise RagError(f"no archive at {config.retrieval.vector_store}; make one with: rag index --store {config.retrieval.vector_store}")
    return articles


def changed_since_indexed(config: ModelsConfig, articles, doc_id: str, seeds_dir: Path | None = None,
                          index_dir: Path | None = None) -> str | None:
    """Why spans cited from the index may not slice article `doc_id` of `articles` as its file
    reads now (it was edited, or added, since); None when it is as indexed, or there is no such
    article. A Milvus archive's articles are the archive's own text: always as indexed."""
    if is_milvus(config):
        return None
    document = articles.documents.get(doc_id)
    if document is None:
        return None
    _, index_dir = article_folders(seeds_dir, index_dir)
    return IndexStore(index_dir).changed_since_indexed(document)


def existing_archive_articles(config: ModelsConfig):
    """The articles of the Milvus archive `config` names, as it stands; None when there is none yet."""
    from rag import milvus_archive

    archive = milvus_archive.MilvusArchive.open(config.retrieval.vector_store)
    return None if archive is None else milvus_archive.ArchiveArticles(archive)


def load_articles(seeds_dir: Path | None = None, index_dir: Path | None = None) -> Corpus:
    """The articles of the seeds folder, converted ones as its index (the default one unless
    given) recorded them (IndexStore.articles)."""
    seeds_dir, index_dir = article_folders(seeds_dir, index_dir)
    return IndexStore(index_dir).articles(seeds_dir)


def open_index(config: ModelsConfig, seeds_dir: Path | None = None, index_dir: Path | None = None,
               rebuild: bool = False, on_status: Status = _quiet, on_progress: Progress | None = None,
               embedder=None, earlier: Corpus | None = None, as_it_is_if_unwritable: bool = False) -> OpenedIndex:
    """The articles and their index folder, built (or rebuilt) when missing, stale or unreadable
    (a Milvus store keeps no index folder: see index_milvus). `earlier`, a read of the folder
    moments before, spares reading again the files that stand as they did then. With
    `as_it_is_if_unwritable` (the commands that answer), an index out of date in a folder that
    cannot be written is taken as it is, searching only its unchanged articles, with a warning;
    without it (rag index, add, remove: their work is the writing), that folder is an error."""
    if is_milvus(config):
        raise RagError("a Milvus store's archive is opened with index_milvus, not as an index folder")
    seeds_dir, index_dir = article_folders(seeds_dir, index_dir)
    store = IndexStore(index_dir)
    seen = store.version()  # the index these articles are read against (another process may switch it)
    corpus = store.articles(seeds_dir, earlier)  # a bad folder is said first, before any model loads
    moved = None if rebuild else index_folder_check(config, store, seeds_dir, lambda: corpus)  # --force replaces it on purpose
    say_skipped(corpus.skipped, on_status)
    if moved:
        on_status(moved)
    embedder = embedder or _embedder(config, on_status)

    def manifest_of(corpus) -> Manifest:
        return Manifest.expected(corpus, embedder.spec.id, embedder.spec.fingerprint(), embedder.dimension,
                                 config.chunking, config.retrieval.vector_store)

    expected = manifest_of(corpus)
    index = None if rebuild else _usable_index(store, corpus, expected, on_status, moved=bool(moved),
                                               as_it_is_if_unwritable=as_it_is_if_unwritable)
    if index is None:
        store.prepare_for_writing()  # an unwritable folder is found out before the embedding, not after
        waiting = lambda: on_status("another rag is bringing this index up to date; waiting for it to finish…")  # noqa: E731
        with store.building(on_wait=waiting) as waited:
            # another process switched the index since the folder was read (it built for articles
            # added since, say): read both again, or this build would switch back to an older view
            if (waited or store.version() != seen) and not rebuild:
                corpus = store.articles(seeds_dir, corpus)
                expected = manifest_of(corpus)
                moved = index_folder_check(config, store, seeds_dir, lambda: corpus)  # the other build may have recorded the place
                index = _usable_index(store, corpus, expected, on_status, moved=bool(moved))
            if index is None:
                index = _build(store, corpus, expected, embedder, config, rebuild, on_status, on_progress)
    if index.searchable is not None:  # read as it is: the articles it answers from, and whose dates it says, are these
        corpus = _unchanged_articles(corpus, index.manifest, expected)
    return OpenedIndex(corpus, index, embedder)


def _unchanged_articles(corpus: Corpus, stored: Manifest, expected: Manifest) -> Corpus:
    """The articles of `corpus` that are as the `stored` index read them."""
    unchanged = stored.unchanged(expected.documents)
    return dataclasses.replace(corpus, documents={doc_id: doc for doc_id, doc in corpus.documents.items() if doc_id in unchanged},
                               not_searched=tuple(sorted(set(corpus.documents) - unchanged)))


def _usable_index(store: IndexStore, corpus, expected: Manifest, on_status: Status, moved: bool = False,
                  as_it_is_if_unwritable: bool = False):
    """The saved index if it serves these articles as they are, else None (saying why). An index
    whose articles are current but whose files were converted again (a newer converter, or a page
    whose bytes changed and text did not) is not kept: a build, reusing every vector, keeps the
    new conversions, so they are not converted again at every start. So is one whose articles
    folder `moved`: the build records its new place. With `as_it_is_if_unwritable`, one out of
    date that cannot be brought up to date here is taken as it is (_as_it_is_if_unwritable)."""
    try:
        index = store.load(corpus, expected)
    except IndexNotUsable as why:
        as_it_is = _as_it_is_if_unwritable(store, corpus, expected, why, on_status) if as_it_is_if_unwritable else None
        if as_it_is is None:
            on_status(f"{why}; bringing it up to date")
        return as_it_is
    if moved:
        try:
            store.prepare_for_writing()
        except RagError:  # a read-only index still serves its folder
            return index
        on_status("recording the folder's new place in the index (every vector is reused)")
        return None
    if corpus.converted_now:
        first, more = corpus.converted_now[0], ", …" if len(corpus.converted_now) > 1 else ""
        converted = f"{len(corpus.converted_now)} file(s) converted again ({first}{more})"
        try:
            store.prepare_for_writing()
        except RagError:  # a read-only index still serves: only the conversions are not kept
            on_status(f"{converted}; the index folder cannot be written, so they will be converted again next time")
            return index
        on_status(f"{converted}; keeping what they gave in the index")
        return None
    store.remove_stale_builds()
    return index


def _as_it_is_if_unwritable(store: IndexStore, corpus, expected: Manifest, why: IndexNotUsable, on_status: Status):
    """The index out of date (`why`) as it is, when its folder cannot be written (a read-only
    mount, an archive's index shared with users who may not write it): its unchanged articles
    still answer, where a build would fail every question on the write. Only their passages are
    searched, since only theirs surely slice the articles as they are now; articles added since
    are not in it. None where the folder can be written (the index is brought up to date), or
    where the index cannot serve even as it is (then the build is tried, and its error said)."""
    try:
        store.prepare_for_writing()
    except RagError as unwritable:
        try:
            index = store.load_unchanged(corpus, expected)
        except IndexNotUsable:
            return None
        on_status(_answering_as_it_is(why, unwritable, store, index.manifest, expected))
        return index
    return None


def _answering_as_it_is(why: IndexNotUsable, unwritable: RagError, store: IndexStore, stored: Manifest,
                        expected: Manifest) -> str:
    """The one warning of an index answering as it is: why it is out of date, why it is not
    brought up to date, what it answers from and what not, and what to do."""
    added = sum(1 for doc_id in expected.documents if doc_id not in stored.documents)
    unchanged = len(stored.unchanged(expected.documents))
    edited = len(expected.documents) - added - unchanged
    left_out = [f"{counted(n, 'article')} {what} since" for what, n in (("added", added), ("edited", edited)) if n]
    not_searched = f"; not searched: {', '.join(left_out)}" if left_out else ""
    return (f"{NOTE}{why}; it cannot be brought up to date here ({unwritable}), so it answers as it is, from the "
            f"{counted(unchanged, 'article')} unchanged since it was built ({stored.built_at}){not_searched}; to bring "
            f"it up to date, run rag index where {store.directory} can be written, or give --index-dir a folder that can be")


MOVED_IF_KEPT = 0.5  # the share of an index's articles, unchanged in a folder, that makes it that index's folder moved


def index_folder_check(config: ModelsConfig, store: IndexStore, seeds_dir: Path,
                       read_articles: Callable[[], Corpus]) -> str | None:
    """Refuses an index built from another articles folder (RagError): brought up to date for
    this one, it would lose the other's embedding (hours, on an archive), and, up to date, it
    would answer from articles that are not this folder's. The folder's own default index
    (`.rag/<name>` beside it) is always its own, moved or copied with it, as it is. Another
    index whose folder is no longer there is taken as that folder moved here when at least half
    its articles are here unchanged: a rebuild that reuses their vectors records the new place;
    returns the line that says so. Another folder's articles, with the old place merely out of
    reach (a drive not mounted), do not take its index. An index that recorded no folder (an
    older rag's) is this folder's unless it holds none of this folder's articles."""
    stored = store.stored_manifest()
    here = Path(seeds_dir).resolve()
    if stored is None or _same_folder(stored.articles_folder, here):
        return None
    if not stored.articles_folder:
        _refuse_if_none_is_here(config, store, stored, here, read_articles)
        return None
    if default_index_dir(here).resolve() == store.directory.resolve():
        # a copy of a project, or a moved one, or one folder seen at two paths (a host and a
        # container): recording each place in turn rebuilt the index at every turn
        return None
    built_from = Path(stored.articles_folder)
    documents = read_articles().documents
    kept = len(stored.unchanged({doc_id: text_key(doc.text) for doc_id, doc in documents.items()}))
    mostly_here = bool(stored.documents) and kept >= MOVED_IF_KEPT * len(stored.documents)
    if os.path.exists(built_from):  # False too where it cannot be looked at: then it must hold most of these articles
        copied = (f"; if it is a copy made with this folder, move it to {default_index_dir(here)}: it is then {here}'s "
                  "own, and every vector is reused") if mostly_here else ""
        raise RagError(f"the index in {store.directory} was built from {built_from}, not {here}; nothing was changed: "
                       f"{_ways_out(config, store, here)}{copied}")
    held = f"{here} holds {kept} of its {counted(len(stored.documents), 'article')} unchanged"
    if mostly_here:
        return f"the index in {store.directory} was built from {built_from}, which is no longer there; {held}, so it is taken as that folder, moved"
    raise RagError(f"the index in {store.directory} was built from {built_from}, which is no longer there, and {held}; "
                   f"nothing was changed: if {built_from} is only out of reach (a drive not mounted), bring it back; "
                   f"else {_ways_out(config, store, here)}")


def articles_before_loading(config: ModelsConfig, seeds_dir: Path | None, index_dir: Path | None,
                            on_status: Status = _quiet):
    """What a chat's banner counts before the models load: the Milvus archive's articles as it
    stands, or the folder's (an archive is made from it when there is none yet), its skipped
    files said. A bad folder, and another folder's index, are refused here, before the prompt."""
    corpus = existing_archive_articles(config) if is_milvus(config) else None
    if corpus is None:
        corpus = load_articles(seeds_dir, index_dir)
        say_skipped(corpus.skipped, on_status)
        refuse_another_folders_index(config, seeds_dir, index_dir, corpus)
    return corpus


def refuse_another_folders_index(config: ModelsConfig, seeds_dir: Path | None, index_dir: Path | None,
                                 corpus: Corpus) -> None:
    """index_folder_check for a command that shows the folder before it opens the index (rag chat's
    banner): another folder's index is refused before anything is said of the articles."""
    seeds_dir, index_dir = article_folders(seeds_dir, index_dir)
    index_folder_check(config, IndexStore(index_dir), seeds_dir, lambda: corpus)


def _same_folder(recorded: str, here: Path) -> bool:
    """Whether the folder an index recorded is `here`: by path, or as the same folder reached by
    another path (a case-insensitive filesystem, a bind mount)."""
    if recorded == str(here):
        return True
    try:
        return bool(recorded) and os.path.samefile(recorded, here)
    except OSError:  # not there, or not to be looked at
        return False


def _refuse_if_none_is_here(config: ModelsConfig, store: IndexStore, stored: Manifest, here: Path,
                            read_articles: Callable[[], Corpus]) -> None:
    """An older rag's index, which did not record its folder, refused (RagError) when it holds
    not one of this folder's articles: then it is surely another folder's."""
    documents = read_articles().documents
    if stored.documents and not any(doc_id in documents for doc_id in stored.documents):
        raise RagError(f"the index in {store.directory} holds none of the articles in {here} (it was built by an older "
                       f"rag, which did not record its articles folder); nothing was changed: {_ways_out(config, store, here)}")


def _ways_out(config: ModelsConfig, store: IndexStore, here: Path) -> str:
    """What to do instead of using another folder's index: this folder's own, or replacing that one on purpose."""
    return (f"leave out --index-dir to use {here}'s own index ({default_index_dir(here)}) or give another one, or rebuild "
            f"this one for {here} on purpose, embedding every article again: {index_command(config, here, store.directory, force=True)}")


def _build(store: IndexStore, corpus, expected: Manifest, embedder, config: ModelsConfig, rebuild: bool,
           on_status: Status, on_progress: Progress | None):
    reusable = None if rebuild else store.reusable(corpus, expected)
    checkpoint = store.embedding_checkpoint(expected.embedder_fingerprint)
    stored = store.stored_manifest() if rebuild else None
    current_kept = stored is not None and stored.staleness(expected) is None  # what a plain rag index would keep
    try:
        index, counts = build_index(corpus, embedder, config.chunking, config.retrieval.vector_store,
                                    on_progress, reusable, checkpoint, on_status)
    except KeyboardInterrupt as stop:  # a stopped build of a big archive keeps its work: the line says so
        saved = checkpoint.saved()
        raise Stopped.by(stop, "while embedding" if saved else "while indexing",
                         _build_kept(store, config, corpus.directory, rebuild, current_kept, saved)) from None
    if takes_a_while(len(index.passages)):
        on_status(f"saving the index of {len(index.passages):,} passages to {store.directory}…")
    store.save(index)
    checkpoint.clear()
    resumed = f", {counts.resumed:,} from a stopped build" if counts.resumed else ""
    on_status(f"indexed {counted(len(index.passages), 'passage')} from {counted(len(corpus.documents), 'article')} into "
              f"{store.directory} ({counts.embedded:,} embedded, {counts.reused:,} reused{resumed})")
    return index


def _build_kept(store: IndexStore, config: ModelsConfig, seeds_dir: Path, rebuild: bool, current_kept: bool,
                saved: int) -> str:
    """What a stopped build kept, and the command that goes on from it. A stopped --force leaves
    the old index in place, and where that one is up to date a plain `rag index` keeps it: only
    --force again takes up the saved passages. A stop before the first save (the model loading,
    the articles being cut) kept nothing, and says so."""
    command = index_command(config, seeds_dir, store.directory, force=rebuild)
    as_it_was = (f"the index in {store.directory} stays as it was (up to date: a plain rag index keeps it); "
                 if current_kept else "")
    if not saved:
        return f"{as_it_was}no embedded passage was saved yet (they are saved every {CHUNK:,}), and {command} starts again"
    where = "there" if current_kept else f"in {store.directory}"
    are = "is" if saved == 1 else "are"
    return (f"{as_it_was}the {counted(saved, 'passage')} embedded so far {are} saved {where} (every {CHUNK:,}), and "
            f"{command} goes on from the last save")


def index_command(config: ModelsConfig, seeds_dir: Path, index_dir: Path, force: bool = False) -> str:
    """The `rag index` command line for these folders and models, each one that is not the
    default given, so that it is the command to copy (without --seeds, it would index ./seeds)."""
    words = ["rag", "index"] + (["--force"] if force else [])
    if Path(seeds_dir).resolve() != default_seeds_dir().resolve():
        words += ["--seeds", str(seeds_dir)]
    if Path(index_dir).resolve() != default_index_dir(seeds_dir).resolve():
        words += ["--index-dir", str(index_dir)]
    if Path(config.path).resolve() != default_models_file().resolve():
        words += ["--models", str(config.path)]
    return shlex.join(words)


def build_pipeline(config: ModelsConfig | None = None, seeds_dir: Path | None = None, index_dir: Path | None = None,
                   rebuild: bool = False, on_status: Status = _quiet, on_progress: Progress | None = None,
                   embedder=None, reader=None) -> Pipeline:
    """A ready Pipeline: articles, index (built if needed), retriever, reader and decision.
    `embedder` and `reader` replace the configured models (tests pass fakes)."""
    config = config or load_models_config()
    if reader is None:
        config.reader.resolve()  # a missing reader is reported now, not after building an index
    warn_if_fitted_for_another_reader(config, on_status)
    index_version = None  # a Milvus archive is read live: it has no version to load again
    if is_milvus(config):
        corpus, retriever = _milvus_parts(config, seeds_dir, rebuild, on_status, on_progress, embedder)
    else:
        opened = open_index(config, seeds_dir, index_dir, rebuild, on_status, on_progress, embedder,
                            as_it_is_if_unwritable=True)
        corpus, index_version = opened.corpus, opened.index.build
        retriever = Retriever(opened.embedder, opened.index.passages, opened.index.vectors, opened.index.keywords,
                              opened.corpus.documents, config.retrieval.rrf_k, config.retrieval.candidates,
                              opened.index.searchable)
    if reader is None:
        from rag.reader import Reader

        reader = Reader(config.reader, on_status)
    return Pipeline(corpus, retriever, reader, config.reader.settings.abstention, config.retrieval.top_k,
                    index_version=index_version)


@dataclass(frozen=True)
class PipelineSource:
    """Where a long-running front end (rag chat, rag serve) gets its pipeline: loaded once, and
    loaded again when another rag switched the index, keeping the models already loaded."""

    config: ModelsConfig
    seeds_dir: Path | None = None
    index_dir: Path | None = None

    def load(self, on_status: Status = _quiet, on_progress: Progress | None = None) -> Pipeline:
        return build_pipeline(self.config, self.seeds_dir, self.index_dir, on_status=on_status, on_progress=on_progress)

    def load_again(self, loaded: Pipeline, on_status: Status = _quiet, on_progress: Progress | None = None) -> Pipeline:
        """The index read anew with the models of `loaded`: seconds, where loading them takes longer."""
        return build_pipeline(self.config, self.seeds_dir, self.index_dir, on_status=on_status, on_progress=on_progress,
                              embedder=loaded.retriever.embedder, reader=loaded.reader)

    def index_version(self) -> str | None:
        """The index build now switched in (asked at every question); None for a Milvus archive, which is read live."""
        return None if self._index_store is None else self._index_store.version()

    @functools.cached_property
    def _index_store(self) -> IndexStore | None:
        return None if is_milvus(self.config) else IndexStore(article_folders(self.seeds_dir, self.index_dir)[1])


def is_milvus(config: ModelsConfig) -> bool:
    """Whether the index is a Milvus archive (rag.milvus_archive) rather than an index folder."""
    return parse_store(config.retrieval.vector_store)[0] == "milvus"  # checked as the settings were made


def _milvus_parts(config: ModelsConfig, seeds_dir: Path | None, rebuild: bool, on_status: Status,
                  on_progress: Progress | None, embedder):
    """The articles and retriever of a Milvus archive; an archive that does not exist yet is made
    from the seeds folder, as a missing index folder is."""
    from rag import milvus_archive
    from rag.retrieval.milvus_retriever import MilvusRetriever

    embedder = embedder or _embedder(config, on_status)
    archive = None if rebuild else milvus_archive.open_for_reading(
        config.retrieval.vector_store, milvus_archive.expected_manifest(embedder, config.chunking), config.path)
    if archive is None:
        archive = index_milvus(config, seeds_dir, rebuild, on_status, on_progress, embedder)[0]
    articles = milvus_archive.ArchiveArticles(archive)
    return articles, MilvusRetriever(embedder, archive, articles, config.retrieval.rrf_k, config.retrieval.candidates)


def index_milvus(config: ModelsConfig, seeds_dir: Path | None = None, rebuild: bool = False, on_status: Status = _quiet,
                 on_progress: Progress | None = None, embedder=None, paths: list[Path] | None = None):
    """Write the articles of the seeds folder (or of the files and folders `paths`) into the
    Milvus archive, those that are new or edited; with `rebuild`, every article is embedded
    again. Returns the archive and what changed."""
    from rag import milvus_archive
    from rag.archive import read_files

    embedder = embedder or _embedder(config, on_status)
    spec = config.retrieval.vector_store
    archive = milvus_archive.open_for_writing(spec, milvus_archive.expected_manifest(embedder, config.chunking),
                                              config.path, rebuild, embedder, config.chunking, on_status, on_progress)
    if paths is None:
        corpus = load_corpus(Path(seeds_dir) if seeds_dir else default_seeds_dir())
        documents, skipped = list(corpus.documents.values()), corpus.skipped
    else:  # each article's source as an absolute path: a relative one means nothing to the team reading it
        documents, skipped = read_files([Path(path).absolute() for path in paths])
    say_skipped(skipped, on_status)
    change = milvus_archive.write_documents(archive, documents, embedder, config.chunking, on_progress)
    change.skipped = [reason for reason in skipped if not reason.startswith(NOTE)]  # a warning's article is written
    return archive, change


@dataclass(frozen=True)
class ArchiveUpdate:
    """What `rag add` or `rag remove` did: the line for the user (what changed, what the index or
    archive now holds) and how much of what it was given was skipped, files and JSON Lines
    records (each said on a line of its own)."""
    line: str
    skipped: int = 0


def add_articles(config: ModelsConfig, paths: list[Path], seeds_dir: Path | None = None, index_dir: Path | None = None,
                 on_status: Status = _quiet, on_progress: Progress | None = None, embedder=None) -> ArchiveUpdate:
    """`rag add`: copy article files (or the article files of folders) into the seeds folder and
    bring the index up to date, or write them into the Milvus archive. `embedder` replaces the
    configured one (a fake in tests)."""
    if is_milvus(config):
        archive, change = index_milvus(config, on_status=on_status, on_progress=on_progress, embedder=embedder, paths=paths)
        return ArchiveUpdate(change.summary(archive), len(change.skipped))
    return _change_archive_folder(config, "add", seeds_dir, index_dir,
                                  lambda archive, change: archive.add(paths, change, on_status), on_status, on_progress,
                                  embedder)


def remove_articles(config: ModelsConfig, doc_ids: list[str], seeds_dir: Path | None = None,
                    index_dir: Path | None = None, on_status: Status = _quiet, on_progress: Progress | None = None,
                    embedder=None) -> ArchiveUpdate:
    """`rag remove`: take articles out of the seeds folder (their files kept in the index folder's
    removed/) and the index, or out of the Milvus archive."""
    if is_milvus(config):
        from rag.archive import removed_said

        articles, passages = remove_from_milvus(config, doc_ids)
        return ArchiveUpdate(f"{removed_said(doc_ids)}; archive: {counted(passages, 'passage')} from {counted(articles, 'article')}")
    return _change_archive_folder(config, "remove", seeds_dir, index_dir,
                                  lambda archive, change: archive.remove(doc_ids, change), on_status, on_progress, embedder)


def _change_archive_folder(config: ModelsConfig, command: str, seeds_dir: Path | None, index_dir: Path | None,
                           change_files, on_status: Status, on_progress: Progress | None, embedder=None) -> ArchiveUpdate:
    """The files changed and the index brought up to date under one lock, so two changes never interleave.
    The embedder is loaded once, when first needed: a moved folder's index is built twice."""
    from rag.archive import Archive, FolderChange

    if seeds_dir is None and default_seeds_dir().resolve() == BUNDLED_SEEDS.resolve():
        raise RagError(f"rag {command} would change the bundled articles (the gold set's): "
                       "give --seeds DIR, a folder of your own", 2)
    if command == "add" and seeds_dir is not None and not Path(seeds_dir).exists():
        raise RagError(f"articles folder not found: {seeds_dir} (rag add copies into a folder that exists: "
                       f"mkdir it first)")
    archive = Archive.at(seeds_dir, index_dir)
    config.embedder.resolve()  # a missing model is said before any file is copied or moved
    models = functools.cache(lambda: embedder or _embedder(config, on_status))
    with archive.locked():
        _record_a_moved_folder(config, archive, on_status, on_progress, models)
        change = FolderChange()  # filled in as files move: a stop then says what moved
        try:
            change_files(archive, change)
        except KeyboardInterrupt as stop:
            raise _stopped_after(stop, change, config, archive) from None
        except RagError as problem:  # a file that could not be put in place (a full disk): what moved before it is said
            raise _failed_after(problem, change, config, archive) from None
        say_skipped(change.skipped, on_status)
        manifest = _brought_up_to_date(config, archive, change, on_status, on_progress, models)
    return ArchiveUpdate(change.summary(archive.trash, manifest.passages, len(manifest.documents)),
                         change.skipped_files + len(change.records_skipped))


def _record_a_moved_folder(config: ModelsConfig, archive: Archive, on_status: Status, on_progress: Progress | None,
                           models: Callable) -> None:
    """Another folder's index refused before any file moves; a moved folder's index made to
    record the new place first (a build that reuses every vector): an add or remove stopped
    half-way, or one that takes most of its articles away, would else leave an index that no
    longer holds half of the folder's articles, which the next command refuses as another's."""
    store = IndexStore(archive.index_dir)
    read = functools.cache(lambda: store.articles(archive.seeds_dir))  # once, for the check and the build
    if index_folder_check(config, store, archive.seeds_dir, read):
        open_index(config, archive.seeds_dir, archive.index_dir, False, on_status, on_progress, models(), earlier=read())


def _brought_up_to_date(config: ModelsConfig, archive: Archive, change: FolderChange, on_status: Status,
                        on_progress: Progress | None, models: Callable) -> Manifest:
    """The index brought up to date after the files changed; a failure or stop says what changed first."""
    try:
        return open_index(config, archive.seeds_dir, archive.index_dir, False, on_status, on_progress, models(),
                          earlier=change.read_before).index.manifest
    except Stopped as stop:  # stopped while embedding: the files did change, and the saved passages are kept
        raise Stopped(stop.doing, f"{change.what_changed(archive.trash)}; {stop.kept}", stop.terminated) from None
    except RagError as exc:  # the files did change: say so, or a retry would be told the article is not there
        raise RagError(f"{change.what_changed(archive.trash)}; but the index was not brought up to date: {exc} "
                       "(rag index does it once that is mended)", exc.exit_code) from None
    except KeyboardInterrupt as stop:
        raise _stopped_after(stop, change, config, archive) from None


def _stopped_after(stop: KeyboardInterrupt, change: FolderChange, config: ModelsConfig, archive: Archive) -> Stopped:
    """A stop once files may have moved: what moved, and the command that brings the index up to date."""
    if not change.moved_any:
        return Stopped.by(stop, "", "nothing was changed")
    return Stopped.by(stop, "", f"{change.what_changed(archive.trash)}; "
                      f"{index_command(config, archive.seeds_dir, archive.index_dir)} brings the index up to date")


def _failed_after(problem: RagError, change: FolderChange, config: ModelsConfig, archive: Archive) -> RagError:
    """A failure once files may have moved: what moved before it, and the command that brings
    the index up to date with them."""
    if not change.moved_any:
        return problem
    return RagError(f"{change.what_changed(archive.trash)}; then: {problem}; "
                    f"{index_command(config, archive.seeds_dir, archive.index_dir)} brings the index up to date",
                    problem.exit_code)


def remove_from_milvus(config: ModelsConfig, doc_ids: list[str]) -> tuple[int, int]:
    """Take these articles out of the Milvus archive, every id checked first; returns what it
    then holds (articles, passages)."""
    from rag import milvus_archive

    spec = config.retrieval.vector_store
    archive = milvus_archive.MilvusArchive.open(spec)
    if archive is None:
        raise RagError(f"no archive at {spec}; nothing was removed")
    present = archive.markers(doc_ids)
    for doc_id in doc_ids:
        if doc_id not in present:
            raise RagError(f"no article {doc_id!r} in the archive at {archive.uri}; nothing was removed")
    for doc_id in dict.fromkeys(doc_ids):
        archive.remove(doc_id)
    return archive.count()


def _embedder(config: ModelsConfig, on_status: Status):
    from rag.embedder import Embedder

    return Embedder(config.embedder, on_status)


def warn_if_fitted_for_another_reader(config: ModelsConfig, on_status: Status) -> None:
    """The decision's weights mean something only for the reader they were fitted on."""
    fitted_for = config.reader.settings.abstention.fitted_for
    if not fitted_for:
        return
    try:
        current = config.reader.fingerprint()
    except RagError:
        return  # a missing reader is reported where it is loaded
    if fitted_for != current:
        on_status(f"{NOTE}[reader.abstention] in {config.path} was fitted for another reader ({fitted_for}; "
                  f"this one is {current}): refit it with python eval/tune_abstention.py")
