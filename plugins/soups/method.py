"""Rewarded soups: a LoRA per dimension, trained with PEFT; at lambda, the weights
theta_0 + sum_i lambda_i * DeltaW_i (exactly a lambda-weighted sum of the LoRA updates).

Why not PEFT's ``add_weighted_adapter`` for the mix: it builds one merged adapter per weight
vector, while a sweep puts a different lambda on every batch row. The mix here is computed per
row from the stored (A, B) factors, through the engine.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path

import torch

from steerlab.api import (StyleTraining, Validation, lora_config, lora_factors, Artifact, ArtifactCache, BaseMethod, ControlSpace, Delta, Figure, GroupSampler, Lab, MethodEntry,
                          Section, Simplex, Site, SweepResult, answer_tokens, file_digest, kept_gradient_tokens, group_losses, heldout_table, help_field, match_sites, optimise,
                          plot_training_logs, read_sft, tokens_by_row)


@dataclass(frozen=True)
class SoupsConfig(StyleTraining):
    """The shared style-training settings (one LoRA per dimension, ``steps`` each) and the LoRA's own."""

    rank: int = help_field(4, "LoRA rank r")
    alpha: float = help_field(8.0, "LoRA alpha (scaling alpha / r)")
    stopping: str = help_field("joint", "with held-out checks: 'joint' keeps one step for every LoRA (the lowest held-out loss "
                                        "averaged over styles, as Panacea stops), 'each' keeps each LoRA's own lowest")

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.rank < 1:
            raise ValueError(f"key 'rank' must be >= 1 (got {self.rank})")
        if self.stopping not in ("joint", "each"):
            raise ValueError(f"key 'stopping' must be 'joint' or 'each' (got {self.stopping!r})")


LoraFactors = dict[str, torch.Tensor]  # "{dimension}.{site}.A" / ".B" -> tensor


