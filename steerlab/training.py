"""Training machinery shared by methods that optimise (Panacea, LoRA soups, IAV, GenARM, ...).

SFT examples are (prompt, response) pairs tagged with a group (a preference dimension). The
prompt is rendered with the model's chat template and is the context; the response, followed
by the end-of-turn token so the model also learns where to stop, is the target.
``group_losses`` returns one mean token loss per group from a single forward pass over a mixed
batch (``steerlab.model.scoring``, the one teacher-forced path). ``optimise`` is the one loop:
AdamW, transformers' warm-up + cosine schedule, a progress bar, a log per step.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from steerlab.config import help_field, path_field
from steerlab.errors import ConfigError
from steerlab.model.batching import by_length
from steerlab.model.scoring import Pair, target_logits, token_logprobs
from steerlab.model.sites import Site, stores_transposed
from steerlab.model.zoo import LoadedModel
from steerlab.storage import read_jsonl


DEFAULT_TARGETS = ["blocks.*.attn.*_proj", "blocks.*.mlp.*_proj"]


@dataclass(frozen=True)
class StyleTraining:
    """Settings every method that fine-tunes on style SFT data shares (Panacea, rewarded soups):
    a method's Config subclasses it and adds its own."""

    data: str = path_field(help="SFT JSONL: {'prompt', 'style', 'response'} per line", jsonl=("prompt", "style", "response"))
    dimensions: list[str] = help_field(["helpful", "humorous", "philosophical"], "preference dimensions = styles in the data, in lambda order")
    targets: list[str] = help_field(DEFAULT_TARGETS, "site patterns of the Linear modules to adapt")
    steps: int = help_field(120, "optimisation steps (per LoRA for soups: equal token budgets at equal steps)")
    per_dimension: int = help_field(2, "examples of each dimension in every step")
    lr: float = help_field(2e-3, "AdamW learning rate")
    max_tokens: int = help_field(192, "truncate prompt + response to this many tokens")
    grid_step: float = help_field(0.25, "simplex grid step of the default sweep (0.25: 15 points)")
    holdout: float = help_field(0.0, "share of prompts held out of training to measure held-out loss per style (0: none)")
    eval_every: int = help_field(0, "measure held-out loss every N steps and keep the best parameters (0: never)")

    def __post_init__(self) -> None:
        if len(self.dimensions) < 2 or len(set(self.dimensions)) != len(self.dimensions):
            raise ValueError("key 'dimensions' needs at least two distinct names")
        for key in ("steps", "per_dimension", "max_tokens"):
            if getattr(self, key) < 1:
                raise ValueError(f"key '{key}' must be >= 1 (got {getattr(self, key)})")
        if self.lr <= 0:
            raise ValueError(f"key 'lr' must be > 0 (got {self.lr})")
        if not 0 <= self.holdout < 0.5:
            raise ValueError(f"key 'holdout' must be a share >= 0 and < 0.5 (got {self.holdout})")
        if self.eval_every < 0:
            raise ValueError(f"key 'eval_every' must be >= 0 (got {self.eval_every})")
        if (self.eval_every > 0) != (self.holdout > 0):
            raise ValueError("keys 'holdout' (> 0 and < 0.5) and 'eval_every' (>= 1) go together: both set or both 0 "
                             f"(got holdout {self.holdout}, eval_every {self.eval_every})")


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
        raise ConfigError(f"{path}: no examples with style {empty[0]!r} (styles asked for: {groups})")
    return by_group


def encode_answer(model: LoadedModel, prompt: str, answer: str, max_tokens: int) -> Pair:
    """(prompt ids, answer ids + end token): the chat-formatted prompt is the context, the
    answer the target, cut so both fit ``max_tokens``."""
    prompt_ids = model.tokenizer(model.format_prompt(prompt), add_special_tokens=False)["input_ids"]
    end = model.tokenizer.eos_token or ""
    answer_ids = model.tokenizer(answer + end, add_special_tokens=False)["input_ids"]
    return prompt_ids, answer_ids[: max(0, max_tokens - len(prompt_ids))]


