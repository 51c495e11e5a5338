import pytest
import numpy as np

from rag.embedder import Embedder

pytestmark = pytest.mark.integration  # real models


def test_vectors_match_sentence_transformers(models):
    """Our transformers-only encoder must give the vectors sentence-transformers gives for the
    same model (mean pooling, normalisation, max length), or the index would drift."""
    from sentence_transformers import SentenceTransformer

    texts = ["Who leads the resistance in the Panjshir Valley?", "Panjshir means five lions. " * 80, "x"]
    ours = Embedder(models.embedder).encode(texts)
    reference = SentenceTransformer(models.embedder.resolve(), device="cpu").encode(texts, normalize_embeddings=True)
    assert ours.shape == (3, 384) and ours.dtype == np.float32
    assert np.allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)
    assert np.abs(ours - reference).max() < 1e-4