def train_lora(lab: Lab, config: SoupsConfig, sampler: GroupSampler, dimension: str,
               sites: list[Site]) -> tuple[LoraFactors, list[dict[str, float]], list[LoraFactors]]:
    """Train one PEFT LoRA on one dimension's examples; return its (A, B) per site, its training
    log and (with joint stopping) its factors at every held-out check, the model restored."""
    from peft import get_peft_model

    module_to_site = {s.module_path: s.name for s in sites}
    peft_model = get_peft_model(lab.model.hf, lora_config(sites, config.rank, config.alpha))
    snapshots: list[LoraFactors] = []

    def factors() -> LoraFactors:
        return {f"{dimension}.{site}.{k}": t for site, ab in lora_factors(lab.model.hf, module_to_site).items() for k, t in zip("AB", ab)}

    try:
        index = sampler.groups.index(dimension)
        params = [p for p in peft_model.parameters() if p.requires_grad]

        def step_loss(step: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
            pairs, rows = sampler.batch(config.per_dimension, [dimension])
            loss = group_losses(lab.model, pairs, rows, len(sampler.groups))[index]
            return loss, {f"loss.{dimension}": loss.detach(), "grad_tokens": answer_tokens(pairs, rows, len(sampler.groups))[index]}

        def heldout() -> dict[str, float]:
            loss = sampler.heldout_losses([dimension])[dimension]
            return {dimension: loss, "mean": loss}

        joint = config.stopping == "joint"
        validation = Validation(heldout, config.eval_every, keep_best=not joint,
                                snapshot=(lambda: snapshots.append(factors())) if joint else None) if config.eval_every else None
        log = optimise(params, step_loss, config.steps, config.lr, lab.progress, f"soups LoRA {dimension}", validation=validation)
        return factors(), log, snapshots
    finally:
        peft_model.unload()  # puts the original Linear modules back, unmerged


def joint_stop(logs: dict[str, list[dict[str, float]]], snapshots: dict[str, list[LoraFactors]]) -> LoraFactors:
    """Every LoRA's factors at the one held-out check where the loss averaged over styles is
    lowest (Panacea's rule: one stop for the whole model); each log is marked with that step."""
    dims = list(logs)
    checks = [[row for row in logs[d] if f"heldout.{d}" in row] for d in dims]
    means = [sum(rows[k][f"heldout.{d}"] for d, rows in zip(dims, checks)) / len(dims) for k in range(len(checks[0]))]
    best = min(range(len(means)), key=means.__getitem__)
    for d, rows in zip(dims, checks):
        logs[d][-1]["best_step"] = rows[best]["step"]
    return {k: t for d in dims for k, t in snapshots[d][best].items()}


class SoupsMethod(BaseMethod):
    """Rewarded soups baseline: per-dimension LoRAs (PEFT) interpolated by lambda."""

    name = "soups"
    description = "rewarded soups: one PEFT LoRA per dimension, updates mixed by lambda"
    Config = SoupsConfig
    sweep_keys = frozenset({"grid_step"})  # the default simplex grid: what is swept, not what is trained

    def __init__(self) -> None:
        self._factors: ArtifactCache[dict[str, tuple[torch.Tensor, torch.Tensor]]] = ArtifactCache()

    def control_space(self, config: SoupsConfig) -> ControlSpace:
        return Simplex(config.dimensions, config.grid_step)

    def check(self, lab: Lab, config: SoupsConfig) -> None:
        match_sites(lab.model.hf, config.targets)
        GroupSampler(lab.model, read_sft(Path(config.data), config.dimensions), config.max_tokens, 0)

    def train(self, lab: Lab, config: SoupsConfig) -> Artifact:
        sites = match_sites(lab.model.hf, config.targets)
        sampler = GroupSampler(lab.model, read_sft(Path(config.data), config.dimensions), config.max_tokens, lab.seed, config.holdout)
        tensors: dict[str, torch.Tensor] = {}
        logs, snapshots = {}, {}
        for dimension in config.dimensions:
            lab.seeded(f"soups:{dimension}")
            lora, logs[dimension], snapshots[dimension] = train_lora(lab, config, sampler, dimension, sites)
            tensors.update(lora)
        if config.eval_every and config.stopping == "joint":
            tensors = joint_stop(logs, snapshots)
        meta = {"dimensions": config.dimensions, "data_sha256": file_digest(Path(config.data)), "train_logs": logs,
                "tokens_per_step": sampler.tokens_per_batch(config.per_dimension) / len(config.dimensions),
                "train_tokens": sampler.tokens_per_batch(config.per_dimension) / len(config.dimensions) * config.steps * len(config.dimensions),
                "grad_tokens": sum(kept_gradient_tokens(log) for log in logs.values()),
                "trainable_parameters": sum(t.numel() for t in tensors.values())}
        return Artifact(tensors, meta, sites=[s.name for s in sites])

    def analyze(self, lab: Lab, entry: MethodEntry, artifact: Artifact, result: SweepResult, folder: Path) -> Section:
        """Each LoRA's training and held-out loss: where soups overfits, and the step kept."""
        dims = artifact.meta["dimensions"]
        logs = [artifact.meta["train_logs"][d] for d in dims]
        curve = plot_training_logs(logs, dims, folder / "training.png", "Rewarded soups: one LoRA per style, its loss")
        held = heldout_table(logs, dims)
        return Section(figures=[Figure(lab.layout.relative(curve), "Per-style SFT loss of each LoRA, held-out loss at each check")],
                       markdown=f"### Held-out loss per style\n\n{held}" if held else "")

    def stacked(self, lab: Lab, artifact: Artifact) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """Per site, every dimension's (A, B) stacked, moved to the model and cast to its dtype once
        per artifact (a cast in the hook is three kernels per module per decode step on a GPU)."""
        dims, device, dtype = artifact.meta["dimensions"], lab.model.device, next(lab.model.hf.parameters()).dtype

        def stack(part: str, site: str) -> torch.Tensor:  # (dimensions, ...) of one factor
            return torch.stack([artifact.tensors[f"{d}.{site}.{part}"] for d in dims]).to(device, dtype)

        return self._factors.get(artifact, lambda: {site: (stack("A", site), stack("B", site)) for site in artifact.sites})

    def steer(self, lab: Lab, artifact: Artifact, controls: torch.Tensor) -> AbstractContextManager[None]:
        factors = self.stacked(lab, artifact)
        a = next(iter(factors.values()))[0]
        weights = controls.to(a.device, a.dtype)  # once per generate call, not per module and step
        return lab.engine.add_deltas({site: soup_delta(a, b, weights) for site, (a, b) in factors.items()})


def soup_delta(a: torch.Tensor, b: torch.Tensor, weights: torch.Tensor) -> Delta:
    """x -> sum_i w[row, i] * B_i A_i x, one weight vector per batch row (one row broadcasts).

    a: (n, r, in), b: (n, out, r), weights: (rows, n)."""

    def delta(x: torch.Tensor) -> torch.Tensor:  # (batch, pos, in) -> (batch, pos, out); flattened tokens as well
        h = torch.einsum("bpi,nri->bpnr", tokens_by_row(x, weights.shape[0]), a.to(x.dtype))  # (batch, pos, n, r)
        h = h * weights.to(x.dtype).reshape(weights.shape[0], 1, -1, 1)
        return torch.einsum("bpnr,nor->bpo", h, b.to(x.dtype)).reshape(*x.shape[:-1], -1)

    return delta
