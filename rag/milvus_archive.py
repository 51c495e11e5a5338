"""A whole archive in Milvus, seen alike from every machine that reaches the server: the
articles (their text, so citations slice them anywhere), their passages with vectors and BM25,
and the manifest of the settings they were embedded with.

Milvus holds two collections per archive, and the alias `rag` names the articles one:
- articles: a row `#manifest` (the settings, and which passage collection goes with it); per
  article a marker row (its current version: sha256 of its text, and its metadata) and its text
  in parts (a VARCHAR holds 64 kB), one row per part and version.
- passages (rag.retrieval.milvus_store): one row per passage, tagged with its article's version.

An article is written version by version: its passages, then its text, then its marker, which
is the one write that makes the new version visible. Readers keep only passages whose version
their article's marker names, so a crash at any point leaves the old version whole (or no
article); what the crash left behind is invisible, and deleted by the article's next write.
Two `rag add` processes writing different articles touch different rows, so both land whole.

A rebuild (other embedder, other chunking, --force) writes a fresh pair of collections and moves
the alias to it in one step."""
from __future__ import annotations

import dataclasses
import hashlib
import json
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator

import numpy as np

from rag.corpus import ChunkSettings, Corpus, chunk_corpus
from rag.errors import RagError
from rag.retrieval.milvus_store import BATCH, MAX_TEXT_BYTES, TIMEOUT_S, TITLE_CHARS, MilvusStore, connect, day_number
from rag.schema import Document, Passage

ALIAS = "rag"  # the archive's name in a Milvus database
FORMAT = 1
MANIFEST_KEY = "#manifest"
PART_CHARS = 16_000  # 4 bytes a character at most: a part always fits a VARCHAR
ARTICLE_FIELDS = ("key", "kind", "doc_id", "version", "part", "parts", "text", "meta", "nothing")
EMBED_BATCH = 256  # passages embedded together, across articles


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
        if self.format != expected.format:
            return "it was written by another version of rag"
        if (self.embedder_id, self.embedder_fingerprint) != (expected.embedder_id, expected.embedder_fingerprint):
            return f"the embedder changed ({self.embedder_id} -> {expected.embedder_id})"
        if self.chunking != expected.chunking:
            return f"chunking settings changed ({self.chunking} -> {expected.chunking})"
        return None


@dataclass(frozen=True)
class Marker:
    """An article's marker row: which version of it is present, and its metadata."""

    doc_id: str
    version: str
    parts: int
    passages: int
    meta: dict  # path, date, body_start, title, source


@dataclass
class Change:
    written: list[str] = dataclasses.field(default_factory=list)
    unchanged: list[str] = dataclasses.field(default_factory=list)
    removed: list[str] = dataclasses.field(default_factory=list)
    embedded: int = 0


def version_of(document: Document) -> str:
    return hashlib.sha256(document.text.encode()).hexdigest()


