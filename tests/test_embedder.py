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


def test_an_int8_embedder_is_its_own_model_with_close_vectors(models):
    """precision = "int8" runs a quantized graph: other vectors (so another fingerprint, and an
    index built at float32 is stale), close enough for retrieval (eval/scale.py measures recall)."""
    import dataclasses

    int8 = dataclasses.replace(models.embedder, settings=dataclasses.replace(models.embedder.settings, precision="int8"))
    texts = ["Who leads the resistance in the Panjshir Valley?", "The Taliban said they had taken the valley."]
    cosine = np.sum(Embedder(int8).encode(texts) * Embedder(models.embedder).encode(texts), axis=1)
    assert int8.fingerprint() != models.embedder.fingerprint()
    assert int8.files_fingerprint() == models.embedder.files_fingerprint()
    assert (cosine > 0.85).all() and (cosine < 0.9999).all()


def test_vectors_come_back_in_the_order_given_though_embedded_shortest_first(models):
    import dataclasses

    two_a_batch = dataclasses.replace(models.embedder, settings=dataclasses.replace(models.embedder.settings, batch_size=2))
    embedder = Embedder(two_a_batch)
    texts = ["Panjshir means five lions. " * 20, "x", "The Taliban said they had taken the valley.", "a b", "Who?"]
    one_by_one = np.concatenate([embedder.encode([text]) for text in texts])
    batches = []
    together = embedder.encode(texts, on_batch=batches.append)
    assert np.abs(together - one_by_one).max() < 1e-5 and batches == [2, 2, 1]
    assert embedder.encode([]).shape == (0, 384)
