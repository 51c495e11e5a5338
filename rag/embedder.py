"""Sentence embeddings (mean pooling + L2 normalisation, as all-MiniLM-L6-v2 is used by
sentence-transformers), computed on the runtime of rag.models so asking a question does not
pay the start-up cost of importing sentence-transformers. tests/test_embedder.py checks that the
vectors match sentence-transformers'."""
from __future__ import annotations

from typing import Callable

import numpy as np

from rag.config import ModelSpec
from rag.models import load_for_inference, model_json, pad_encodings


class Embedder:
    def __init__(self, spec: ModelSpec, on_export: Callable[[str], None] = lambda msg: None):
        self.spec = spec
        self.model = load_for_inference(spec, "AutoModel", on_export)
        self.max_seq_len = _sentence_transformers_max_len(spec) or 256
        self.model.tokenizer.enable_truncation(max_length=self.max_seq_len)
        self.batch_size = spec.settings.batch_size
        self.dimension = int(self.model.config["hidden_size"])

    def encode(self, texts: list[str], on_batch: Callable[[int], None] | None = None) -> np.ndarray:
        """Unit-length float32 vectors, one row per text, in the order given. The texts are
        embedded shortest first, so that each batch pads its texts to about their own length:
        in the order given, ~28 % of the bundled articles' passage tokens were padding."""
        vectors = np.zeros((len(texts), self.dimension), dtype=np.float32)
        encodings = self.model.tokenizer.encode_batch(texts)
        by_length = sorted(range(len(texts)), key=lambda i: len(encodings[i].ids))
        for start in range(0, len(by_length), self.batch_size):
            rows = by_length[start:start + self.batch_size]
            vectors[rows] = self._embed([encodings[i] for i in rows])
            if on_batch:
                on_batch(len(rows))
        return vectors

    def _embed(self, encodings: list) -> np.ndarray:
        inputs = pad_encodings(encodings)
        (hidden,) = self.model.run(inputs)
        mask = inputs["attention_mask"][..., None].astype(hidden.dtype)
        pooled = (hidden * mask).sum(1) / np.clip(mask.sum(1), 1e-9, None)
        return pooled / np.clip(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12, None)


def _sentence_transformers_max_len(spec: ModelSpec) -> int | None:
    if not spec.is_local:
        return None
    config = model_json(spec, "sentence_bert_config.json")
    return config.get("max_seq_length") if config else None