def lora_config(sites: list[Site], rank: int, alpha: float) -> Any:
    """A PEFT ``LoraConfig`` adapting exactly these sites' modules (by their full paths, so a fused
    ``qkv_proj`` is adapted as one module), with ``fan_in_fan_out`` set when they are GPT-2's
    ``Conv1D`` (weights stored (in, out)); the factors stay A (r, in), B (out, r) either way."""
    from peft import LoraConfig

    transposed = all(stores_transposed(s.module) for s in sites)
    return LoraConfig(r=rank, lora_alpha=alpha, lora_dropout=0.0, target_modules=[s.module_path for s in sites],
                      fan_in_fan_out=transposed)


def lora_factors(peft_model: torch.nn.Module, module_to_site: dict[str, str]) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Each adapted site's PEFT LoRA factors (A (r, in), B (out, r)), B already scaled by
    lora_alpha / r, so the update is exactly B @ A. Module names as ``named_modules`` gives them."""
    from peft.tuners.lora import LoraLayer

    factors = {}
    for name, module in peft_model.named_modules():
        for prefix in ("base_model.model.", ""):
            site = module_to_site.get(name.removeprefix(prefix))
            if isinstance(module, LoraLayer) and site is not None:
                factors[site] = (module.lora_A["default"].weight.detach().clone(),
                                 (module.lora_B["default"].weight * module.scaling["default"]).detach().clone())
                break
    return factors


def group_losses(model: LoadedModel, pairs: list[Pair], group_index: torch.Tensor, n_groups: int, split: bool = True) -> torch.Tensor:
    """Mean token loss of each group: (n_groups,). ``group_index``: (batch,) group of each row.

    The rows may run in more than one forward (``step_chunks``), so an intervention attached by
    the caller must act the same on every row (one lambda, one vector). ``split=False`` runs them
    in one forward, in input order: for a method whose training gives each row its own control,
    and as the benchmark's baseline.
    """
    sums = torch.zeros(n_groups, device=model.device)
    counts = torch.zeros(n_groups, device=model.device)
    for chunk in step_chunks([len(c) + len(t) for c, t in pairs], model.device) if split else [list(range(len(pairs)))]:
        logits, targets, mask = target_logits(model, [pairs[i] for i in chunk])
        loss, mask = -token_logprobs(logits, targets), mask.float()  # (rows, T) each
        rows = group_index[torch.as_tensor(chunk, device=group_index.device)].to(model.device)
        sums = sums.index_add(0, rows, (loss * mask).sum(1))
        counts = counts.index_add(0, rows, mask.sum(1))
    return sums / counts.clamp(min=1.0)


def answer_tokens(pairs: list[Pair], group_index: torch.Tensor, n_groups: int) -> torch.Tensor:
    """Target (answer) tokens of each group in a step: (n_groups,), on the index's device."""
    counts = torch.zeros(n_groups)
    for (_, target), group in zip(pairs, group_index.tolist()):
        counts[group] += len(target)
    return counts.to(group_index.device)


