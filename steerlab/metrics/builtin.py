"""Built-in metrics: length, fluency, KL from the unsteered model, content preservation, judge."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from steerlab.metrics.base import Sample

if TYPE_CHECKING:
    from steerlab.lab import Lab


def word_count(text: str) -> int:
    return len(text.split())


class LengthMetric:
    name = "length"
    description = "words and tokens of the answer, and whether it ended before the token cap"
    needs_token_stats: tuple[str, ...] = ()

    def score(self, samples: list[Sample], lab: Lab) -> list[dict[str, float]]:
        return [
            {"words": float(word_count(s.output)), "tokens": float(len(s.generation.output_ids)),
             "stopped": float(s.generation.stopped)}
            for s in samples
        ]


def distinct_ngrams(text: str, n: int = 3) -> float:
    """Share of the answer's word n-grams that are distinct (1.0 = no repetition).

    Perplexity alone rewards degenerate loops ("Sounds.Sounds.Sounds..." is very predictable),
    so fluency reports both.
    """
    words = text.split()
    grams = [tuple(words[i : i + n]) for i in range(len(words) - n + 1)]
    return len(set(grams)) / len(grams) if grams else 1.0


class FluencyMetric:
    name = "fluency"
    description = "perplexity under the unsteered model, and distinct word-trigram share (repetition)"
    needs_token_stats = ("base_nll",)

    def score(self, samples: list[Sample], lab: Lab) -> list[dict[str, float]]:
        return [{"perplexity": math.exp(min(s.stats["base_nll"], 50.0)), "distinct3": distinct_ngrams(s.output)}
                for s in samples]


class KLMetric:
    name = "kl"
    description = "KL(steered || unsteered) next-token distribution, mean over answer tokens (nats)"
    needs_token_stats = ("kl",)

    def score(self, samples: list[Sample], lab: Lab) -> list[dict[str, float]]:
        return [{"kl": s.stats["kl"]} for s in samples]


class SimilarityMetric:
    name = "similarity"
    description = "content preservation: MiniLM cosine similarity to the unsteered answer"
    needs_token_stats: tuple[str, ...] = ()

    def score(self, samples: list[Sample], lab: Lab) -> list[dict[str, float]]:
        emb = lab.embedder()
        steered = emb.embed([s.output for s in samples])
        base = emb.embed([s.base.output for s in samples])
        return [{"similarity": float(v)} for v in np.sum(steered * base, axis=1)]


class JudgeMetric:
    name = "judge"
    description = "style judge (MiniLM + logistic regression, one-vs-rest for 3+ labels): score of each label"
    needs_token_stats: tuple[str, ...] = ()

    def score(self, samples: list[Sample], lab: Lab) -> list[dict[str, float]]:
        judge = lab.judge()
        probs = judge.probabilities([s.output for s in samples])
        return [{f"judge.{c}": float(p) for c, p in zip(judge.classes, row)} for row in probs]
