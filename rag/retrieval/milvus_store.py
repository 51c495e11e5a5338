"""Milvus as a VectorStore: passages in a Milvus collection, either on a server that a team
shares (`milvus://host:19530`) or in a local file run in-process by Milvus Lite
(`milvus:./archive.db`). pymilvus talks to both through the same API.

A row is a passage: its vector, its text (which Milvus's BM25 function turns into a sparse
vector for keyword search), and the article it comes from as fields (doc id, offsets, date as
a yyyymmdd number, title, and the version of the article text it was cut from), so a date filter
is a Milvus filter expression. Searches are exact (FLAT inner product), giving FAISS's answers.

rag.milvus_archive builds a whole archive on this class. The VectorStore protocol's build-folder
half (save, load, release, through `milvus.json`) is what the store conformance suite and
eval/scale.py use: rag itself keeps a Milvus archive in Milvus alone, in no folder."""
from __future__ import annotations

import json
import logging
import uuid
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from rag.errors import RagError, Unavailable, first_line
from rag.retrieval.keyword import BM25_B, BM25_K1, stop_words
from rag.retrieval.vector_store import TIES_SEEN, check_new_ids, check_renumbering, register

POINTER = "milvus.json"
TIMEOUT_S = 10  # a server that does not answer within this is reported, not waited for
BATCH = 1000  # rows per insert or query
MILVUS_MAX_LIMIT = 16384  # Milvus's limit on one search
MAX_TEXT_BYTES = 65535  # Milvus's limit on a VARCHAR field
DOC_ID_BYTES = 512  # a doc_id field's length: a Milvus server counts a VARCHAR in UTF-8 bytes (Milvus Lite in characters)
TITLE_CHARS = 1000
FIELDS = ("id", "vector", "text", "sparse", "doc_id", "start", "end", "day", "title", "version", "written")
PASSAGE_DEFAULTS = {"text": "", "doc_id": "", "start": 0, "end": 0, "day": 0, "title": "", "version": "", "written": 0}


class MilvusFailed(Unavailable):
    """A Milvus call failed after connecting (a timeout, the server gone, a collection dropped)."""


NOT_LOADED = 101  # Milvus's code for a collection not loaded (a server restarted holds them released)


class GuardedClient:
    """pymilvus's MilvusClient, each of whose failures is one MilvusFailed line naming the URI,
    never a traceback."""

    def __init__(self, client, uri: str):
        self._client = client
        self.uri = uri

    def __getattr__(self, name: str):
        method = getattr(self._client, name)

        def call(*args, **kwargs):
            try:
                return method(*args, **kwargs)
            except Exception as exc:  # MilvusException, grpc errors: pymilvus has no narrower base
                problem = exc
            collection = kwargs.get("collection_name") or (args[0] if args and isinstance(args[0], str) else None)
            if collection and getattr(problem, "code", None) == NOT_LOADED:
                # only reads (get, query, search) refuse a collection not loaded, before doing
                # anything: loading it and asking once more cannot write anything twice
                try:
                    self._client.load_collection(collection, timeout=TIMEOUT_S)
                    return method(*args, **kwargs)
                except Exception as exc:
                    problem = exc
            raise MilvusFailed(f"Milvus at {self.uri} failed: {first_line(problem)}; check that it runs and "
                               f"holds the archive, or use --store faiss") from None

        return call