def passage_id(doc_id: str, version: str, start: int, end: int) -> int:
    """The same passage of the same article text gets the same id on every machine (63 bits)."""
    digest = hashlib.sha256(f"{doc_id}\0{version}\0{start}\0{end}".encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


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
        """The archive at `spec` ("milvus:./a.db", "milvus://host:19530"); None when there is none yet."""
        client, uri = connect(spec.partition(":")[2])
        try:
            articles = client.describe_alias(ALIAS, timeout=TIMEOUT_S)["collection_name"]
        except Exception:  # no such alias: pymilvus raises MilvusException
            return None
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
        rows = client.query(articles, ids=[MANIFEST_KEY], output_fields=["text"], timeout=TIMEOUT_S)
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
        client, uri = connect(spec.partition(":")[2])
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
            except Exception:  # another process made the archive first: use that one
                archive.drop()
                return cls.open(spec)
        return archive

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
        if doc_ids is None:
            rows = self._query('kind == "article"', ["doc_id", "version", "parts", "meta"])
        else:
            wanted = sorted(set(doc_ids))
            rows = [r for start in range(0, len(wanted), BATCH)
                    for r in self._client.query(self.articles, ids=wanted[start:start + BATCH],
                                                output_fields=["doc_id", "version", "parts", "meta"], timeout=TIMEOUT_S)]
        markers = {}
        for row in rows:
            meta = json.loads(row["meta"])
            markers[row["doc_id"]] = Marker(row["doc_id"], row["version"], int(row["parts"]), meta.pop("passages"), meta)
        return markers

    def document(self, marker: Marker) -> Document | None:
        """The article's text as of `marker` (None when that version is gone, replaced meanwhile)."""
        keys = [_part_key(marker.doc_id, marker.version, n) for n in range(marker.parts)]
        rows = {r["key"]: r["text"] for r in self._client.query(self.articles, ids=keys, output_fields=["text"],
                                                                  timeout=TIMEOUT_S)}
        if len(rows) != len(keys):
            return None
        return Document(doc_id=marker.doc_id, text="".join(rows[k] for k in keys), **marker.meta)

    def count(self) -> tuple[int, int]:
        """(articles, passages) present."""
        markers = self.markers()
        return len(markers), sum(m.passages for m in markers.values())

    # -- writing --------------------------------------------------------------------------

    def write(self, document: Document, passages: list[Passage], vectors: np.ndarray) -> None:
        """Make this version of the article the present one: passages, then text, then marker."""
        version = version_of(document)
        day = day_number(document.date)
        title = (document.title or "")[:TITLE_CHARS]
        fields = []
        for p in passages:
            if len(p.text.encode()) > MAX_TEXT_BYTES:
                raise RagError(f"a passage of {document.doc_id} is over Milvus's {MAX_TEXT_BYTES} bytes; "
                               f"lower [chunking] max_chars")
            fields.append({"text": p.text, "doc_id": p.doc_id, "start": p.start, "end": p.end, "day": day,
                           "title": title, "version": version})
        ids = np.array([passage_id(p.doc_id, version, p.start, p.end) for p in passages], dtype=np.int64)
        self.passages.upsert(ids, vectors, fields)
        parts = [document.text[i:i + PART_CHARS] for i in range(0, len(document.text), PART_CHARS)] or [""]
        self._client.upsert(self.articles, [_row(_part_key(document.doc_id, version, n), "text", document.doc_id,
                                                 version, part=n, text=text) for n, text in enumerate(parts)],
                            timeout=TIMEOUT_S)
        self.mark_present(document, version, len(parts), len(passages))
        self._drop_other_versions(document.doc_id)

    def mark_present(self, document: Document, version: str, parts: int, passages: int) -> None:
        """The one write that makes this version of the article the one readers see."""
        meta = {"path": document.path, "date": document.date, "body_start": document.body_start,
                "title": document.title, "source": document.source, "passages": passages}
        self._client.upsert(self.articles, [_row(document.doc_id, "article", document.doc_id, version, parts=parts,
                                                 meta=json.dumps(meta))], timeout=TIMEOUT_S)

    def remove(self, doc_id: str) -> None:
        """Take the article out: its marker first (it is gone for readers), then its rows."""
        self._client.delete(self.articles, ids=[doc_id], timeout=TIMEOUT_S)
        self._drop_other_versions(doc_id)

    def _drop_other_versions(self, doc_id: str) -> None:
        """Rows of versions the marker does not name (read again now: another process may have
        written a newer version since this one wrote)."""
        present = self.markers([doc_id]).get(doc_id)
        keep = f' and version != "{present.version}"' if present else ""
        where = f"doc_id == {json.dumps(doc_id)}{keep}"
        self.passages.delete_where(where)
        self._client.delete(self.articles, filter=f'kind == "text" and {where}', timeout=TIMEOUT_S)

    def _query(self, where: str, fields: list[str]) -> list[dict]:
        return list(self._client.query(self.articles, filter=where, output_fields=fields, timeout=TIMEOUT_S))


def _part_key(doc_id: str, version: str, part: int) -> str:
    return f"{doc_id}@{version[:16]}#{part}"


def _row(key: str, kind: str, doc_id: str = "", version: str = "", part: int = 0, parts: int = 0, text: str = "",
         meta: str = "{}") -> dict:
    return {"key": key, "kind": kind, "doc_id": doc_id, "version": version, "part": part, "parts": parts,
            "text": text, "meta": meta, "nothing": [0.0, 0.0]}


def _create_articles_collection(client, name: str) -> None:
    from pymilvus import DataType

    schema = client.create_schema(auto_id=False)
    schema.add_field("key", DataType.VARCHAR, max_length=600, is_primary=True)
    schema.add_field("kind", DataType.VARCHAR, max_length=16)
    schema.add_field("doc_id", DataType.VARCHAR, max_length=512)
    schema.add_field("version", DataType.VARCHAR, max_length=64)
    schema.add_field("part", DataType.INT64)
    schema.add_field("parts", DataType.INT64)
    schema.add_field("text", DataType.VARCHAR, max_length=MAX_TEXT_BYTES)
    schema.add_field("meta", DataType.VARCHAR, max_length=MAX_TEXT_BYTES)
    schema.add_field("nothing", DataType.FLOAT_VECTOR, dim=2)  # Milvus wants a vector field in every collection
    index = client.prepare_index_params()
    index.add_index("nothing", index_type="FLAT", metric_type="L2")
    client.create_collection(name, schema=schema, index_params=index, consistency_level="Strong", timeout=TIMEOUT_S)


class ArchiveArticles(Mapping):
    """The articles of a Milvus archive as the pipeline reads them: doc id -> Document, fetched
    when first cited and kept while their version stays the present one."""

    def __init__(self, archive: MilvusArchive):
        self.archive = archive
        self.directory = archive.uri
        self._cache: dict[str, Document] = {}
        self._versions: dict[str, str] = {}

    @property
    def documents(self) -> ArchiveArticles:
        return self

    @property
    def date_range(self) -> tuple[str, str] | None:
        dates = sorted(m.meta["date"] for m in self.archive.markers().values() if m.meta.get("date"))
        return (dates[0], dates[-1]) if dates else None

    def present(self, markers: Mapping[str, Marker]) -> None:
        """What the retriever just read: cached texts of other versions are stale."""
        for doc_id, marker in markers.items():
            if self._versions.get(doc_id) != marker.version:
                self._cache.pop(doc_id, None)
                self._versions[doc_id] = marker.version

    def __getitem__(self, doc_id: str) -> Document:
        if doc_id not in self._cache:
            marker = self.archive.markers([doc_id]).get(doc_id)
            document = self.archive.document(marker) if marker else None
            if document is None:
                raise KeyError(doc_id)
            self._cache[doc_id], self._versions[doc_id] = document, marker.version
        return self._cache[doc_id]

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self.archive.markers()))

    def __len__(self) -> int:
        return len(self.archive.markers())


