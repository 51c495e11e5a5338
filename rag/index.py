"""The passage index on disk: passages (offsets into the articles), their vectors and their
keyword index.

On disk an index is a build folder (passages.jsonl, the vector store's files, keywords/, converted.jsonl, manifest.json) named by the
CURRENT file. A build is written to a fresh folder and CURRENT is swapped atomically, so a
crash mid-build leaves the previous index in place and loadable."""
from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import itertools
import json
import os
import re
import shutil
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from rag.checkpoint import CHUNK, EmbeddingCheckpoint, text_key
from rag.corpus import ChunkSettings, Conversion, Corpus, chunk_document, first_names, load_corpus
from rag.errors import RagError, first_line
from rag.leftovers import fsync_dir, fsync_tree, write_atomically
from rag.retrieval import VECTOR_STORES, KeywordIndex, VectorStore, backend, make_vector_store, parse_store
from rag.retrieval.keyword import FOLDER as KEYWORD_FOLDER, WordRulesChanged
from rag.schema import Document, Passage

# From this many passages on, building the keyword index and saving take seconds after the
# embedding's progress bar has ended (BM25 over a million passages: 48 s; README, "Scale"), so a
# build says what it is doing rather than seem to hang
SAYS_WHAT_IT_DOES_FROM = 20_000
OLD_KEYWORD_FOLDER = "bm25"  # where rag before the postings kept bm25s's index: such an index is read again
INDEX_FORMAT = 2  # 2: checksums of the index files, vector ids, a saved keyword index


class IndexNotUsable(RagError):
    """The stored index is missing, stale or unreadable; the message says which, for the user."""


@dataclass(frozen=True)
class Manifest:
    format: int
    embedder_id: str
    embedder_fingerprint: str
    dimension: int
    chunking: dict
    corpus_fingerprint: str
    documents: dict  # doc_id -> sha256 of its text, to say which articles changed
    passages: int
    built_at: str
    vector_store: str  # which VectorStore wrote the vectors, and where: "faiss", "milvus:./archive.db"
    files: dict = field(default_factory=dict)  # file name -> sha256, checked on every load
    # the articles folder it was built from, resolved: an index serves that folder alone (rag.assembly,
    # index_folder_check). "" where unknown: an index written before rag recorded it
    articles_folder: str = ""

    @classmethod
    def from_json(cls, text: str) -> Manifest:
        """A stored manifest, every field checked for its type (ValueError if any is wrong)."""
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        if data.get("format") != INDEX_FORMAT:  # an older layout: say so, whatever its fields
            return cls(data.get("format") if isinstance(data.get("format"), int) else -1, "", "", 0, {}, "", {}, 0, "", "")
        types = {f.name: f.type for f in dataclasses.fields(cls)}
        wrong = (set(data) ^ set(types)) - {"articles_folder"}  # recorded since, so it may be missing
        if wrong:
            raise ValueError(f"fields {sorted(wrong)} missing or unexpected")
        for name, value in data.items():
            expected = {"int": int, "str": str, "dict": dict}[types[name]]
            if name == "vector_store":
                parse_store(str(value))  # ValueError for an unknown one
            if not isinstance(value, expected) or isinstance(value, bool):
                raise ValueError(f"{name} is a {type(value).__name__}, not a {types[name]}")
        for name in ("documents", "files"):
            if not all(isinstance(k, str) and isinstance(v, str) for k, v in data[name].items()):
                raise ValueError(f"{name} must map names to hashes")
        return cls(**data)

    @classmethod
    def expected(cls, corpus: Corpus, embedder_id: str, embedder_fingerprint: str, dimension: int,
                 chunking: ChunkSettings, vector_store: str, passages: int = 0) -> Manifest:
        return cls(
            format=INDEX_FORMAT,
            embedder_id=embedder_id,
            embedder_fingerprint=embedder_fingerprint,
            dimension=dimension,
            chunking=chunking.as_dict(),
            corpus_fingerprint=corpus.fingerprint,
            documents={d: text_key(doc.text) for d, doc in sorted(corpus.documents.items())},
            passages=passages,
            built_at=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            vector_store=vector_store,
            articles_folder=str(Path(corpus.directory).resolve()),
        )

    def reusable_for(self, expected: Manifest) -> bool:
        """Whether vectors of this index can serve `expected`: all that may differ is the articles
        and how they are cut, since a vector is reused only for a passage of an unchanged article
        at the same offsets, so for the same words (new sentence rules re-embed only what they move)."""
        return self.format == expected.format and all(
            getattr(self, name) == getattr(expected, name)
            for name in ("embedder_id", "embedder_fingerprint", "dimension", "vector_store"))

    def unchanged(self, documents: dict[str, str]) -> set[str]:
        """The ids of this index's articles whose text is as it was (`documents`: id -> digest, as
        `documents` here holds them)."""
        return {doc_id for doc_id, digest in self.documents.items() if documents.get(doc_id) == digest}

    def renamed(self, documents: dict[str, str]) -> dict[str, str]:
        """{old id: new id} for this index's articles whose text `documents` now holds under
        another id, one for one: a file renamed (an archive's files given a date prefix), or two
        swapping names, keeps its vectors, where it was embedded again whole."""
        unchanged = self.unchanged(documents)
        moved: dict[str, list[str]] = {}  # digest -> the old ids of that text that no longer hold it
        for doc_id, digest in sorted(self.documents.items()):
            if doc_id not in unchanged:
                moved.setdefault(digest, []).append(doc_id)
        renamed = {}
        for doc_id, digest in sorted(documents.items()):
            if doc_id not in unchanged and moved.get(digest):
                renamed[moved[digest].pop(0)] = doc_id
        return renamed

    def staleness(self, expected: Manifest) -> str | None:
        """Why this stored index does not fit the current articles and settings, or None."""
        reason = settings_staleness(self, expected) or sentence_rules_staleness(self, expected)
        if reason:
            return reason
        if self.vector_store != expected.vector_store:
            return f"the vector store changed ({self.vector_store} -> {expected.vector_store})"
        if self.corpus_fingerprint != expected.corpus_fingerprint:
            return "the articles changed (" + describe_changes(self.documents, expected.documents) + ")"
        return None