def literal(text: str) -> str:
    """`text` as a string literal in a Milvus filter expression, quotes and backslashes escaped
    (pymilvus's ids= does not escape string keys, and Milvus Lite has no filter templates)."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def day_number(date: str | None) -> int:
    """2021-09-06 -> 20210906 (0: undated), so a date range is a numeric filter expression."""
    return int(date.replace("-", "")) if date else 0


@register("milvus")
class MilvusStore:
    takes_location = True  # a Milvus Lite file or a server

    def __init__(self, client, uri: str, collection: str, dimension: int):
        self._client = client
        self.uri = uri
        self.collection = collection
        self.dimension = dimension

    @classmethod
    def create(cls, dimension: int, location: str = "", collection: str | None = None) -> MilvusStore:
        client, uri = connect(location)
        return cls.create_in(client, uri, collection or f"rag_{uuid.uuid4().hex}", dimension)

    @classmethod
    def create_in(cls, client, uri: str, collection: str, dimension: int) -> MilvusStore:
        from pymilvus import DataType, Function, FunctionType

        schema = client.create_schema(auto_id=False)
        schema.add_field("id", DataType.INT64, is_primary=True)
        schema.add_field("vector", DataType.FLOAT_VECTOR, dim=dimension)
        schema.add_field("text", DataType.VARCHAR, max_length=MAX_TEXT_BYTES, enable_analyzer=True,
                         analyzer_params=_analyzer())
        schema.add_field("sparse", DataType.SPARSE_FLOAT_VECTOR)
        schema.add_field("doc_id", DataType.VARCHAR, max_length=DOC_ID_BYTES)
        schema.add_field("start", DataType.INT64)
        schema.add_field("end", DataType.INT64)
        schema.add_field("day", DataType.INT64)
        schema.add_field("title", DataType.VARCHAR, max_length=4 * TITLE_CHARS)
        schema.add_field("version", DataType.VARCHAR, max_length=64)
        schema.add_field("written", DataType.INT64)  # unix seconds: how old a row of another version is
        schema.add_function(Function(name="bm25", function_type=FunctionType.BM25, input_field_names=["text"],
                                     output_field_names=["sparse"]))
        index = client.prepare_index_params()
        index.add_index("vector", index_type="FLAT", metric_type="IP")  # exact, as FAISS below 100k
        index.add_index("sparse", index_type="SPARSE_INVERTED_INDEX", metric_type="BM25",
                        params={"bm25_k1": BM25_K1, "bm25_b": BM25_B})
        client.create_collection(collection, schema=schema, index_params=index, consistency_level="Strong",
                                 timeout=TIMEOUT_S)
        return cls(client, uri, collection, dimension)

    @classmethod
    def open(cls, client, uri: str, collection: str) -> MilvusStore:
        """The passage collection `collection` (ValueError when it is missing or not one of rag's:
        the message names it, the URI and its fields)."""
        if not client.has_collection(collection, timeout=TIMEOUT_S):
            raise ValueError(f"the Milvus collection {collection} at {uri} is gone")
        fields = client.describe_collection(collection, timeout=TIMEOUT_S)["fields"]
        vector = next((f for f in fields if f["name"] == "vector"), None)
        if vector is None or sorted(f["name"] for f in fields) != sorted(FIELDS):
            raise ValueError(f"the Milvus collection {collection} at {uri} is not a rag passage collection "
                             f"(fields: {', '.join(f['name'] for f in fields)})")
        client.load_collection(collection, timeout=TIMEOUT_S)  # into the query nodes' memory, if it is not
        return cls(client, uri, collection, int(vector["params"]["dim"]))

    @classmethod
    def load(cls, folder: Path) -> MilvusStore:
        where = _read_pointer(folder)
        client, uri = _client_for(where["uri"])
        try:
            return cls.open(client, uri, where["collection"])
        except ValueError as why:
            raise OSError(str(why)) from None

    @classmethod
    def release(cls, folder: Path) -> None:
        """Drop the collection a removed build's folder names (best effort: it may be gone)."""
        if not (Path(folder) / POINTER).is_file():
            return
        try:
            where = _read_pointer(folder)
            client, _ = _client_for(where["uri"])
            client.drop_collection(where["collection"], timeout=TIMEOUT_S)
        except Exception:  # a damaged pointer, an unreachable server (pymilvus's own errors): leave it
            pass

    def __len__(self) -> int:
        return self.count("")

    def count(self, where: str) -> int:
        rows = self._client.query(self.collection, filter=where, output_fields=["count(*)"], timeout=TIMEOUT_S)
        return int(rows[0]["count(*)"])

    def add(self, ids: np.ndarray, vectors: np.ndarray, fields: list[dict] | None = None) -> None:
        """Store `vectors` under `ids`, with each passage's `fields` (text, doc_id, start, end,
        day, title, version) when given. Ids already stored are refused (the protocol's rule)."""
        ids = np.asarray(ids, dtype=np.int64)
        check_new_ids(ids, lambda new: bool(self._stored(new)))
        self.upsert(ids, vectors, fields)

    def upsert(self, ids: np.ndarray, vectors: np.ndarray, fields: list[dict] | None = None) -> None:
        """Store these rows, replacing any stored under the same ids: writing a row twice
        (a retried write, two machines adding the same article) leaves it once."""
        ids = np.asarray(ids, dtype=np.int64)
        vectors = np.ascontiguousarray(vectors, dtype=np.float32).reshape(len(ids), self.dimension)
        fields = fields or [{}] * len(ids)
        for start in range(0, len(ids), BATCH):
            rows = [PASSAGE_DEFAULTS | extra | {"id": int(i), "vector": v.tolist()}
                    for i, v, extra in zip(ids[start:start + BATCH], vectors[start:start + BATCH], fields[start:start + BATCH])]
            self._client.upsert(self.collection, rows, timeout=TIMEOUT_S)

    def delete(self, ids: Iterable[int]) -> int:
        stored = self._stored(np.asarray(list(ids), dtype=np.int64))
        if stored:
            self._client.delete(self.collection, ids=sorted(stored), timeout=TIMEOUT_S)
        return len(stored)

    def delete_where(self, where: str) -> None:
        self._client.delete(self.collection, filter=where, timeout=TIMEOUT_S)

    def search(self, vector: np.ndarray, k: int, allowed: np.ndarray | None = None) -> list[tuple[int, float]]:
        if allowed is not None and not len(allowed):
            return []
        where = "" if allowed is None else f"id in {[int(i) for i in allowed]}"
        hits = self.dense_hits(vector, min(k, len(self) if allowed is None else len(allowed)), where, [])
        return [(hit["id"], hit["score"]) for hit in hits]

    def dense_hits(self, vector: np.ndarray, k: int, where: str, fields: list[str]) -> list[dict]:
        """The k passages nearest `vector` among those `where` selects, best first (ties by id):
        {"id", "score" (cosine), and the `fields` asked for}."""
        data = [np.asarray(vector, dtype=np.float32).ravel().tolist()]
        return self._hits(data, "vector", "IP", k, where, fields)

    def keyword_hits(self, text: str, k: int, where: str, fields: list[str]) -> list[dict]:
        """The k passages that score best for `text` by Milvus's BM25, as dense_hits gives them;
        only passages sharing a word with `text` are found."""
        # Milvus Lite reports BM25 negated (a distance); a server reports the score
        return self._hits([text], "sparse", "BM25", k, where, fields, score=abs)

    def hybrid_hits(self, vector: np.ndarray, text: str, k: int, depth: int, rrf_k: int, where: str,
                    fields: list[str]) -> list[dict]:
        """Milvus's own fusion: the dense and the BM25 ranking, each `depth` deep, fused by its
        RRF ranker; "score" is the fused score."""
        from pymilvus import AnnSearchRequest, RRFRanker

        depth = min(depth, MILVUS_MAX_LIMIT)
        requests = [AnnSearchRequest([np.asarray(vector, dtype=np.float32).ravel().tolist()], "vector",
                                     {"metric_type": "IP"}, depth, expr=where or None),
                    AnnSearchRequest([text], "sparse", {"metric_type": "BM25"}, depth, expr=where or None)]
        found = self._client.hybrid_search(self.collection, requests, RRFRanker(rrf_k), limit=min(k, depth),
                                           output_fields=fields, timeout=TIMEOUT_S)[0]
        hits = [{"id": int(h["id"]), "score": float(h["distance"]), **h.get("entity", {})} for h in found]
        return sorted(hits, key=lambda hit: (-hit["score"], hit["id"]))

    def query(self, where: str, fields: list[str]) -> list[dict]:
        """Every row `where` selects, with these fields."""
        return list(self._client.query(self.collection, filter=where, output_fields=fields, timeout=TIMEOUT_S))

    def vectors(self, ids: Iterable[int]) -> np.ndarray:
        ids = [int(i) for i in ids]
        found = {}
        for start in range(0, len(ids), BATCH):
            rows = self._client.query(self.collection, ids=ids[start:start + BATCH], output_fields=["vector"], timeout=TIMEOUT_S)
            found.update((int(r["id"]), r["vector"]) for r in rows)
        missing = [i for i in ids if i not in found]
        if missing:
            raise KeyError(missing[0])
        return np.array([found[i] for i in ids], dtype=np.float32).reshape(len(ids), self.dimension)

    def renumbered(self, old_ids: np.ndarray, new_ids: np.ndarray) -> MilvusStore:
        """A new collection beside this one, of these vectors under their new ids (their other
        fields left empty: rag.milvus_archive keeps an archive's passages in place, by its own ids)."""
        old_ids, new_ids = check_renumbering(old_ids, new_ids)
        vectors = self.vectors(old_ids)  # first: an unknown id leaves no collection behind
        copy = MilvusStore.create_in(self._client, self.uri, f"rag_{uuid.uuid4().hex}", self.dimension)
        copy.add(new_ids, vectors)
        return copy

    def save(self, folder: Path) -> None:
        self._client.flush(self.collection, timeout=TIMEOUT_S)
        (Path(folder) / POINTER).write_text(json.dumps({"uri": self.uri, "collection": self.collection}))

    def _hits(self, data: list, field: str, metric: str, k: int, where: str, fields: list[str],
              score: Callable[[float], float] = float) -> list[dict]:
        """The k best hits, each scored by `score` of Milvus's distance; best first, ties by id."""
        k = min(k, MILVUS_MAX_LIMIT)
        if k < 1:
            return []
        found = self._client.search(self.collection, data, anns_field=field, limit=min(k + TIES_SEEN, MILVUS_MAX_LIMIT),
                                    filter=where, output_fields=fields, search_params={"metric_type": metric},
                                    timeout=TIMEOUT_S)[0]
        hits = [{"id": int(h["id"]), "score": score(float(h["distance"])), **h.get("entity", {})} for h in found]
        return sorted(hits, key=lambda hit: (-hit["score"], hit["id"]))[:k]

    def _stored(self, ids: np.ndarray) -> set[int]:
        stored = set()
        for start in range(0, len(ids), BATCH):
            chunk = [int(i) for i in ids[start:start + BATCH]]
            rows = self._client.query(self.collection, ids=chunk, output_fields=["id"], timeout=TIMEOUT_S)
            stored.update(int(r["id"]) for r in rows)
        return stored


