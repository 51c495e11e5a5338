"""Sentence embeddings (mean pooling + L2 normalisation, as all-MiniLM-L6-v2 is used by
sentence-transformers), computed with plain transformers so asking a question does not pay
the start-up cost of importing sentence-transformers. tests/test_embedder.py checks that the
vectors match sentence-transformers'."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import numpy as np

from rag.config import ModelSpec
from rag.models import load_tokenizer_and_model


class Embedder:
    def __init__(self, spec: ModelSpec):
        import torch

        self._torch = torch
        self.spec = spec
        self.tokenizer, self.model = load_tokenizer_and_model(spec, "AutoModel")
        self.max_seq_len = _sentence_transformers_max_len(spec) or 256
        self.batch_size = int(spec.settings.get("batch_size", 32))
        self.dimension = int(self.model.config.hidden_size)

    def encode(self, texts: list[str], on_batch: Callable[[int], None] | None = None) -> np.ndarray:
        """Unit-length float32 vectors, one row per text."""
        rows = []
        for i in range(0, len(texts), self.batch_size):
            batch = texts[i : i + self.batch_size]
            rows.append(self._encode_batch(batch))
            if on_batch:
                on_batch(len(batch))
        if not rows:
            return np.zeros((0, self.dimension), dtype=np.float32)
        return np.concatenate(rows).astype(np.float32)

    def _encode_batch(self, texts: list[str]) -> np.ndarray:
        torch = self._torch
        inputs = self.tokenizer(texts, padding=True, truncation=True, max_length=self.max_seq_len, return_tensors="pt")
        with torch.inference_mode():
            hidden = self.model(**inputs).last_hidden_state
        mask = inputs["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        return torch.nn.functional.normalize(pooled, p=2, dim=1).numpy()


def _sentence_transformers_max_len(spec: ModelSpec) -> int | None:
    if not spec.is_local:
        return None
    config = Path(spec.resolve()) / "sentence_bert_config.json"
    if config.is_file():
        return json.loads(config.read_text()).get("max_seq_length")
    return None