def settings_staleness(stored, expected) -> str | None:
    """Why vectors made with `stored`'s format, embedder and chunking cannot serve `expected`'s
    (any two manifests with those fields: an index folder's, a Milvus archive's), or None."""
    if stored.format != expected.format:
        return "it was written by another version of rag"
    if stored.embedder_id != expected.embedder_id:
        return f"the embedder changed ({stored.embedder_id} -> {expected.embedder_id})"
    if stored.embedder_fingerprint != expected.embedder_fingerprint:
        return (f"the embedder's files or precision changed ({expected.embedder_id}: "
                f"{stored.embedder_fingerprint} -> {expected.embedder_fingerprint})")
    if _settings_only(stored.chunking) != _settings_only(expected.chunking):
        return f"chunking settings changed ({_settings_only(stored.chunking)} -> {_settings_only(expected.chunking)})"
    return None


def sentence_rules_staleness(stored, expected) -> str | None:
    """Why passages cut by `stored`'s sentence rules are cut again, or None. Only an index folder
    asks: its passages are cut again at little cost (only those that move are embedded again),
    while a Milvus archive keeps the cuts it has, which still slice their articles, until `rag
    index --force`."""
    old_rules, new_rules = (manifest.chunking.get("sentence_rules", 1) for manifest in (stored, expected))
    if old_rules != new_rules:
        return f"rag's sentence rules changed ({old_rules} -> {new_rules}), so passages are cut again"
    return None


def _settings_only(chunking: dict) -> dict:
    """The chunking settings of models.toml, without the sentence rules an index records beside them
    (indexes written before they were recorded hold none: rules 1)."""
    return {name: value for name, value in chunking.items() if name != "sentence_rules"}


@dataclass
class PassageIndex:
    """The passages of the corpus and what finds them: passage i is vector id i and keyword row i."""

    passages: list[Passage | None]  # None only where `searchable` leaves a passage out
    vectors: VectorStore
    keywords: KeywordIndex
    manifest: Manifest
    converted: list[dict] = field(default_factory=list)  # what converted files gave: saved, reused if unchanged
    build: str | None = None  # the build folder it was loaded from or saved as (IndexStore.version), once it is one
    # the ids of the passages that may be searched; None: every one. An index out of date that is
    # read as it is (IndexStore.load_unchanged) holds None in the places of the passages of articles
    # edited or removed since, whose offsets may no longer slice their text
    searchable: np.ndarray | None = None


@dataclass
class Reusable:
    """What a stored index still holds that is right: the passages of articles that did not
    change, with their vectors (`ids` are their ids in `vectors`)."""

    passages: list[Passage]
    ids: list[int]
    vectors: VectorStore
    cut_alike: bool  # cut by the same chunking settings and sentence rules: the passages stand as they are
    keywords: KeywordIndex | None = None  # the stored keyword index (its rows are the stored ids), when sound
    keywords_unusable: str | None = None  # else why not


