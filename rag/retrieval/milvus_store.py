"""Milvus as a VectorStore: an index's vectors in a Milvus collection, either on a server that a
team shares (`milvus://host:19530`) or in a local file run in-process by Milvus Lite
(`milvus:./archive.db`). pymilvus talks to both through the same API.

A build writes its vectors into a collection of its own (`rag_<random hex>`), and its folder
holds only `milvus.json`, naming the server and the collection; rag drops the collection when it
removes the build. So switching to a new index stays the atomic CURRENT swap it is with FAISS,
and the search is exact (a FLAT inner-product index), giving FAISS's answers.

Not yet (issue 11): the passages, the keyword index and the manifest still live in the local
index folder, so only the machine that holds the folder can use the index."""
from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Iterable

import numpy as np

from rag.errors import RagError
from rag.retrieval.vector_store import register

POINTER = "milvus.json"
TIMEOUT_S = 10  # a server that does not answer within this is reported, not waited for
BATCH = 1000  # rows per insert or query
MAX_TOP_K = 16384  # Milvus's limit on one search


@register("milvus")
class MilvusStore:
    def __init__(self, client, uri: str, collection: str, dimension: int):
        self._client = client
        self.uri = uri
        self.collection = collection
        self.dimension = dimension

    @classmethod
    def create(cls, dimension: int, location: str = "") -> MilvusStore:
        client, uri = connect(location)
        from pymilvus import DataType

        collection = f"rag_{uuid.uuid4().hex}"
        schema = client.create_schema(auto_id=False)
        schema.add_field("id", DataType.INT64, is_primary=True)
        schema.add_field("vector", DataType.FLOAT_VECTOR, dim=dimension)
        index = client.prepare_index_params()
        index.add_index("vector", index_type="FLAT", metric_type="IP")  # exact, as FAISS below 100k
        client.create_collection(collection, schema=schema, index_params=index, consistency_level="Strong",
                                 timeout=TIMEOUT_S)
        return cls(client, uri, collection, dimension)

    @classmethod
    def load(cls, folder: Path) -> MilvusStore:
        where = _read_pointer(folder)
        client, uri = _client_for(where["uri"])
        if not client.has_collection(where["collection"], timeout=TIMEOUT_S):
            raise OSError(f"the Milvus collection {where['collection']} at {uri} is gone")
        fields = client.describe_collection(where["collection"], timeout=TIMEOUT_S)["fields"]
        vector = next((f for f in fields if f["name"] == "vector"), None)
        if vector is None or {f["name"] for f in fields} != {"id", "vector"}:
            raise ValueError(f"the Milvus collection {where['collection']} at {uri} is not a rag collection")
        client.load_collection(where["collection"], timeout=TIMEOUT_S)  # into the query nodes' memory, if it is not
        return cls(client, uri, where["collection"], int(vector["params"]["dim"]))

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
        rows = self._client.query(self.collection, filter="", output_fields=["count(*)"], timeout=TIMEOUT_S)
        return int(rows[0]["count(*)"])

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        ids = np.asarray(ids, dtype=np.int64)
        vectors = np.ascontiguousarray(vectors, dtype=np.float32).reshape(len(ids), self.dimension)
        if self._stored(ids):
            raise ValueError("some ids are already stored")
        for start in range(0, len(ids), BATCH):
            rows = [{"id": int(i), "vector": v.tolist()} for i, v in zip(ids[start:start + BATCH], vectors[start:start + BATCH])]
            self._client.insert(self.collection, rows, timeout=TIMEOUT_S)

    def delete(self, ids: Iterable[int]) -> int:
        stored = self._stored(np.asarray(list(ids), dtype=np.int64))
        if stored:
            self._client.delete(self.collection, ids=sorted(stored), timeout=TIMEOUT_S)
        return len(stored)

    def search(self, vector: np.ndarray, k: int, allowed: np.ndarray | None = None) -> list[tuple[int, float]]:
        if allowed is not None and not len(allowed):
            return []
        k = min(k, MAX_TOP_K, len(self) if allowed is None else len(allowed))
        if k < 1:
            return []
        where = "" if allowed is None else f"id in {[int(i) for i in allowed]}"
        hits = self._client.search(self.collection, [np.asarray(vector, dtype=np.float32).ravel().tolist()], limit=k,
                                   filter=where, output_fields=[], search_params={"metric_type": "IP"},
                                   timeout=TIMEOUT_S)[0]
        return sorted(((int(h["id"]), float(h["distance"])) for h in hits), key=lambda hit: (-hit[1], hit[0]))

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

    def save(self, folder: Path) -> None:
        self._client.flush(self.collection, timeout=TIMEOUT_S)
        (Path(folder) / POINTER).write_text(json.dumps({"uri": self.uri, "collection": self.collection}))

    def _stored(self, ids: np.ndarray) -> set[int]:
        stored = set()
        for start in range(0, len(ids), BATCH):
            chunk = [int(i) for i in ids[start:start + BATCH]]
            rows = self._client.query(self.collection, ids=chunk, output_fields=["id"], timeout=TIMEOUT_S)
            stored.update(int(r["id"]) for r in rows)
        return stored


def connect(location: str):
    """A client for `location` ("//host:port" for a server, a path ending in .db for Milvus Lite),
    and the URI it reached; a missing pymilvus or an unreachable server is one RagError line."""
    return _client_for(_uri(location))


def _client_for(uri: str):
    try:
        from pymilvus import MilvusClient
    except ImportError:
        raise RagError("the milvus store needs pymilvus and milvus-lite: pip install -e '.[milvus]'") from None
    try:
        return MilvusClient(uri=uri, timeout=TIMEOUT_S), uri
    except Exception as exc:  # pymilvus raises MilvusException (and grpc errors) for every way it fails
        reason = str(getattr(exc, "message", "") or exc).splitlines()[0][:200]
        if not uri.startswith("http"):
            raise RagError(f"cannot open the Milvus Lite file {uri} ({reason}): one process at a time can hold it "
                           f"(is a rag serve or another rag using it?); for several, use a Milvus server "
                           f"(--store milvus://host:19530)") from None
        raise RagError(f"cannot reach Milvus at {uri} ({reason}); check that it runs and the address, "
                       f"or use --store faiss") from None


def _uri(location: str) -> str:
    if location.startswith("//"):
        return f"http:{location}"
    if not location:
        raise RagError("say where Milvus is: --store milvus:./archive.db (Milvus Lite, a local file) "
                       "or --store milvus://host:19530 (a server)")
    path = Path(location).expanduser().resolve()
    if path.suffix != ".db":
        raise RagError(f"a Milvus Lite file must end in .db, not {path.name!r} (e.g. --store milvus:./archive.db)")
    return str(path)


def _read_pointer(folder: Path) -> dict:
    path = Path(folder) / POINTER
    if not path.is_file():
        raise OSError(f"{POINTER} is missing")
    where = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(where, dict) or not all(isinstance(where.get(k), str) for k in ("uri", "collection")):
        raise ValueError(f"{POINTER} does not name a Milvus collection")
    return where
