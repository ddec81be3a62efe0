"""Built-in metrics: length, fluency, KL from the unsteered model, content preservation.

(The style judge is a metric too, in ``judge.py``, with settings and a report section.)
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from steerlab.metrics.base import BaseMetric, MetricContext, Sample


def word_count(text: str) -> int:
    return len(text.split())


def distinct_ngrams(text: str, n: int = 3) -> float:
    """Share of the answer's word n-grams that are distinct (1.0 = no repetition).

    Perplexity alone rewards degenerate loops ("Sounds.Sounds.Sounds..." is very predictable),
    so fluency reports both.
    """
    words = text.split()
    grams = [tuple(words[i : i + n]) for i in range(len(words) - n + 1)]
    return len(set(grams)) / len(grams) if grams else 1.0


def embedder(ctx: MetricContext) -> Any:
    """The MiniLM sentence embedder, loaded once per run and shared by every metric."""
    from steerlab.metrics.embedding import SentenceEmbedder

    return ctx.lab.resource("embedder", SentenceEmbedder.load)


class LengthMetric(BaseMetric):
    name = "length"
    description = "words and tokens of the answer, and whether it ended before the token cap"

    def outputs(self, config: Any) -> list[str]:
        return ["words", "tokens", "stopped"]

    def score(self, samples: list[Sample], ctx: MetricContext) -> list[dict[str, float]]:
        return [
            {"words": float(word_count(s.output)), "tokens": float(len(s.generation.output_ids)),
             "stopped": float(s.generation.stopped)}
            for s in samples
        ]


class FluencyMetric(BaseMetric):
    name = "fluency"
    description = "perplexity under the unsteered model (plain prompt), and distinct word-trigram share (repetition)"
    needs = ("base_nll",)

    def outputs(self, config: Any) -> list[str]:
        return ["perplexity", "distinct3"]

    def score(self, samples: list[Sample], ctx: MetricContext) -> list[dict[str, float]]:
        return [{"perplexity": math.exp(min(s.stats["base_nll"], 50.0)), "distinct3": distinct_ngrams(s.output)}
                for s in samples]


class KLMetric(BaseMetric):
    name = "kl"
    description = "KL(steered || unsteered) next-token distribution, mean over answer tokens (nats)"
    needs = ("kl",)

    def outputs(self, config: Any) -> list[str]:
        return ["kl"]

    def score(self, samples: list[Sample], ctx: MetricContext) -> list[dict[str, float]]:
        return [{"kl": s.stats["kl"]} for s in samples]


class SimilarityMetric(BaseMetric):
    name = "similarity"
    description = "content preservation: MiniLM cosine similarity to the unsteered answer"

    def outputs(self, config: Any) -> list[str]:
        return ["similarity"]

    def score(self, samples: list[Sample], ctx: MetricContext) -> list[dict[str, float]]:
        emb = embedder(ctx)
        steered = emb.embed([s.output for s in samples])
        base = emb.embed([s.base.output for s in samples])
        return [{"similarity": float(v)} for v in np.sum(steered * base, axis=1)]


class RelevanceMetric(BaseMetric):
    name = "relevance"
    description = "does the answer still address the request: MiniLM cosine similarity of answer and request"

    def outputs(self, config: Any) -> list[str]:
        return ["relevance"]

    def score(self, samples: list[Sample], ctx: MetricContext) -> list[dict[str, float]]:
        emb = embedder(ctx)
        answers = emb.embed([s.output for s in samples])
        requests = emb.embed([s.prompt for s in samples])
        return [{"relevance": float(v)} for v in np.sum(answers * requests, axis=1)]