@dataclass(frozen=True)
class BuildCounts:
    embedded: int  # passages embedded by this build
    reused: int  # passages whose vectors came from the previous index
    resumed: int  # passages whose vectors came from a build that was stopped


def build_index(corpus: Corpus, embedder, chunking: ChunkSettings, vector_store: str,
                on_progress: Callable[[int, int], None] | None = None, reusable: Reusable | None = None,
                checkpoint: EmbeddingCheckpoint | None = None,
                on_status: Callable[[str], None] = lambda message: None) -> tuple[PassageIndex, BuildCounts]:
    """The index of `corpus`: passages found in `reusable` (same article text, same offsets)
    keep their vectors, those a stopped build embedded come from `checkpoint`, and only the
    others are embedded, in chunks saved to `checkpoint` as they are done. On a large archive,
    `on_status` hears of the keyword index being built, which takes a while after the embedding."""
    passages = _cut(corpus, chunking, reusable)
    if not passages:
        raise RagError(f"the articles in {corpus.directory} hold no text to index")
    old_ids = {}
    if reusable is not None:
        old_ids = {(p.doc_id, p.start, p.end): i for p, i in zip(reusable.passages, reusable.ids)}
    kept = [n for n, p in enumerate(passages) if (p.doc_id, p.start, p.end) in old_ids]
    fresh = [n for n, p in enumerate(passages) if (p.doc_id, p.start, p.end) not in old_ids]
    if kept:  # the store itself copies them: an IVF index keeps its clusters (training them made an update at 1M 33 s, not 3)
        stored = [old_ids[(passages[n].doc_id, passages[n].start, passages[n].end)] for n in kept]
        vectors = reusable.vectors.renumbered(np.array(stored, dtype=np.int64), np.array(kept, dtype=np.int64))
    else:
        vectors = make_vector_store(vector_store, embedder.dimension)
    saved = checkpoint.load() if checkpoint else {}
    keys = {n: text_key(passages[n].text) for n in fresh}
    resumed = [n for n in fresh if keys[n] in saved]
    if resumed:
        vectors.add(np.array(resumed, dtype=np.int64), np.stack([saved[keys[n]] for n in resumed]))
    _embed([n for n in fresh if keys[n] not in saved], passages, keys, embedder, vectors, checkpoint, on_progress)
    manifest = Manifest.expected(corpus, embedder.spec.id, embedder.spec.fingerprint(), embedder.dimension,
                                 chunking, vector_store, passages=len(passages))
    converted = [row for name, conversion in corpus.converted.items() for row in _conversion_rows(name, conversion)]
    keywords = _keyword_index(passages, kept, fresh, old_ids, reusable, on_status)
    index = PassageIndex(passages, vectors, keywords, manifest, converted)
    return index, BuildCounts(len(fresh) - len(resumed), len(kept), len(resumed))


def _keyword_index(passages: list[Passage], kept: list[int], fresh: list[int], old_ids: dict,
                   reusable: Reusable | None, on_status: Callable[[str], None]) -> KeywordIndex:
    """The stored keyword index updated, when there is a sound one: only the new passages are
    read (reading every passage again was most of the time of adding an article to a large
    archive); else one built from every passage."""
    if reusable is not None and reusable.keywords is not None:
        stored = np.array([old_ids[(passages[n].doc_id, passages[n].start, passages[n].end)] for n in kept], dtype=np.int64)
        try:
            return reusable.keywords.updated(stored, np.array(kept, dtype=np.int64), {n: passages[n].text for n in fresh},
                                             len(passages))
        except ValueError:  # its passages are not the stored index's (it never was: built whole, as any index can be)
            pass
    if takes_a_while(len(passages)):  # where it takes a while, why it is not an update
        why = f" (the stored one cannot be updated: {reusable.keywords_unusable})" if reusable and reusable.keywords_unusable else ""
        on_status(f"building the keyword index of {len(passages):,} passages{why}…")
    return KeywordIndex.build([p.text for p in passages])


def takes_a_while(passages: int) -> bool:
    """Whether a build of this many passages says what it does after the embedding."""
    return passages >= SAYS_WHAT_IT_DOES_FROM