def gradient_tokens(loss: torch.Tensor, per_group: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
    """How many answer tokens ``loss`` sends gradient to: the tokens of every group whose loss it
    depends on at this step. Why: a budget counted in tokens *seen* is not a budget in tokens
    *learnt from*; under a weighted Tchebycheff aggregation only the worst-off group's rows get
    gradient, a third of the step for three styles. (A backward through the scalarisation only.)"""
    (weights,) = torch.autograd.grad(loss, per_group, retain_graph=True)
    return (counts.to(weights.device) * (weights != 0)).sum().detach()


def kept_gradient_tokens(log: list[dict[str, float]]) -> float:
    """Answer tokens that received gradient up to the step whose parameters were kept."""
    last = int(log[-1].get("best_step", len(log) - 1)) if log else -1
    return float(sum(row.get("grad_tokens", 0.0) for row in log[: last + 1]))


def step_chunks(lengths: list[int], device: torch.device) -> list[list[int]]:
    """How a training step's rows are split into forwards: on a CPU, two halves sorted by length
    (when there are at least four rows); elsewhere one forward.

    Why: every row of a forward is padded to its longest, and rows of a chat3d step range from 51
    to 160 tokens (21% of a padded step's tokens were padding). On a CPU, where a forward costs
    per token, two length-sorted halves ran Panacea's steps 1.19x faster (SmolLM2, 6 rows;
    ``python benchmarks/speed.py chunks``, benchmarks/RESULTS.md); on a GPU a small model's step
    is bound by kernel launches, and a second forward would double them. (Packing all rows into
    one sequence with block-diagonal attention, tried too, saved nothing: its attention over the
    packed length cost what the padding had.)
    """
    rows = list(range(len(lengths)))
    if torch.device(device).type != "cpu" or len(rows) < 4:
        return [rows]
    return by_length(lengths, (len(rows) + 1) // 2)


def sample_simplex(m: int, generator: torch.Generator, concentration: float = 1.0) -> torch.Tensor:
    """One preference vector from a symmetric Dirichlet (concentration 1: uniform on the simplex)."""
    gamma = torch.distributions.Gamma(torch.full((m,), concentration), torch.ones(m))
    # Gamma sampling has no generator argument: draw its uniform seed from ours for determinism.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(torch.randint(0, 2**31 - 1, (1,), generator=generator)))
        draw = gamma.sample()
    return draw / draw.sum()


def held_out(prompt: str, share: float) -> bool:
    """Whether a prompt belongs to the held-out share (a stable hash: the same prompts in every
    group and every run, so no style ever trains on a held-out request)."""
    return share > 0 and int(hashlib.sha256(prompt.encode()).hexdigest()[:8], 16) / 16**8 < share


class GroupSampler:
    """Draws, for each step, ``per_group`` examples of every group (without replacement per epoch).

    ``holdout``: the share of prompts kept out of training; ``heldout_losses`` measures each
    group's loss on them (for early stopping and the report).
    """

    def __init__(self, model: LoadedModel, by_group: dict[str, list[SFTExample]], max_tokens: int, seed: int,
                 holdout: float = 0.0) -> None:
        self.groups = list(by_group)
        encode = lambda rows: [encode_answer(model, ex.prompt, ex.response, max_tokens) for ex in rows]  # noqa: E731
        self.encoded = {g: encode([ex for ex in rows if not held_out(ex.prompt, holdout)]) for g, rows in by_group.items()}
        self.heldout = {g: encode([ex for ex in rows if held_out(ex.prompt, holdout)]) for g, rows in by_group.items()}
        if any(not rows for rows in self.encoded.values()) or (holdout > 0 and any(not rows for rows in self.heldout.values())):
            raise ConfigError(f"holdout share {holdout} leaves a style with no training or no held-out example")
        empty = [(len(c), g) for g, rows in self.encoded.items() for c, t in rows if not t]
        if empty:
            raise ConfigError(f"key 'max_tokens' = {max_tokens} leaves no response token in {len(empty)} examples "
                              f"(their prompts alone take up to {max(n for n, _ in empty)} tokens): raise max_tokens")
        self.rng = random.Random(seed)
        self.queues: dict[str, list[int]] = {g: [] for g in self.groups}
        self.model = model

    def _take(self, group: str, n: int) -> list[Pair]:
        out = []
        for _ in range(n):
            if not self.queues[group]:
                self.queues[group] = list(range(len(self.encoded[group])))
                self.rng.shuffle(self.queues[group])
            out.append(self.encoded[group][self.queues[group].pop()])
        return out

    def batch(self, per_group: int, groups: list[str] | None = None) -> tuple[list[Pair], torch.Tensor]:
        """``per_group`` examples of each group: their (context, target) pairs and group index."""
        groups = groups or self.groups
        rows, index = [], []
        for g in groups:
            rows += self._take(g, per_group)
            index += [self.groups.index(g)] * per_group
        return rows, torch.tensor(index, device=self.model.device)

    def tokens_per_batch(self, per_group: int) -> float:
        """Mean tokens per step, for matching token budgets across methods."""
        mean = sum(len(c) + len(t) for rows in self.encoded.values() for c, t in rows) / sum(len(r) for r in self.encoded.values())
        return mean * per_group * len(self.groups)

    @torch.no_grad()
    def heldout_losses(self, groups: list[str] | None = None, batch_size: int = 16) -> dict[str, float]:
        """Mean token loss of each group (or of ``groups``) on its held-out examples (under
        whatever is attached)."""
        out = {}
        for g in groups or self.groups:
            rows = self.heldout[g]
            total = count = 0.0
            for group in by_length([len(c) + len(t) for c, t in rows], batch_size):  # less padding, same sums
                logits, targets, mask = target_logits(self.model, [rows[i] for i in group])
                total += float(-(token_logprobs(logits, targets) * mask).sum())
                count += float(mask.sum())
            out[g] = total / max(count, 1.0)
        return out


@dataclass
class Validation:
    """Every ``every`` steps, ``measure()`` -> numbers (logged under ``heldout.*``); with
    ``keep_best``, the parameters at the lowest ``score`` are restored at the end (early stopping
    on held-out loss, without cutting the schedule short)."""

    measure: Callable[[], dict[str, float]]
    every: int
    score: str = "mean"
    keep_best: bool = True
    snapshot: Callable[[], object] | None = None  # called after each measure (a caller that picks the step itself)


def make_optimiser(params: list[torch.nn.Parameter] | list[dict], lr: float, weight_decay: float = 0.0) -> torch.optim.AdamW:
    """AdamW, fused into one kernel per step when every parameter is on a GPU (where a small
    model's step is bound by kernel launches, and an adapter has hundreds of parameter tensors);
    PyTorch's default elsewhere, so CPU runs keep their numbers."""
    tensors = [p for group in params for p in (group["params"] if isinstance(group, dict) else [group])]
    fused = bool(tensors) and all(p.is_cuda for p in tensors)
    return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, **({"fused": True} if fused else {}))


def optimise(
    params: list[torch.nn.Parameter] | list[dict],
    step_loss: Callable[[int], tuple[torch.Tensor, dict[str, float | torch.Tensor]]],
    steps: int,
    lr: float,
    progress: Callable[[Iterable, str, int], Iterable],
    desc: str,
    weight_decay: float = 0.0,
    validation: Validation | None = None,
) -> list[dict[str, float]]:
    """AdamW with linear warm-up (5% of steps) and cosine decay (transformers' schedule);
    returns a log per step. ``params`` may be parameter groups with their own ``lr``.

    Logged values may be tensors: they are read back once at the end (and every 10 steps for
    the progress bar), so a GPU never waits for the host at every step.
    """
    from transformers import get_cosine_schedule_with_warmup

    optimiser = make_optimiser(params, lr, weight_decay)
    trained = [p for group in optimiser.param_groups for p in group["params"]]
    schedule = get_cosine_schedule_with_warmup(optimiser, num_warmup_steps=max(1, steps // 20), num_training_steps=steps)
    log: list[dict] = []
    best: tuple[float, int, list[torch.Tensor]] | None = None
    bar = progress(range(steps), desc, steps)
    for step in bar:
        loss, info = step_loss(step)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trained, 1.0)
        optimiser.step()
        schedule.step()
        log.append({"step": step, "loss": loss.detach(), **info})
        if validation and ((step + 1) % validation.every == 0 or step + 1 == steps):
            measured = validation.measure()
            log[-1].update({f"heldout.{k}": v for k, v in measured.items()})
            if validation.snapshot is not None:
                validation.snapshot()
            if validation.keep_best and (best is None or measured[validation.score] < best[0]):
                best = (measured[validation.score], step, [p.detach().clone() for p in trained])
        if hasattr(bar, "set_postfix") and step % 10 == 0:
            bar.set_postfix(loss=f"{float(loss.detach()):.3f}")
    if best is not None:
        with torch.no_grad():
            for p, kept in zip(trained, best[2]):
                p.copy_(kept)
        log[-1]["best_step"] = best[1]
    return [{k: (float(v) if isinstance(v, torch.Tensor) and v.numel() == 1 else v.tolist() if isinstance(v, torch.Tensor) else v)
             for k, v in row.items()} for row in log]