# -- keeping an archive up to date ---------------------------------------------------------

Progress = Callable[[int, int], None]


def write_documents(archive: MilvusArchive, documents: list[Document], embedder, chunking: ChunkSettings,
                    on_progress: Progress | None = None) -> Change:
    """Write the articles whose present version differs (new or edited); the others are left."""
    change = Change()
    markers = archive.markers([d.doc_id for d in documents])
    todo = []
    for document in documents:
        marker = markers.get(document.doc_id)
        if marker is not None and marker.version == version_of(document):
            change.unchanged.append(document.doc_id)
        else:
            todo.append(document)
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
                 change: Change, total: int, on_progress: Progress | None) -> None:
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


def expected_manifest(embedder, chunking: ChunkSettings) -> ArchiveManifest:
    return ArchiveManifest(FORMAT, embedder.spec.id, embedder.spec.fingerprint(), embedder.dimension, chunking.as_dict())


def open_for_reading(spec: str, expected: ArchiveManifest) -> MilvusArchive | None:
    """The archive, checked against these settings (None when there is none yet)."""
    archive = MilvusArchive.open(spec)
    if archive is not None:
        reason = archive.manifest.staleness(expected)
        if reason:
            raise RagError(f"the archive at {archive.uri} does not fit these settings: {reason}; "
                           f"rebuild it with: rag index --force --store {spec}")
    return archive


def open_for_writing(spec: str, expected: ArchiveManifest, rebuild: bool, embedder, chunking: ChunkSettings,
                     on_status: Callable[[str], None], on_progress: Progress | None = None) -> MilvusArchive:
    """The archive to write into: created when missing; with `rebuild`, every stored article is
    embedded again into a fresh archive which then replaces it."""
    archive = MilvusArchive.open(spec)
    if archive is None:
        on_status(f"no archive yet at {spec.partition(':')[2]}; making one")
        return MilvusArchive.create(spec, expected)
    reason = archive.manifest.staleness(expected)
    if reason and not rebuild:
        raise RagError(f"the archive at {archive.uri} does not fit these settings: {reason}; "
                       f"rebuild it with: rag index --force --store {spec}")
    if not (rebuild or reason):
        return archive
    on_status(f"rebuilding the archive at {archive.uri} ({reason or 'asked for'}): every article is embedded again")
    stored = [d for d in (archive.document(m) for m in archive.markers().values()) if d is not None]
    rebuilt = MilvusArchive.create(spec, expected, under_alias=False)
    change = write_documents(rebuilt, stored, embedder, chunking, on_progress)
    archive.switch_to(rebuilt)
    on_status(f"rebuilt: {len(change.written)} articles, {change.embedded} passages embedded again")
    return rebuilt