def _cut(corpus: Corpus, chunking: ChunkSettings, reusable: Reusable | None) -> list[Passage]:
    """`chunk_corpus(corpus, chunking)`, with each unchanged article's passages taken as the stored
    index cut them when it cut them alike: cutting every article again was most of the time of
    adding one article to a large archive."""
    stored: dict[str, list[Passage]] = {}
    if reusable is not None and reusable.cut_alike:
        for passage in reusable.passages:
            stored.setdefault(passage.doc_id, []).append(passage)
    return [passage for doc_id in sorted(corpus.documents)
            for passage in stored.get(doc_id) or chunk_document(corpus.documents[doc_id], chunking)]


def _conversion_rows(name: str, conversion: Conversion) -> list[dict]:
    """converted.jsonl's rows for one file: a row per document it gave, and one with what in it
    was skipped (an index written before that row was kept has none: its files are converted again)."""
    return ([{"file": name, "key": conversion.key, "document": asdict(d)} for d in conversion.documents]
            + [{"file": name, "key": conversion.key, "problems": conversion.problems}])


def _embed(todo: list[int], passages: list[Passage], keys: dict[int, str], embedder, vectors: VectorStore,
           checkpoint: EmbeddingCheckpoint | None, on_progress: Callable[[int, int], None] | None) -> None:
    """Embed these passages chunk by chunk, each chunk saved before the next one starts."""
    done = 0

    def advance(n: int) -> None:
        nonlocal done
        done += n
        if on_progress:
            on_progress(done, len(todo))

    for start in range(0, len(todo), CHUNK):
        chunk = todo[start:start + CHUNK]
        embedded = embedder.encode([passages[n].text for n in chunk], on_batch=advance)
        vectors.add(np.array(chunk, dtype=np.int64), embedded)
        if checkpoint is not None and start + CHUNK < len(todo):  # the last chunk goes straight into the index
            checkpoint.save_chunk([keys[n] for n in chunk], embedded)


_BUILDS_MADE = itertools.count(1)  # by this process
BUILD_NAME = re.compile(r"build-\d{8}-\d{6}-\d+(-\d+)?")  # the only folders rag creates in an index folder
MARKER = ".rag-index"  # says "this folder is a rag index": only then does rag delete anything in it
BUILD_MARKER = ".rag-build"  # written first into every build folder rag makes
PASSAGES = "passages.jsonl"
POINTER = "CURRENT"  # the index folder's file naming the build switched in
MANIFEST = "manifest.json"  # each build's record of what it was made from
ARCHIVE_LOCK = ".lock-archive"  # held by rag add and remove for a whole change (rag.archive)
LOCKS = (".lock", ".lock-gate", ".lock-build", ARCHIVE_LOCK)  # readers and writers; builds; add and remove
_BUILDING_HERE = threading.local()  # .held: the build locks this thread holds (IndexStore.building)
CONVERTED = "converted.jsonl"  # the documents of converted (not .txt) files, to skip converting them again


