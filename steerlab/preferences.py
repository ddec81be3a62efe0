"""Preference pairs: a prompt with a chosen and a rejected answer (IAV's DPO, GenARM's reward model).

Both answers are teacher-forced after the same chat-formatted prompt in one forward: a batch
holds the chosen rows first, then the rejected rows, so ``row_logprobs(...).chunk(2)`` gives
the two sides. Answers end with the end-of-turn token (as SFT examples do in
``steerlab.training``), so "how to stop" is part of the preference too.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch

from steerlab.data.files import file_digest
from steerlab.errors import ConfigError
from steerlab.model.scoring import Pair
from steerlab.model.zoo import LoadedModel
from steerlab.storage import read_jsonl
from steerlab.training import Validation, encode_answer

PAIR_KEYS = ("prompt", "chosen", "rejected")


@dataclass(frozen=True)
class PreferencePair:
    prompt: str
    chosen: str
    rejected: str


def read_pairs(path: Path) -> list[PreferencePair]:
    """``{"prompt", "chosen", "rejected"}`` rows; extra keys (ids, filter scores) are ignored."""
    return [PreferencePair(r["prompt"], r["chosen"], r["rejected"]) for r in read_jsonl(path, PAIR_KEYS)]


def split_pairs(pairs: list[PreferencePair], fraction: float, salt: str = "heldout") -> tuple[list[PreferencePair], list[PreferencePair]]:
    """Training pairs and held-out pairs, by a stable hash of each pair's prompt (no RNG, no seed):
    every method given the same file and fraction holds out exactly the same pairs, so their
    held-out pair accuracies are measured on the same pairs. ``fraction`` 0 holds out none."""
    if not 0 <= fraction < 1:
        raise ConfigError(f"key 'heldout_fraction' must be in [0, 1) (got {fraction})")
    held = [int(hashlib.sha256(f"{salt}:{p.prompt}".encode()).hexdigest()[:8], 16) < fraction * 2**32 for p in pairs]
    train = [p for p, h in zip(pairs, held) if not h]
    if fraction and (not train or len(train) == len(pairs)):
        raise ConfigError(f"key 'heldout_fraction' = {fraction} leaves {len(train)} of {len(pairs)} pairs for training "
                          "and the rest held out: both sides need a pair")
    return train, [p for p, h in zip(pairs, held) if h]


Margins = Callable[[list[Pair]], torch.Tensor]  # a batch (chosen rows, then rejected rows) -> (pairs,) margins


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

    def in_order(self, n: int) -> Iterator[list[Pair]]:
        """Every pair once, ``n`` per batch, in file order (chosen rows, then rejected rows): a
        held-out measurement, the same batches at every check."""
        for start in range(0, len(self.encoded), n):
            chunk = self.encoded[start:start + n]
            yield [chosen for chosen, _ in chunk] + [rejected for _, rejected in chunk]

    def answer_tokens(self) -> dict[str, float]:
        """Mean answer tokens of the chosen and of the rejected side: a length gap a summed
        log-probability margin can learn instead of the preference (the report states it)."""
        n = max(1, len(self.encoded))
        return {side: sum(len(pair[k][1]) for pair in self.encoded) / n for k, side in enumerate(("chosen", "rejected"))}

    def tokens_per_batch(self, n: int) -> float:
        """Mean tokens per step (both sides), for matching token budgets across methods."""
        per_pair = sum(len(c) + len(t) for side in self.encoded for c, t in side) / len(self.encoded)
        return per_pair * n


@torch.no_grad()
def pair_accuracy(sampler: PairSampler, margins: Margins, batch: int = 8) -> dict[str, float]:
    """The share of ``sampler``'s pairs whose margin (chosen minus rejected, as the method scores
    them) is > 0, and the mean margin: ``{"accuracy", "margin"}``, logged as ``heldout.*`` by
    ``optimise``'s ``Validation``. A tie (margin 0, an untrained head) counts as wrong."""
    values = torch.cat([margins(rows).detach().float().reshape(-1).cpu() for rows in sampler.in_order(batch)])  # (pairs,)
    return {"accuracy": float((values > 0).float().mean()), "margin": float(values.mean())}


@dataclass
class PreferenceData:
    """A method's preference pairs as loaded for training: the training sampler and, when pairs
    are held out, the held-out sampler. IAV and GenARM both load theirs here, so given the same
    file, fraction and token cap they train on the same pairs and are checked on the same others."""

    path: Path
    train: PairSampler
    heldout: PairSampler | None

    @classmethod
    def load(cls, model: LoadedModel, path: Path, heldout_fraction: float, max_tokens: int, seed: int) -> "PreferenceData":
        train, held = split_pairs(read_pairs(path), heldout_fraction)
        return cls(path, PairSampler(model, train, max_tokens, seed), PairSampler(model, held, max_tokens, seed) if held else None)

    def validation(self, margins: Margins, every: int, batch: int = 8) -> Validation | None:
        """Held-out pair accuracy every ``every`` steps (logged as ``heldout.accuracy`` and
        ``heldout.margin``); parameters are not rolled back: the last step is what is used."""
        if self.heldout is None:
            return None
        held = self.heldout
        return Validation(lambda: pair_accuracy(held, margins, batch), every, score="accuracy", keep_best=False)

    def meta(self, pairs_per_step: int, steps: int) -> dict[str, object]:
        """What an artifact records about its data: pair counts, answer lengths per side, the
        token budget (equal for two methods given the same pairs, steps and pairs per step)."""
        per_step = self.train.tokens_per_batch(pairs_per_step)
        return {"train_pairs": len(self.train.encoded), "heldout_pairs": len(self.heldout.encoded) if self.heldout else 0,
                "answer_tokens": self.train.answer_tokens(), "tokens_per_step": per_step, "train_tokens": per_step * steps,
                "pairs_sha256": file_digest(self.path)}
