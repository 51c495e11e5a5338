"""Finding the passages that may answer a question: a vector store behind a small protocol,
a persisted keyword index, reciprocal rank fusion, and the Retriever that joins them."""
from rag.retrieval.faiss_store import FaissStore
from rag.retrieval.fusion import rrf
from rag.retrieval.keyword import KeywordIndex
from rag.retrieval.retriever import Retriever
from rag.retrieval.vector_store import VECTOR_STORES, VectorStore, backend, make_vector_store, parse_store
from rag.retrieval import milvus_store  # noqa: F401  (registers "milvus"; pymilvus is imported only when used)

__all__ = ["FaissStore", "KeywordIndex", "Retriever", "VECTOR_STORES", "VectorStore", "backend", "make_vector_store",
           "parse_store", "rrf"]