class IndexStore:
    """Where an index lives on disk, and the only code that reads or writes it there.

    Readers hold a shared lock while they read, writers an exclusive one while they write a
    build and switch CURRENT to it, so a reader never sees a build vanish under it. rag only
    deletes folders it made (named like a build and marked inside) in a folder marked as its own."""

    def __init__(self, directory: Path):
        self.directory = Path(directory)

    @property
    def current_build(self) -> Path | None:
        """The build CURRENT names; None when there is no CURRENT (IndexNotUsable if it is unreadable)."""
        pointer = self.directory / POINTER
        try:
            name = pointer.read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            return None
        except NotADirectoryError as exc:  # no index can be read or written there: said once, as the error it is
            raise (self._is_a_file() if self.directory.is_file() else self._cannot_create(exc)) from None
        except (OSError, UnicodeDecodeError) as exc:
            raise IndexNotUsable(f"the index pointer {pointer} is unreadable ({first_line(exc)})") from None
        if not BUILD_NAME.fullmatch(name):
            raise IndexNotUsable(f"the index pointer {pointer} names no build ({name[:40]!r})")
        return self.directory / name

    def _is_a_file(self) -> RagError:
        return RagError(f"the index folder {self.directory} is a file, not a folder")

    def _not_ours(self) -> RagError:
        return RagError(f"{self.directory} is not empty and is not a rag index; give --index-dir an empty or new folder")

    def _cannot_create(self, exc: OSError) -> RagError:
        return RagError(f"cannot create the index folder {self.directory}: {exc.strerror}")

    def version(self) -> str | None:
        """Which build is current, read cheaply (one small file): it changes whenever a build is
        switched in, and only then. None when there is none or it cannot be read."""
        try:
            return (self.directory / POINTER).read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError):
            return None

    def _current(self) -> tuple[Path, Manifest]:
        """The current build and its manifest (IndexNotUsable when there is none, or it is unreadable)."""
        build = self.current_build
        if build is None and self._holds_other_things():
            raise self._not_ours()  # said now, not after "no index yet …; bringing it up to date"
        if build is None:
            raise IndexNotUsable(f"no index yet in {self.directory}")
        try:
            return build, Manifest.from_json((build / MANIFEST).read_text(encoding="utf-8"))
        except (OSError, ValueError, TypeError) as exc:
            raise IndexNotUsable(f"the index in {build} is unreadable (manifest: {first_line(exc)})") from None

    def load(self, corpus: Corpus, expected: Manifest) -> PassageIndex:
        """The stored index, when it serves these articles and settings as they are; else
        IndexNotUsable, saying why."""
        with self._lock(shared=True):
            build, manifest = self._current()
            reason = manifest.staleness(expected)
            if reason:
                raise IndexNotUsable(f"the index is out of date: {reason}")
            return self._read(build, manifest, corpus)

    def load_unchanged(self, corpus: Corpus, expected: Manifest) -> PassageIndex:
        """The stored index as it is, out of date, where it cannot be brought up to date (a
        folder that cannot be written): only the passages of the articles unchanged since it was
        built may be searched (`searchable`), as only theirs surely slice their text as it is now;
        articles added since are not in it. IndexNotUsable where its vectors cannot serve these
        settings (another embedder or store), it is unreadable, or no article of it is unchanged."""
        with self._lock(shared=True):
            build, manifest = self._current()
            if not manifest.reusable_for(expected):
                raise IndexNotUsable("its vectors were made by another embedder, or are in another store")
            unchanged = manifest.unchanged(expected.documents)
            index = self._read(build, manifest, corpus, only=unchanged)
        if not len(index.searchable):
            raise IndexNotUsable(f"no article of the index in {build} is unchanged")
        return index

    def _read(self, build: Path, manifest: Manifest, corpus: Corpus, only: set[str] | None = None) -> PassageIndex:
        """The index in `build`, every file checked; with `only`, searchable in those articles alone."""
        if _in_older_keyword_layout(build):
            raise IndexNotUsable("the keyword index is in an older layout (bm25s's), so it is built again from the passages")
        try:
            _verify_checksums(build, manifest.files)
            passages = _passages_in_place(build / PASSAGES, corpus, only)
            vectors = backend(manifest.vector_store).load(build)
            keywords = KeywordIndex.load(build, len(passages))
        except WordRulesChanged as exc:
            raise IndexNotUsable(f"the keyword index is out of date: {exc}, so it is built again from the passages") from None
        except (OSError, ValueError, KeyError, TypeError, AttributeError, RuntimeError) as exc:
            raise IndexNotUsable(f"the index in {build} is unreadable ({first_line(exc)})") from None
        if len(vectors) != len(passages) or vectors.dimension != manifest.dimension or len(passages) != manifest.passages:
            raise IndexNotUsable(f"the index in {build} is unreadable (its files disagree in size)")
        searchable = None if only is None else np.flatnonzero([passage is not None for passage in passages])
        return PassageIndex(passages, vectors, keywords, manifest, build=build.name, searchable=searchable)

    def stored_manifest(self) -> Manifest | None:
        """The manifest of the index switched in; None when there is none, or it cannot be read."""
        try:
            with self._lock(shared=True):
                return self._current()[1]
        except (RagError, OSError):
            return None

    def changed_since_indexed(self, document) -> str | None:
        """Why a span cited from this index may not slice `document`'s text as it is now: the
        article changed since, or was added after; None when it is as indexed, or no index can be read."""
        try:
            with self._lock(shared=True):
                _, manifest = self._current()
        except (RagError, OSError):  # no index (yet), none readable, or no lock: nothing to warn of
            return None
        indexed = manifest.documents.get(document.doc_id)
        if indexed is None:
            return f"{document.doc_id} is not in the index yet: nothing was cited from it"
        if indexed != text_key(document.text):
            return (f"{document.doc_id} changed since it was indexed ({manifest.built_at}): a span cited before "
                    f"may mark other text now; the next question indexes it again (where the index can be written; "
                    f"else it is not searched until rag index runs where it can)")
        return None

    def known_documents(self) -> dict[tuple[str, str], Conversion]:
        """What each converted file gave when the current index was built, by (file name,
        conversion key); empty when there is no sound index to take it from."""
        known: dict[tuple[str, str], Conversion] = {}
        said: set[tuple[str, str]] = set()
        try:
            with self._lock(shared=True):
                build, manifest = self._current()
                data = _read_checked(build / CONVERTED, manifest.files.get(CONVERTED))
            for line in data.decode("utf-8").split("\n"):  # not splitlines(): U+2028 may sit inside the text
                if not line:
                    continue
                row = json.loads(line)
                gave = known.setdefault((row["file"], row["key"]), Conversion(row["key"], [], []))
                if "problems" in row:
                    gave.problems.extend(map(str, row["problems"]))
                    said.add((row["file"], row["key"]))
                else:
                    gave.documents.append(Document(**row["document"]))
        except (OSError, ValueError, KeyError, TypeError, RagError):  # IndexNotUsable, or a folder that is no index
            return {}  # converting again is always safe
        return {key: gave for key, gave in known.items() if key in said}  # what it skipped is known too

    def articles(self, seeds_dir: Path, earlier: Corpus | None = None) -> Corpus:
        """The articles of `seeds_dir`, each converted file (.html, .md, .jsonl) taken from what
        this index recorded when the file is unchanged: converting a web archive again costs
        minutes; and each file that stands as it did in `earlier` taken from that read."""
        return load_corpus(seeds_dir, self.known_documents(), earlier)

    def reusable(self, corpus: Corpus, expected: Manifest) -> Reusable | None:
        """The passages and vectors of the stored index whose articles are unchanged, when only
        articles or chunking differ (same embedder and store); None when nothing can be reused."""
        try:
            with self._lock(shared=True):
                build, manifest = self._current()
                if not manifest.reusable_for(expected):
                    return None
                # only what is reused: a damaged keyword index (rebuilt anyway) must not cost every vector
                _verify_checksums(build, manifest.files, wanted=lambda name: name != CONVERTED and not _is_keywords(name))
                unchanged = manifest.unchanged(expected.documents)
                renamed = manifest.renamed(expected.documents)
                rows = _read_passages(build / PASSAGES, corpus, only=unchanged | set(renamed), renamed=renamed)
                vectors = backend(manifest.vector_store).load(build)
                keywords, unusable = _sound_keywords(build, manifest)
        except (OSError, ValueError, KeyError, TypeError, AttributeError, RuntimeError, IndexNotUsable):
            return None  # a damaged index is rebuilt whole
        return Reusable([p for _, p in rows], [i for i, _ in rows], vectors, cut_alike=manifest.chunking == expected.chunking,
                        keywords=keywords, keywords_unusable=unusable)

    def prepare_for_writing(self) -> None:
        """Fail now, before hours of embedding, if the index cannot be written here; and never
        write into (or later clean up) a folder that holds other things than a rag index."""
        if self.directory.exists() and not self.directory.is_dir():
            raise self._is_a_file()
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise self._cannot_create(exc) from None
        if not self._is_ours():
            raise self._not_ours()
        try:
            # one name per thread: a chat loads in a thread of its own, beside another build of the same process
            probe = self.directory / f".probe-{os.getpid()}-{threading.get_ident()}"
            probe.write_bytes(b"")
            probe.unlink()
            (self.directory / MARKER).write_text("a rag index folder: rag may replace build-* folders in it\n")
        except OSError as exc:
            raise RagError(f"cannot write the index to {self.directory}: {exc.strerror}") from None

    def save(self, index: PassageIndex) -> Path:
        self.prepare_for_writing()
        with self._lock():
            build = self._new_build_folder()
            (build / BUILD_MARKER).write_text("")
            _write_passages(build / PASSAGES, index.passages)
            index.vectors.save(build)
            index.keywords.save(build)
            with (build / CONVERTED).open("w", encoding="utf-8") as f:
                for row in index.converted:
                    f.write(json.dumps(row, ensure_ascii=False) + "\n")
            files = {name: _sha256(build / name) for name in _index_files(build)}
            manifest = dataclasses.replace(index.manifest, files=files)
            write_atomically(build / MANIFEST, json.dumps(manifest.__dict__, indent=2))
            fsync_tree(build)
            fsync_dir(self.directory)
            write_atomically(self.directory / POINTER, build.name + "\n")
            fsync_dir(self.directory)  # the switch itself survives a crash only once the folder is synced
            index.manifest, index.build = manifest, build.name
            self._remove_other_builds(keep=build)
        return build

    def _new_build_folder(self) -> Path:
        stem = f"build-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
        for _ in range(1000):  # several builds in one second, by one process
            # numbered on from the process's last build, never again from 1: a name reused after its
            # build was removed would read as no switch to a chat that answered from that build
            build = self.directory / f"{stem}-{next(_BUILDS_MADE)}"
            try:
                build.mkdir()
                return build
            except FileExistsError:
                continue
        raise RagError(f"cannot make a new build folder in {self.directory}")

    @contextlib.contextmanager
    def building(self, on_wait: Callable[[], None] = lambda: None):
        """Held for a whole build, embedding included (`.lock-build`), so that two processes
        never build one index at once: a question asked during `rag add` waits for its build
        (and then loads it) instead of embedding everything again beside it, and the two never
        share the embedding checkpoint. Yields whether it had to wait for another build."""
        lock = (self.directory / ".lock-build").resolve()
        held = _BUILDING_HERE.__dict__.setdefault("held", set())
        if lock in held:  # flock would wait for this very thread, for ever (another thread may wait)
            raise RagError(f"{self.directory} is already being built by this process")
        with lock.open("a") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                waited = False
            except BlockingIOError:
                on_wait()
                fcntl.flock(handle, fcntl.LOCK_EX)
                waited = True
            held.add(lock)
            try:
                yield waited
            finally:
                held.discard(lock)

    def embedding_checkpoint(self, embedder_fingerprint: str) -> EmbeddingCheckpoint:
        """Where a build saves its vectors as it goes (emptied once the build is saved)."""
        return EmbeddingCheckpoint(self.directory / "in-progress", embedder_fingerprint)

    def remove_stale_builds(self) -> None:
        """Builds left by killed runs, removed when no other rag process is writing here."""
        try:
            with self._lock(wait=False):
                current = self.current_build
                if current is not None:
                    self._remove_other_builds(keep=current)
        except (BlockingIOError, OSError, IndexNotUsable):
            pass  # someone is building, or the folder is read-only: leave it

    def _holds_other_things(self) -> bool:
        try:
            return self.directory.is_dir() and not self._is_ours()
        except OSError:  # a folder that cannot be listed: writing there says why
            return False

    def _is_ours(self) -> bool:
        entries = [p.name for p in self.directory.iterdir()]
        legacy = POINTER in entries and ".lock" in entries  # written by rag before the marker existed
        entries = [e for e in entries if e not in LOCKS
                   and not e.startswith(".probe-")]
        return not entries or MARKER in entries or legacy

    @contextlib.contextmanager
    def _lock(self, shared: bool = False, wait: bool = True):
        """flock on `.lock`: shared to read, exclusive to write. Lock requests pass a gate
        (`.lock-gate`) first, which a writer holds while it waits, so a stream of readers
        cannot starve a writer (flock alone lets new readers in ahead of a waiting writer)."""
        try:  # readers never create the lock files: there is no index to read before a writer made them
            handles = [(self.directory / name).open("r" if shared else "a") for name in (".lock-gate", ".lock")]
        except OSError:
            if not shared:
                raise
            yield  # no index yet, or a read-only folder that nobody writes through us
            return
        gate, main = handles
        mode = (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | (0 if wait else fcntl.LOCK_NB)
        try:
            fcntl.flock(gate, mode)
            fcntl.flock(main, mode)
            if shared:
                fcntl.flock(gate, fcntl.LOCK_UN)  # a reader holds only the main lock while it reads
            yield
        finally:
            for handle in handles:
                handle.close()  # closing releases its locks

    def _remove_other_builds(self, keep: Path) -> None:
        for old in self.directory.glob("build-*"):
            if old != keep and _made_by_rag(old):
                for store in VECTOR_STORES.values():  # what a build keeps elsewhere (a Milvus collection)
                    store.release(old)
                shutil.rmtree(old, ignore_errors=True)


def _made_by_rag(folder: Path) -> bool:
    if not (BUILD_NAME.fullmatch(folder.name) and folder.is_dir() and not folder.is_symlink()):
        return False
    return (folder / BUILD_MARKER).is_file() or (folder / MANIFEST).is_file()  # the latter: builds of format 1


def _is_keywords(name: str) -> bool:
    return name.startswith((f"{KEYWORD_FOLDER}/", f"{OLD_KEYWORD_FOLDER}/"))


def _in_older_keyword_layout(build: Path) -> bool:
    return not (build / KEYWORD_FOLDER).is_dir() and (build / OLD_KEYWORD_FOLDER).is_dir()


def _sound_keywords(build: Path, manifest: Manifest) -> tuple[KeywordIndex | None, str | None]:
    """The build's keyword index, when its files are there, vouched for and sound; else None and
    why (an index written before keyword indexes were kept as postings, other word rules, a damaged
    file): then an update builds it from every passage, and the vectors are still reused."""
    if _in_older_keyword_layout(build):
        return None, "it is in an older layout, bm25s's"
    try:
        _verify_checksums(build, manifest.files, wanted=lambda name: name.startswith(f"{KEYWORD_FOLDER}/"))
        return KeywordIndex.load(build, manifest.passages), None
    except (OSError, ValueError, KeyError, TypeError, IndexError, AttributeError) as exc:  # WordRulesChanged too
        return None, first_line(exc)


def _index_files(build: Path) -> list[str]:
    """Every file of a build that the manifest vouches for (all but itself and the marker)."""
    return sorted(str(p.relative_to(build)) for p in build.rglob("*")
                  if p.is_file() and p.name not in (MANIFEST, BUILD_MARKER))


def _read_checked(path: Path, sha256: str | None) -> bytes:
    data = path.read_bytes()
    if sha256 is None or hashlib.sha256(data).hexdigest() != sha256:
        raise ValueError(f"{path.name} does not match its checksum")
    return data


def _verify_checksums(build: Path, files: dict[str, str], wanted: Callable[[str], bool] = lambda name: True) -> None:
    """Every file present is vouched for and matches (the whole file is hashed: see README);
    only the `wanted` ones, when only those will be read."""
    present = set(filter(wanted, _index_files(build)))
    files = {name: digest for name, digest in files.items() if wanted(name)}
    missing = sorted(set(files) - present)
    if missing or not files:
        raise OSError(f"{missing[0] if missing else 'every file'} is missing")
    for name in sorted(present):
        if files.get(name) != _sha256(build / name):
            raise ValueError(f"{name} does not match its checksum: it was changed or damaged")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _write_passages(path: Path, passages: list[Passage]) -> None:
    """passages.jsonl: a passage a line, as json.dumps writes {"doc_id", "start", "end"}, each
    article's id quoted once (json.dumps of every row was 2.5 s of each update at 1M passages)."""
    quoted: dict[str, str] = {}
    with path.open("w", encoding="utf-8") as f:
        for p in passages:
            doc_id = quoted.get(p.doc_id) or quoted.setdefault(p.doc_id, json.dumps(p.doc_id))
            f.write(f'{{"doc_id": {doc_id}, "start": {p.start}, "end": {p.end}}}\n')


def _read_passages(path: Path, corpus: Corpus, only: set[str] | None = None,
                   renamed: dict[str, str] | None = None) -> list[tuple[int, Passage]]:
    """(row number, passage) for each stored passage (of the `only` articles, when given), an
    article `renamed` (old id: new id, the same text) under its new id."""
    return [(number, passage) for number, passage in enumerate(_passages_in_place(path, corpus, only, renamed))
            if passage is not None]


def _passages_in_place(path: Path, corpus: Corpus, only: set[str] | None = None,
                       renamed: dict[str, str] | None = None) -> list[Passage | None]:
    """Each stored passage in its row, sliced from its article's text; None in the rows of
    articles not in `only`, when given (their text may differ from what was indexed, or be gone)."""
    passages: list[Passage | None] = []
    renamed = renamed or {}
    lines = path.read_text(encoding="utf-8").splitlines()
    # one parse of them all: one per line was a second of every update at 50k passages
    for row in json.loads("[" + ",".join(lines) + "]"):
        if only is not None and row["doc_id"] not in only:
            passages.append(None)
            continue
        doc_id = renamed.get(row["doc_id"], row["doc_id"])
        doc = corpus.documents[doc_id]
        start, end = int(row["start"]), int(row["end"])
        if not 0 <= start < end <= len(doc.text):
            raise ValueError(f"passage offsets {start}:{end} outside {doc_id}")
        passages.append(Passage(doc_id, start, end, doc.text[start:end]))
    return passages


def describe_changes(old: dict, new: dict) -> str:
    added = sorted(set(new) - set(old))
    removed = sorted(set(old) - set(new))
    changed = sorted(d for d in set(old) & set(new) if old[d] != new[d])
    parts = [f"{label} {len(ids):,}: {first_names(ids)}"
             for label, ids in (("added", added), ("removed", removed), ("edited", changed)) if ids]
    return "; ".join(parts) or "content differs"
