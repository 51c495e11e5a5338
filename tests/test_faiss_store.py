from rag.retrieval import FaissStore, make_vector_store
from tests.vector_store_suite import VectorStoreSuite


class TestFaissStore(VectorStoreSuite):
    def make(self, dimension):
        return make_vector_store("faiss", dimension)

    def reload(self, folder):
        return FaissStore.load(folder)
