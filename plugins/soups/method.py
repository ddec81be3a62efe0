"""Rewarded soups: a LoRA per dimension, trained with PEFT; at lambda, the weights
theta_0 + sum_i lambda_i * DeltaW_i (exactly a lambda-weighted sum of the LoRA updates)."""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from steerlab.artifact import Artifact
from steerlab.config import as_dict, help_field, path_field
from steerlab.data import file_digest
from steerlab.method import Control, PreferenceMethod
from steerlab.models import describe
from steerlab.sites import match_sites
from steerlab.training import GroupSampler, group_losses, optimise, read_sft

if TYPE_CHECKING:
    from steerlab.lab import Lab


@dataclass(frozen=True)
class SoupsConfig:
    data: str = path_field(help="SFT JSONL: {'prompt', 'style', 'response'} per line")
    dimensions: list[str] = help_field(["helpful", "humorous", "philosophical"], "one LoRA per dimension, in lambda order")
    rank: int = help_field(4, "LoRA rank r")
    alpha: float = help_field(8.0, "LoRA alpha (scaling alpha / r)")
    targets: list[str] = help_field(["blocks.*.attn.*_proj", "blocks.*.mlp.*_proj"], "site patterns of the Linear modules to adapt")
    steps: int = help_field(120, "steps per LoRA; with per_dimension this matches Panacea's token budget")
    per_dimension: int = help_field(2, "examples per step")
    lr: float = help_field(2e-3, "AdamW learning rate")
    max_tokens: int = help_field(192, "truncate prompt + response to this many tokens")
    grid_step: float = help_field(0.25, "simplex grid step of the default sweep")

    def __post_init__(self) -> None:
        if len(self.dimensions) < 2:
            raise ValueError("key 'dimensions' needs at least two names")
        if min(self.rank, self.steps, self.per_dimension, self.max_tokens) < 1 or self.lr <= 0:
            raise ValueError("rank, steps, per_dimension, max_tokens must be >= 1 and lr > 0")


def train_lora(lab: Lab, config: SoupsConfig, sampler: GroupSampler, dimension: str, module_to_site: dict[str, str]) -> dict[str, torch.Tensor]:
    """Train one PEFT LoRA on one dimension's examples; return its (A, B) per site, model restored."""
    from peft import LoraConfig, get_peft_model
    from peft.tuners.lora import LoraLayer

    lora = LoraConfig(r=config.rank, lora_alpha=config.alpha, lora_dropout=0.0, target_modules=list(module_to_site))
    peft_model = get_peft_model(lab.model.hf, lora)
    try:
        index = sampler.groups.index(dimension)
        params = [p for p in peft_model.parameters() if p.requires_grad]

        def step_loss(step: int) -> tuple[torch.Tensor, dict[str, float]]:
            batch, rows = sampler.batch(config.per_dimension, [dimension])
            loss = group_losses(lab.model, batch, rows, len(sampler.groups))[index]
            return loss, {f"loss.{dimension}": float(loss.detach())}

        optimise(params, step_loss, config.steps, config.lr, lab.progress, f"soups LoRA {dimension}")
        tensors = {}
        for name, module in lab.model.hf.named_modules():
            if isinstance(module, LoraLayer) and name in module_to_site:
                site = module_to_site[name]
                tensors[f"{dimension}.{site}.A"] = module.lora_A["default"].weight.detach().clone()
                tensors[f"{dimension}.{site}.B"] = (module.lora_B["default"].weight * module.scaling["default"]).detach().clone()
        return tensors
    finally:
        peft_model.unload()  # puts the original Linear modules back, unmerged


class SoupsMethod(PreferenceMethod):
    """Rewarded soups baseline: per-dimension LoRAs (PEFT) interpolated by lambda."""

    name = "soups"
    description = "rewarded soups: one PEFT LoRA per dimension, updates mixed by lambda"
    Config = SoupsConfig


    def train(self, lab: Lab, config: SoupsConfig) -> Artifact:
        sites = match_sites(lab.model.hf, config.targets)
        module_to_site = {s.module_path: s.name for s in sites}
        sampler = GroupSampler(lab.model, read_sft(Path(config.data), config.dimensions), config.max_tokens, lab.seed)
        tensors: dict[str, torch.Tensor] = {}
        for dimension in config.dimensions:
            lab.seeded(f"soups:{dimension}")
            tensors.update(train_lora(lab, config, sampler, dimension, module_to_site))
        meta = {"method": self.name, "model": describe(lab.model), "sites": [s.name for s in sites],
                "dimensions": config.dimensions, "config": as_dict(config), "data_sha256": file_digest(Path(config.data)),
                "tokens_per_step": sampler.tokens_per_batch(config.per_dimension) / len(config.dimensions)}
        return Artifact(tensors, meta)

    def steer(self, lab: Lab, artifact: Artifact, control: Control) -> AbstractContextManager[None]:
        dims, device = artifact.meta["dimensions"], lab.model.device
        deltas = {}
        for site in artifact.meta["sites"]:
            pairs = [(w, artifact.tensors[f"{d}.{site}.A"].to(device), artifact.tensors[f"{d}.{site}.B"].to(device))
                     for w, d in zip(control, dims) if w]
            deltas[site] = soup_delta(pairs)
        return lab.engine.add_deltas(deltas)


def soup_delta(pairs: list[tuple[float, torch.Tensor, torch.Tensor]]):
    """x -> sum_i w_i * B_i A_i x for the LoRAs with non-zero weight."""

    def delta(x: torch.Tensor) -> torch.Tensor:
        out = 0
        for weight, a, b in pairs:
            out = out + weight * ((x @ a.to(x.dtype).T) @ b.to(x.dtype).T)
        return out if pairs else torch.zeros((), dtype=x.dtype, device=x.device)

    return delta