def _analyzer() -> dict:
    """Words as the FAISS store's keyword index cuts them: lower case, the same English stop words out."""
    return {"tokenizer": "standard", "filter": ["lowercase", {"type": "stop", "stop_words": sorted(stop_words())}]}


def connect(location: str):
    """A client for `location` ("//host:port" for a server, a path ending in .db for Milvus Lite),
    and the URI it reached; a missing pymilvus or an unreachable server is one RagError line."""
    return _client_for(_uri(location))


def absent_lite_file(location: str) -> bool:
    """Is `location` a Milvus Lite file that is not there? Connecting would create it (and its
    folders), so a command that only reads says there is no archive instead."""
    path = _lite_path(location)
    return path is not None and path.suffix == ".db" and not path.exists()


def _lite_path(location: str) -> Path | None:
    """The Milvus Lite file `location` names, absolute; None for a server ("//host:port")."""
    return None if location.startswith("//") else Path(location).expanduser().resolve()


def require_pymilvus():
    """pymilvus's client class; its absence is one line saying what to install."""
    try:
        from pymilvus import MilvusClient
    except ImportError:
        raise RagError("the milvus store needs pymilvus and milvus-lite: pip install -e '.[milvus]'") from None
    return MilvusClient


def _client_for(uri: str):
    client_class = require_pymilvus()
    for noisy in ("pymilvus", "milvus_lite"):  # they log what they raise; rag says it in one line
        logging.getLogger(noisy).setLevel(logging.CRITICAL)
    try:
        return GuardedClient(client_class(uri=uri, timeout=TIMEOUT_S), uri), uri
    except Exception as exc:  # pymilvus raises MilvusException (and grpc errors) for every way it fails
        reason = first_line(exc)
        if not uri.startswith("http"):
            if Path(uri).exists():  # it is there, and another process holds it
                raise RagError(f"cannot open the Milvus Lite file {uri} ({reason}): one process at a time can hold "
                               f"it (is a rag serve or another rag using it?); for several, use a Milvus server "
                               f"(--store milvus://host:19530)") from None
            raise RagError(f"cannot open the Milvus Lite file {uri} ({reason})") from None
        raise RagError(f"cannot reach Milvus at {uri} ({reason}); check that it runs and the address, "
                       f"or use --store faiss") from None


def _uri(location: str) -> str:
    if location.startswith("//") and location.strip("/"):
        return f"http:{location}"
    if not location.strip("/"):  # "milvus:" or "milvus://"
        raise RagError("say where Milvus is: --store milvus:./archive.db (Milvus Lite, a local file) "
                       "or --store milvus://host:19530 (a server)")
    path = _lite_path(location)
    if path.suffix != ".db":
        raise RagError(f"a Milvus Lite file must end in .db, not {path.name!r} (e.g. --store milvus:./archive.db)")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RagError(f"cannot create the folder of the Milvus Lite file {path}: {exc.strerror}") from None
    return str(path)


def _read_pointer(folder: Path) -> dict:
    path = Path(folder) / POINTER
    if not path.is_file():
        raise OSError(f"{POINTER} is missing")
    where = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(where, dict) or not all(isinstance(where.get(k), str) for k in ("uri", "collection")):
        raise ValueError(f"{POINTER} does not name a Milvus collection")
    return where
