"""Supervised fine-tuning machinery shared by weight-space methods (Panacea, LoRA soups, ...).

SFT examples are (prompt, response) pairs tagged with a group (a preference dimension). The
prompt is rendered with the model's chat template and masked out of the loss; the response is
followed by the end-of-turn token so the model also learns where to stop. ``group_losses``
returns one mean token loss per group from a single forward pass over a mixed batch.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from steerlab.data import read_jsonl
from steerlab.models import LoadedModel

IGNORE = -100


@dataclass(frozen=True)
class SFTExample:
    prompt: str
    response: str
    group: str


def read_sft(path: Path, groups: list[str]) -> dict[str, list[SFTExample]]:
    """``{"prompt", "style", "response"}`` rows -> examples by group (only the groups asked for)."""
    by_group: dict[str, list[SFTExample]] = {g: [] for g in groups}
    for row in read_jsonl(path, ("prompt", "style", "response")):
        if row["style"] in by_group:
            by_group[row["style"]].append(SFTExample(row["prompt"], row["response"], row["style"]))
    empty = [g for g, rows in by_group.items() if not rows]
    if empty:
        from steerlab.errors import ConfigError

        raise ConfigError(f"{path}: no examples with style {empty[0]!r} (styles asked for: {groups})")
    return by_group


def encode(model: LoadedModel, example: SFTExample, max_tokens: int) -> tuple[list[int], list[int]]:
    """Token ids and labels (prompt positions masked) for one example, truncated to ``max_tokens``."""
    prompt_ids = model.tokenizer(model.format_prompt(example.prompt), add_special_tokens=False)["input_ids"]
    end = model.tokenizer.eos_token or ""
    response_ids = model.tokenizer(example.response + end, add_special_tokens=False)["input_ids"]
    ids = (prompt_ids + response_ids)[:max_tokens]
    labels = ([IGNORE] * len(prompt_ids) + response_ids)[:max_tokens]
    return ids, labels


def collate(rows: list[tuple[list[int], list[int]]], pad_id: int, device: torch.device) -> dict[str, torch.Tensor]:
    """Right-padded batch: input_ids, attention_mask, labels (pads ignored)."""
    width = max(len(ids) for ids, _ in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    labels = torch.full((len(rows), width), IGNORE, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, (row_ids, row_labels) in enumerate(rows):
        ids[i, : len(row_ids)] = torch.tensor(row_ids)
        labels[i, : len(row_labels)] = torch.tensor(row_labels)
        mask[i, : len(row_ids)] = 1
    return {"input_ids": ids.to(device), "attention_mask": mask.to(device), "labels": labels.to(device)}


def token_losses(model: LoadedModel, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token CE (batch, pos-1) and the mask of positions that count."""
    logits = model.hf(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    targets = batch["labels"][:, 1:]
    loss = F.cross_entropy(logits[:, :-1].float().transpose(1, 2), targets.clamp(min=0), reduction="none")
    return loss, (targets != IGNORE).float()


def group_losses(model: LoadedModel, batch: dict[str, torch.Tensor], group_index: torch.Tensor, n_groups: int) -> torch.Tensor:
    """Mean token loss of each group: (n_groups,). ``group_index``: (batch,) group of each row."""
    loss, mask = token_losses(model, batch)
    per_row_sum, per_row_count = (loss * mask).sum(1), mask.sum(1)
    sums = torch.zeros(n_groups, device=loss.device).index_add(0, group_index, per_row_sum)
    counts = torch.zeros(n_groups, device=loss.device).index_add(0, group_index, per_row_count)
    return sums / counts.clamp(min=1.0)


class GroupSampler:
    """Draws, for each step, ``per_group`` examples of every group (without replacement per epoch)."""

    def __init__(self, model: LoadedModel, by_group: dict[str, list[SFTExample]], max_tokens: int, seed: int) -> None:
        self.groups = list(by_group)
        self.encoded = {g: [encode(model, ex, max_tokens) for ex in rows] for g, rows in by_group.items()}
        self.rng = random.Random(seed)
        self.queues: dict[str, list[int]] = {g: [] for g in self.groups}
        self.model = model

    def _take(self, group: str, n: int) -> list[tuple[list[int], list[int]]]:
        out = []
        for _ in range(n):
            if not self.queues[group]:
                self.queues[group] = list(range(len(self.encoded[group])))
                self.rng.shuffle(self.queues[group])
            out.append(self.encoded[group][self.queues[group].pop()])
        return out

    def batch(self, per_group: int, groups: list[str] | None = None) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        groups = groups or self.groups
        rows, index = [], []
        for g in groups:
            rows += self._take(g, per_group)
            index += [self.groups.index(g)] * per_group
        batch = collate(rows, self.model.tokenizer.pad_token_id, self.model.device)
        return batch, torch.tensor(index, device=self.model.device)

    def tokens_per_batch(self, per_group: int) -> float:
        """Mean tokens per step, for matching token budgets across methods."""
        mean = sum(len(ids) for rows in self.encoded.values() for ids, _ in rows) / sum(len(r) for r in self.encoded.values())
        return mean * per_group * len(self.groups)


def optimise(
    params: list[torch.nn.Parameter],
    step_loss: Callable[[int], tuple[torch.Tensor, dict[str, float]]],
    steps: int,
    lr: float,
    progress: Callable[[Iterable, str, int], Iterable],
    desc: str,
    weight_decay: float = 0.0,
) -> list[dict[str, float]]:
    """AdamW with linear warm-up (5% of steps) and cosine decay; returns a log per step."""
    optimiser = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    warmup = max(1, steps // 20)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimiser, lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1 + torch.cos(torch.tensor(torch.pi * s / steps)).item()))
    log = []
    bar = progress(range(steps), desc, steps)
    for step in bar:
        loss, info = step_loss(step)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimiser.step()
        schedule.step()
        log.append({"step": step, "loss": float(loss.detach()), **info})
        if hasattr(bar, "set_postfix"):
            bar.set_postfix(loss=f"{log[-1]['loss']:.3f}")
    return log
