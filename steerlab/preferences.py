"""Preference pairs: a prompt with a chosen and a rejected answer (IAV's DPO, GenARM's reward model).

Both answers are teacher-forced after the same chat-formatted prompt in one forward: a batch
holds the chosen rows first, then the rejected rows, so ``row_logprobs(...).chunk(2)`` gives
the two sides. Answers end with the end-of-turn token (as SFT examples do in
``steerlab.training``), so "how to stop" is part of the preference too.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

from steerlab.errors import ConfigError
from steerlab.model.scoring import Pair
from steerlab.model.zoo import LoadedModel
from steerlab.storage import read_jsonl
from steerlab.training import encode_answer

PAIR_KEYS = ("prompt", "chosen", "rejected")


@dataclass(frozen=True)
class PreferencePair:
    prompt: str
    chosen: str
    rejected: str


def read_pairs(path: Path) -> list[PreferencePair]:
    """``{"prompt", "chosen", "rejected"}`` rows; extra keys (ids, filter scores) are ignored."""
    return [PreferencePair(r["prompt"], r["chosen"], r["rejected"]) for r in read_jsonl(path, PAIR_KEYS)]


class PairSampler:
    """Draws ``n`` encoded pairs per step, without replacement within an epoch (seeded)."""

    def __init__(self, model: LoadedModel, pairs: list[PreferencePair], max_tokens: int, seed: int) -> None:
        self.encoded = [(encode_answer(model, p.prompt, p.chosen, max_tokens), encode_answer(model, p.prompt, p.rejected, max_tokens))
                        for p in pairs]
        empty = [len(c) for side in self.encoded for c, t in side if not t]
        if empty:
            raise ConfigError(f"key 'max_tokens' = {max_tokens} leaves no answer token in {len(empty)} answers "
                              f"(their prompts alone take up to {max(empty)} tokens): raise max_tokens")
        self.rng = random.Random(seed)
        self.queue: list[int] = []

    def batch(self, n: int) -> list[Pair]:
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
