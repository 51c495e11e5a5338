"""A whole archive in Milvus, seen alike from every machine that reaches the server: the
articles (their text, so citations slice them anywhere), their passages with vectors and BM25,
and the manifest of the settings they were embedded with.

Milvus holds two collections per archive, and the alias `rag` names the articles one:
- articles: a row `m:manifest` (the settings, and which passage collection goes with it); per
  article a marker row `a:<doc id>` (its present version: sha256 of its text, date and title;
  its metadata) and its text in parts (a VARCHAR holds 64 kB), a row per part and version.
- passages (rag.retrieval.milvus_store): one row per passage, tagged with its article's version.

An article is written version by version: its passages, then its text, then its marker, which
is the one write that makes the new version visible. Readers keep only passages whose version
their article's marker names, so a crash at any point leaves the old version whole (or no
article). After marking, a write deletes the version it replaced, and rows of other versions
older than STALE_AFTER_S: what a crash left (no write takes that long), never what another
process is writing now. Two `rag add` processes touch different rows unless they write the same
article; then the last marker wins and both versions' rows stay whole until that cleanup.

A rebuild (other embedder, other chunking, --force) writes a fresh pair of collections and moves
the alias to it in one step."""
from __future__ import annotations

import dataclasses
import hashlib
import json
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np

from rag.corpus import ChunkSettings, Corpus, chunk_corpus, count_undated, date_range, first_names
from rag.errors import RagError
from rag.index import settings_staleness
from rag.retrieval.milvus_store import (BATCH, DOC_ID_BYTES, MAX_TEXT_BYTES, TIMEOUT_S, TITLE_CHARS, MilvusFailed, MilvusStore,
                                        absent_lite_file, connect, day_number, literal,
                                        require_pymilvus)
from rag.schema import Document, Passage
from rag.wording import counted

ALIAS = "rag"  # the archive's name in a Milvus database
FORMAT = 1
MANIFEST_KEY = "m:manifest"  # keys start with their kind, so no doc id can be another row's key
PART_CHARS = 16_000  # 4 bytes a character at most: a part always fits a VARCHAR
MAX_DOC_ID = 500  # UTF-8 bytes: a key is a doc id and a short prefix, in a VARCHAR of 600
ARTICLE_FIELDS = ("key", "kind", "doc_id", "version", "part", "parts", "passages", "text", "meta", "slot", "written",
                  "nothing")
EMBED_BATCH = 256  # passages embedded together, across articles
STALE_AFTER_S = 600  # rows of a version that is not the present one, older than this, are leftovers
PAGE = 8000  # markers per query: Milvus returns at most 16,384 rows a query
SLOTS = 1 << 62  # an article's slot (a hash of its id) splits the markers into pages


@dataclass(frozen=True)
class ArchiveManifest:
    """What the vectors of an archive were made with; every machine reads it from Milvus."""

    format: int
    embedder_id: str
    embedder_fingerprint: str
    dimension: int
    chunking: dict
    passages_collection: str = ""
    created_at: str = ""

    def staleness(self, expected: ArchiveManifest) -> str | None:
        """Why vectors made with these settings cannot answer with `expected`'s, or None."""
        return settings_staleness(self, expected)


@dataclass(frozen=True)
class Marker:
    """An article's marker row: which version of it is present, and its metadata."""

    doc_id: str
    version: str
    parts: int
    passages: int
    meta: dict  # path, date, body_start, title, source


@dataclass
class ArchiveChange:
    written: list[str] = dataclasses.field(default_factory=list)
    unchanged: list[str] = dataclasses.field(default_factory=list)
    replaced: list[str] = dataclasses.field(default_factory=list)  # of those written, ones the archive held another version of
    embedded: int = 0
    skipped: list[str] = dataclasses.field(default_factory=list)  # "name: why", of the files read for it

    def summary(self, archive: MilvusArchive) -> str:
        """One line for the user: what changed (naming the articles whose version in the archive was
        replaced: on a team's archive, an old copy indexed replaces a colleague's edit), and what
        the archive now holds."""
        articles, passages = archive.count()
        replaced = ""
        if self.replaced:
            replaced = f"; {len(self.replaced)} of them replaced another version in the archive: {first_names(self.replaced)}"
        return (f"written {len(self.written)} ({self.embedded} passages embedded{replaced}), unchanged {len(self.unchanged)}; "
                f"archive at {archive.uri}: {counted(passages, 'passage')} from {counted(articles, 'article')} "
                f"(embedder {archive.manifest.embedder_id})")


