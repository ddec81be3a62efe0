"""Preference pairs for the methods trained on them (IAV here, GenARM beside it).

A pair is a prompt with a chosen and a rejected answer. Both answers are teacher-forced after
the same chat-formatted prompt in one forward: the batch holds the chosen rows first, then the
rejected rows, so ``row_sums(...).chunk(2)`` gives the two sides. Responses end with the
end-of-turn token (as SFT examples do in core's training module), so "how to stop" is part of
the preference too.

Why here and not in core: core's training module has SFT examples but nothing for pairs; GenARM
imports this module until core grows a pair sampler.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

import torch

from steerlab.api import ConfigError, LoadedModel, read_jsonl, token_logprobs

PAIR_KEYS = ("prompt", "chosen", "rejected")
Encoded = tuple[list[int], list[int]]  # (context ids, target ids)


@dataclass(frozen=True)
class PreferencePair:
    prompt: str
    chosen: str
    rejected: str


def read_pairs(path: Path) -> list[PreferencePair]:
    """``{"prompt", "chosen", "rejected"}`` rows; extra keys (ids, filter scores) are ignored."""
    return [PreferencePair(r["prompt"], r["chosen"], r["rejected"]) for r in read_jsonl(path, PAIR_KEYS)]


def encode_answer(model: LoadedModel, prompt: str, answer: str, max_tokens: int) -> Encoded:
    """(prompt ids, answer ids + end token), the answer cut so both fit ``max_tokens``."""
    tokens = lambda text: model.tokenizer(text, add_special_tokens=False)["input_ids"]  # noqa: E731
    context = tokens(model.format_prompt(prompt))
    target = tokens(answer + (model.tokenizer.eos_token or ""))
    return context, target[: max(0, max_tokens - len(context))]


class PairSampler:
    """Draws ``n`` encoded pairs per step, without replacement within an epoch (seeded)."""

    def __init__(self, model: LoadedModel, pairs: list[PreferencePair], max_tokens: int, seed: int) -> None:
        self.encoded = [(encode_answer(model, p.prompt, p.chosen, max_tokens), encode_answer(model, p.prompt, p.rejected, max_tokens))
                        for p in pairs]
        empty = [len(c) for (c, t), _ in self.encoded if not t]
        if empty:
            raise ConfigError(f"key 'max_tokens' = {max_tokens} leaves no answer token in {len(empty)} pairs "
                              f"(their prompts alone take up to {max(empty)} tokens): raise max_tokens")
        self.rng = random.Random(seed)
        self.queue: list[int] = []

    def batch(self, n: int) -> list[Encoded]:
        """``n`` chosen rows followed by the same pairs' ``n`` rejected rows."""
        picked = []
        for _ in range(n):
            if not self.queue:
                self.queue = list(range(len(self.encoded)))
                self.rng.shuffle(self.queue)
            picked.append(self.encoded[self.queue.pop()])
        return [chosen for chosen, _ in picked] + [rejected for _, rejected in picked]

    def tokens_per_batch(self, n: int) -> float:
        """Mean tokens per step (both sides), for matching token budgets across methods."""
        per_pair = sum(len(c) + len(t) for side in self.encoded for c, t in side) / len(self.encoded)
        return per_pair * n


def row_sums(logits: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Summed log p(target) of each row: (rows,). logits (rows, T, vocab); targets, mask (rows, T)."""
    return (token_logprobs(logits, targets) * mask).sum(1)