def version_of(document: Document) -> str:
    """What the passages' fields are cut from: the text, the date and the title."""
    return hashlib.sha256("\0".join((document.text, document.date or "", document.title or "")).encode()).hexdigest()


def passage_id(doc_id: str, version: str, start: int, end: int) -> int:
    """The same passage of the same article version gets the same id on every machine (63 bits)."""
    return _hash63(f"{doc_id}\0{version}\0{start}\0{end}")


def _hash63(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big") >> 1


def _marker_key(doc_id: str) -> str:
    return f"a:{doc_id}"


def _part_key(doc_id: str, version: str, part: int) -> str:
    return f"t:{version[:16]}:{part}:{doc_id}"


class MilvusArchive:
    def __init__(self, client, uri: str, spec: str, articles: str, passages: MilvusStore, manifest: ArchiveManifest):
        self._client = client
        self.uri = uri
        self.spec = spec  # what --store said, for messages
        self.articles = articles  # the articles collection the alias named when this was opened
        self.passages = passages
        self.manifest = manifest

    # -- opening --------------------------------------------------------------------------

    @classmethod
    def open(cls, spec: str) -> MilvusArchive | None:
        """The archive at `spec` ("milvus:./a.db", "milvus://host:19530"); None when there is none
        yet (a Lite file that is not there stays not there: a typo makes no empty archive)."""
        if absent_lite_file(location_of(spec)):
            require_pymilvus()  # without it, what to install says more than "there is no archive"
            return None
        client, uri = connect(location_of(spec))
        if ALIAS not in client.list_aliases(timeout=TIMEOUT_S)["aliases"]:
            return None
        articles = client.describe_alias(ALIAS, timeout=TIMEOUT_S)["collection_name"]
        try:
            return cls._opened(client, uri, spec, articles)
        except ValueError as why:
            raise RagError(f"{why}; drop it or point --store at another Milvus database") from None

    @classmethod
    def _opened(cls, client, uri: str, spec: str, articles: str) -> MilvusArchive:
        fields = client.describe_collection(articles, timeout=TIMEOUT_S)["fields"]
        if sorted(f["name"] for f in fields) != sorted(ARTICLE_FIELDS):
            raise ValueError(f"the Milvus collection {articles} (alias {ALIAS!r}) at {uri} is not a rag archive "
                             f"(fields: {', '.join(f['name'] for f in fields)})")
        client.load_collection(articles, timeout=TIMEOUT_S)
        rows = client.query(articles, filter=f"key == {literal(MANIFEST_KEY)}", output_fields=["text"], timeout=TIMEOUT_S)
        if not rows:
            raise ValueError(f"the rag archive at {uri} has no manifest")
        try:
            manifest = ArchiveManifest(**json.loads(rows[0]["text"]))
        except (TypeError, ValueError):
            raise ValueError(f"the manifest of the rag archive at {uri} is unreadable") from None
        passages = MilvusStore.open(client, uri, manifest.passages_collection)
        return cls(client, uri, spec, articles, passages, manifest)

    @classmethod
    def create(cls, spec: str, expected: ArchiveManifest, under_alias: bool = True) -> MilvusArchive:
        """A new, empty archive; named by the alias when `under_alias` (else a rebuild's, until
        it is switched to). When another process created one at the same moment, that one."""
        client, uri = connect(location_of(spec))
        suffix = uuid.uuid4().hex
        passages = MilvusStore.create_in(client, uri, f"rag_passages_{suffix}", expected.dimension)
        articles = f"rag_articles_{suffix}"
        _create_articles_collection(client, articles)
        manifest = dataclasses.replace(expected, passages_collection=passages.collection,
                                       created_at=time.strftime("%Y-%m-%dT%H:%M:%S%z"))
        client.upsert(articles, [_row(MANIFEST_KEY, "manifest", text=json.dumps(dataclasses.asdict(manifest)))],
                      timeout=TIMEOUT_S)
        archive = cls(client, uri, spec, articles, passages, manifest)
        if under_alias:
            try:
                client.create_alias(articles, ALIAS, timeout=TIMEOUT_S)
            except MilvusFailed:  # another process made the archive first (or the answer was lost)
                if client.describe_alias(ALIAS, timeout=TIMEOUT_S)["collection_name"] != articles:
                    archive.drop()
                    return cls.open(spec)
        return archive

    def follow_alias(self) -> bool:
        """After a rebuild (by any machine) the alias names new collections and the old ones are
        gone: take them up, if they were made with the same settings. Whether anything changed."""
        fresh = MilvusArchive.open(self.spec)
        if fresh is None or fresh.articles == self.articles:
            return False
        reason = fresh.manifest.staleness(self.manifest)
        if reason:
            raise RagError(f"the archive at {self.uri} was rebuilt with other settings ({reason}): "
                           f"restart with the settings it was rebuilt with")
        self.articles, self.passages, self.manifest = fresh.articles, fresh.passages, fresh.manifest
        return True

    def switch_to(self, rebuilt: MilvusArchive) -> None:
        """Make `rebuilt` the archive every reader opens (one alias change), then drop this one."""
        self._client.alter_alias(rebuilt.articles, ALIAS, timeout=TIMEOUT_S)
        self.drop()

    def drop(self) -> None:
        for collection in (self.articles, self.passages.collection):
            self._client.drop_collection(collection, timeout=TIMEOUT_S)

    # -- reading --------------------------------------------------------------------------

    def markers(self, doc_ids: Iterable[str] | None = None) -> dict[str, Marker]:
        """The present articles (of `doc_ids`, when given), by doc id."""
        fields = ["doc_id", "version", "parts", "passages", "meta"]
        if doc_ids is None:
            pages = max(1, -(-self._count('kind == "article"') // PAGE))
            rows = [r for n in range(pages) for r in self._query(
                f'kind == "article" and slot >= {n * SLOTS // pages} and slot < {(n + 1) * SLOTS // pages}', fields)]
        else:
            rows = self._rows_by_key(sorted({_marker_key(d) for d in doc_ids}), fields)
        return {r["doc_id"]: Marker(r["doc_id"], r["version"], int(r["parts"]), int(r["passages"]), json.loads(r["meta"]))
                for r in rows}

    def document(self, marker: Marker) -> Document | None:
        """The article's text as of `marker` (None when that version is gone, replaced meanwhile)."""
        keys = [_part_key(marker.doc_id, marker.version, n) for n in range(marker.parts)]
        rows = {r["key"]: r["text"] for r in self._rows_by_key(keys, ["key", "text"])}
        if len(rows) != len(keys):
            return None
        return Document(doc_id=marker.doc_id, text="".join(rows[k] for k in keys), **marker.meta)

    def count(self) -> tuple[int, int]:
        """(articles, passages) present."""
        markers = self.markers()
        return len(markers), sum(m.passages for m in markers.values())

    # -- writing --------------------------------------------------------------------------

    def write(self, document: Document, passages: list[Passage], vectors: np.ndarray) -> None:
        """Make this version of the article the present one: passages, then text, then marker;
        then delete the version it replaced, and leftovers."""
        if len(document.doc_id.encode()) > MAX_DOC_ID:  # a server counts bytes: 200 CJK characters are 600
            raise RagError(f"the article id {document.doc_id[:60]}… is over {MAX_DOC_ID} bytes (UTF-8), too long for Milvus")
        replaced = self.markers([document.doc_id]).get(document.doc_id)
        version, now = version_of(document), int(time.time())
        self._write_passages(document, version, now, passages, vectors)
        parts = [document.text[i:i + PART_CHARS] for i in range(0, len(document.text), PART_CHARS)] or [""]
        self._client.upsert(self.articles, [_row(_part_key(document.doc_id, version, n), "text", document.doc_id, version,
                                                 written=now, part=n, text=text) for n, text in enumerate(parts)],
                            timeout=TIMEOUT_S)
        self.mark_present(document, version, len(parts), len(passages))
        self._delete_versions(document.doc_id, replaced.version if replaced and replaced.version != version else None)

    def _write_passages(self, document: Document, version: str, now: int, passages: list[Passage],
                        vectors: np.ndarray) -> None:
        day, title = day_number(document.date), (document.title or "")[:TITLE_CHARS]
        fields = []
        for p in passages:
            if len(p.text.encode()) > MAX_TEXT_BYTES:
                raise RagError(f"a passage of {document.doc_id} is over Milvus's {MAX_TEXT_BYTES} bytes; "
                               f"lower [chunking] max_chars")
            fields.append({"text": p.text, "doc_id": p.doc_id, "start": p.start, "end": p.end, "day": day,
                           "title": title, "version": version, "written": now})
        ids = np.array([passage_id(p.doc_id, version, p.start, p.end) for p in passages], dtype=np.int64)
        self.passages.upsert(ids, vectors, fields)

    def mark_present(self, document: Document, version: str, parts: int, passages: int) -> None:
        """The one write that makes this version of the article the one readers see."""
        meta = {"path": document.path, "date": document.date, "body_start": document.body_start,
                "title": document.title, "source": document.source}
        self._client.upsert(self.articles, [_row(_marker_key(document.doc_id), "article", document.doc_id, version,
                                                 written=int(time.time()), parts=parts, passages=passages,
                                                 meta=json.dumps(meta))], timeout=TIMEOUT_S)

    def remove(self, doc_id: str) -> None:
        """Take the article out: its marker first (it is gone for readers), then its rows."""
        marker = self.markers([doc_id]).get(doc_id)
        self._client.delete(self.articles, filter=f"key == {literal(_marker_key(doc_id))}", timeout=TIMEOUT_S)
        self._delete_versions(doc_id, marker.version if marker else None)

    def _delete_versions(self, doc_id: str, replaced: str | None) -> None:
        """Rows of the `replaced` version, and of any version but the present one (read again:
        another process may have marked its own since) older than STALE_AFTER_S."""
        present = self.markers([doc_id]).get(doc_id)
        same = f"doc_id == {literal(doc_id)}"
        stale = f"{same} and written < {int(time.time()) - STALE_AFTER_S}"
        if present:
            stale += f" and version != {literal(present.version)}"
        if present and present.version == replaced:  # another process has marked that version again since
            replaced = None
        where = f"({stale}) or ({same} and version == {literal(replaced)})" if replaced else stale
        self.passages.delete_where(where)
        self._client.delete(self.articles, filter=f'kind == "text" and ({where})', timeout=TIMEOUT_S)

    def _count(self, where: str) -> int:
        rows = self._client.query(self.articles, filter=where, output_fields=["count(*)"], timeout=TIMEOUT_S)
        return int(rows[0]["count(*)"])

    def _rows_by_key(self, keys: list[str], fields: list[str]) -> list[dict]:
        """The rows of these keys (a filter, not pymilvus's ids=, which does not escape strings)."""
        return [r for start in range(0, len(keys), BATCH)
                for r in self._query(f"key in [{', '.join(map(literal, keys[start:start + BATCH]))}]", fields)]

    def _query(self, where: str, fields: list[str]) -> list[dict]:
        return list(self._client.query(self.articles, filter=where, output_fields=fields, timeout=TIMEOUT_S))


def _row(key: str, kind: str, doc_id: str = "", version: str = "", written: int = 0, part: int = 0, parts: int = 0,
         passages: int = 0, text: str = "", meta: str = "{}") -> dict:
    return {"key": key, "kind": kind, "doc_id": doc_id, "version": version, "part": part, "parts": parts,
            "passages": passages, "text": text, "meta": meta, "slot": _hash63(doc_id) >> 1, "written": written,
            "nothing": [0.0, 0.0]}


def _create_articles_collection(client, name: str) -> None:
    from pymilvus import DataType

    schema = client.create_schema(auto_id=False)
    schema.add_field("key", DataType.VARCHAR, max_length=600, is_primary=True)
    schema.add_field("kind", DataType.VARCHAR, max_length=16)
    schema.add_field("doc_id", DataType.VARCHAR, max_length=DOC_ID_BYTES)
    schema.add_field("version", DataType.VARCHAR, max_length=64)
    schema.add_field("part", DataType.INT64)
    schema.add_field("parts", DataType.INT64)
    schema.add_field("passages", DataType.INT64)
    schema.add_field("text", DataType.VARCHAR, max_length=MAX_TEXT_BYTES)
    schema.add_field("meta", DataType.VARCHAR, max_length=MAX_TEXT_BYTES)
    schema.add_field("slot", DataType.INT64)  # a hash of the doc id, to page through the markers
    schema.add_field("written", DataType.INT64)  # unix seconds: how old a row of another version is
    schema.add_field("nothing", DataType.FLOAT_VECTOR, dim=2)  # Milvus wants a vector field in every collection
    index = client.prepare_index_params()
    index.add_index("nothing", index_type="FLAT", metric_type="L2")
    client.create_collection(name, schema=schema, index_params=index, consistency_level="Strong", timeout=TIMEOUT_S)


class ArchiveArticles(Mapping):
    """The articles of a Milvus archive as the pipeline reads them: doc id -> Document, in the
    version the retriever last saw present in this thread (so a citation slices the text its
    passage was cut from, even while another request's retrieval sees a newer version), fetched
    when first needed and kept for the last CACHED articles."""

    CACHED = 256
    skipped: tuple[str, ...] = ()  # no folder is read: what an add skipped was said then

    def __init__(self, archive: MilvusArchive):
        self.archive = archive
        self.directory = archive.uri
        self._seen = threading.local()  # .markers: doc id -> the marker this thread's retriever last saw
        self._texts: OrderedDict[tuple[str, str], Document] = OrderedDict()
        self._texts_lock = threading.Lock()  # server threads share the cache

    @property
    def documents(self) -> ArchiveArticles:
        return self

    @property
    def date_range(self) -> tuple[str, str] | None:
        return date_range(m.meta.get("date") for m in self.archive.markers().values())

    @property
    def undated(self) -> int:
        return count_undated(m.meta.get("date") for m in self.archive.markers().values())

    def at(self, marker: Marker) -> Document | None:
        """The article as of `marker` (None when that version is gone, replaced meanwhile)."""
        self._markers_seen()[marker.doc_id] = marker
        key = (marker.doc_id, marker.version)
        with self._texts_lock:
            document = self._texts.get(key)
            if document is not None:
                self._texts.move_to_end(key)
                return document
        document = self.archive.document(marker)  # outside the lock: other threads need not wait on Milvus
        if document is not None:
            with self._texts_lock:
                self._texts[key] = document
                while len(self._texts) > self.CACHED:
                    self._texts.popitem(last=False)
        return document

    def __getitem__(self, doc_id: str) -> Document:
        marker = self._markers_seen().get(doc_id) or self.archive.markers([doc_id]).get(doc_id)
        document = self.at(marker) if marker else None
        if document is None:
            raise KeyError(doc_id)
        return document

    def _markers_seen(self) -> dict[str, Marker]:
        if not hasattr(self._seen, "markers"):
            self._seen.markers = {}
        return self._seen.markers

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self.archive.markers()))

    def __len__(self) -> int:
        return self.archive.count()[0]


# -- keeping an archive up to date ---------------------------------------------------------

Progress = Callable[[int, int], None]


def write_documents(archive: MilvusArchive, documents: list[Document], embedder, chunking: ChunkSettings,
                    on_progress: Progress | None = None) -> ArchiveChange:
    """Write the articles whose present version differs (new or edited); the others are left."""
    change = ArchiveChange()
    markers = archive.markers([d.doc_id for d in documents])
    todo = []
    for document in documents:
        marker = markers.get(document.doc_id)
        if marker is not None and marker.version == version_of(document):
            change.unchanged.append(document.doc_id)
        else:
            todo.append(document)
            if marker is not None:
                change.replaced.append(document.doc_id)
    cut = chunk_corpus(Corpus(archive.uri, {d.doc_id: d for d in todo}, []), chunking)
    by_article: dict[str, list[Passage]] = {}
    for p in cut:
        by_article.setdefault(p.doc_id, []).append(p)
    total = len(cut)
    batch: list[Document] = []
    for document in todo:
        batch.append(document)
        if sum(len(by_article.get(d.doc_id, [])) for d in batch) >= EMBED_BATCH or document is todo[-1]:
            _write_batch(archive, batch, by_article, embedder, change, total, on_progress)
            batch = []
    return change


def _write_batch(archive: MilvusArchive, batch: list[Document], by_article: dict[str, list[Passage]], embedder,
                 change: ArchiveChange, total: int, on_progress: Progress | None) -> None:
    """Embed a few articles' passages together, then write each article whole."""
    passages = [p for d in batch for p in by_article.get(d.doc_id, [])]
    done = change.embedded

    def advance(n: int) -> None:
        nonlocal done
        done += n
        if on_progress:
            on_progress(done, total)

    vectors = embedder.encode([p.text for p in passages], on_batch=advance) if passages else np.zeros((0, 0))
    at = 0
    for document in batch:
        mine = by_article.get(document.doc_id, [])
        archive.write(document, mine, vectors[at:at + len(mine)])
        at += len(mine)
        change.written.append(document.doc_id)
    change.embedded += len(passages)


def location_of(spec: str) -> str:
    """"milvus:./a.db" -> "./a.db"; "milvus://host:19530" -> "//host:19530"."""
    return spec.partition(":")[2]


def expected_manifest(embedder, chunking: ChunkSettings) -> ArchiveManifest:
    return ArchiveManifest(FORMAT, embedder.spec.id, embedder.spec.fingerprint(), embedder.dimension, chunking.as_dict())


def open_for_reading(spec: str, expected: ArchiveManifest, models: Path) -> MilvusArchive | None:
    """The archive, checked against these settings (None when there is none yet); `models` is
    the models.toml they come from, for the command that would rebuild it."""
    archive = MilvusArchive.open(spec)
    if archive is not None:
        reason = archive.manifest.staleness(expected)
        if reason:
            raise _unfit(archive, reason, spec, models)
    return archive


def _unfit(archive: MilvusArchive, reason: str, spec: str, models: Path) -> RagError:
    return RagError(f"the archive at {archive.uri} does not fit these settings: {reason}; "
                    f"rebuild it with: rag index --force --store {spec} --models {models}")


def open_for_writing(spec: str, expected: ArchiveManifest, models: Path, rebuild: bool, embedder, chunking: ChunkSettings,
                     on_status: Callable[[str], None], on_progress: Progress | None = None) -> MilvusArchive:
    """The archive to write into: created when missing; with `rebuild`, every stored article is
    embedded again into a fresh archive which then replaces it."""
    archive = MilvusArchive.open(spec)
    if archive is None:
        on_status(f"no archive yet at {spec}; making one")  # as typed: "//host:port" alone reads as a path
        return MilvusArchive.create(spec, expected)
    reason = archive.manifest.staleness(expected)
    if reason and not rebuild:
        raise _unfit(archive, reason, spec, models)
    if not (rebuild or reason):
        return archive
    on_status(f"rebuilding the archive at {archive.uri} ({reason or 'asked for'}): every article is embedded again")
    stored = [d for d in (archive.document(m) for m in archive.markers().values()) if d is not None]
    rebuilt = MilvusArchive.create(spec, expected, under_alias=False)
    change = write_documents(rebuilt, stored, embedder, chunking, on_progress)
    archive.switch_to(rebuilt)
    on_status(f"rebuilt: {len(change.written)} articles, {change.embedded} passages embedded again")
    return rebuilt
