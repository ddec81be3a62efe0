"""Panacea: one SVD-LoRA adapter trained across sampled preferences; lambda chosen online."""

from __future__ import annotations

from contextlib import AbstractContextManager
from pathlib import Path

import torch

from steerlab.api import (Artifact, ArtifactCache, BaseMethod, ControlSpace, GroupSampler, Lab, MethodEntry, Section, Simplex, SweepResult,
                          Validation, answer_tokens, file_digest, gradient_tokens, group_losses, kept_gradient_tokens, match_sites, optimise, read_sft, sample_simplex)

from steerlab_plugins.panacea import losses
from steerlab_plugins.panacea.config import PanaceaConfig
from steerlab_plugins.panacea.layers import PanaceaAdapter


class PanaceaMethod(BaseMethod):
    """Pareto set learning with preference-conditioned singular values (arXiv 2402.02030)."""

    name = "panacea"
    description = "SVD-LoRA whose preference singular values are s_l * lambda: one adapter, any lambda"
    Config = PanaceaConfig
    sweep_keys = frozenset({"grid_step"})  # the default simplex grid: what is swept, not what is trained

    def __init__(self) -> None:
        self._adapters: ArtifactCache[PanaceaAdapter] = ArtifactCache()

    def control_space(self, config: PanaceaConfig) -> ControlSpace:
        return Simplex(config.dimensions, config.grid_step)

    def check(self, lab: Lab, config: PanaceaConfig) -> None:
        match_sites(lab.model.hf, config.targets)
        GroupSampler(lab.model, read_sft(Path(config.data), config.dimensions), config.max_tokens, 0)

    def train(self, lab: Lab, config: PanaceaConfig) -> Artifact:
        sites = [s.name for s in match_sites(lab.model.hf, config.targets)]
        seed = lab.seed + config.seed
        init = {"pref_rank": config.pref_rank, "sigma_init": config.sigma_init, "scale_init": config.scale_init}
        adapter = PanaceaAdapter.for_engine(lab.engine, sites, config.rank, len(config.dimensions), seed, **init).to(lab.model.device)
        sampler = GroupSampler(lab.model, read_sft(Path(config.data), config.dimensions), config.max_tokens, seed, config.holdout)
        scalarise = losses.get(config.aggregation, config.ideal)
        generator = torch.Generator().manual_seed(seed)
        m = len(config.dimensions)
        scale = losses.RunningScale(m) if config.normalise else None

        def step_loss(step: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
            preference = sample_simplex(m, generator, config.concentration).to(lab.model.device)  # one copy, before the forward is queued
            adapter.set_preference(preference)
            pairs, index = sampler.batch(config.per_dimension)
            per_dim = group_losses(lab.model, pairs, index, m)
            info = {f"loss.{d}": v for d, v in zip(config.dimensions, per_dim.detach())}
            scaled = scale(per_dim) if scale else per_dim
            loss = scalarise(scaled, preference.to(per_dim.device))
            info["grad_tokens"] = gradient_tokens(loss, per_dim, answer_tokens(pairs, index, m))
            return loss, {**info, "lambda": preference}

        with adapter.attached(lab.engine):
            log = optimise(self.parameter_groups(adapter, config), step_loss, config.steps, config.lr, lab.progress,
                           "panacea train", validation=self.validation(adapter, sampler, config))
        meta = {"rank": config.rank, "pref_rank": config.pref_rank, "dimensions": config.dimensions, "train_log": log,
                "tokens_per_step": sampler.tokens_per_batch(config.per_dimension), "data_sha256": file_digest(Path(config.data)),
                "train_tokens": sampler.tokens_per_batch(config.per_dimension) * config.steps,
                "grad_tokens": kept_gradient_tokens(log),
                "trainable_parameters": sum(p.numel() for p in adapter.parameters())}
        return Artifact(adapter.state(), meta, sites=sites)

    @staticmethod
    def parameter_groups(adapter: PanaceaAdapter, config: PanaceaConfig) -> list[dict]:
        """U and V at ``lr``; the singular values and s_l at ``lr * svd_lr``."""
        singular = [p for n, p in adapter.named_parameters() if n.endswith(("sigma", "scale"))]
        vectors = [p for n, p in adapter.named_parameters() if n.endswith((".U", ".V"))]
        return [{"params": vectors}, {"params": singular, "lr": config.lr * config.svd_lr}]

    @staticmethod
    def validation(adapter: PanaceaAdapter, sampler: GroupSampler, config: PanaceaConfig) -> Validation | None:
        """Held-out loss of each style at its own corner (lambda = e_i): what the adapter is for."""
        if not config.eval_every:
            return None

        corners = Simplex(config.dimensions, config.grid_step).corners()  # e_i, in the order of the dimensions

        def measure() -> dict[str, float]:
            out = {}
            for dim, corner in zip(config.dimensions, corners):
                adapter.set_preference(list(corner))
                out[dim] = sampler.heldout_losses([dim])[dim]
            out["mean"] = sum(out[d] for d in config.dimensions) / len(config.dimensions)
            return out

        return Validation(measure, config.eval_every)

    def adapter(self, lab: Lab, artifact: Artifact) -> PanaceaAdapter:
        """The artifact's adapter, rebuilt once and reused (steer is entered many times)."""
        dtype = next(lab.model.hf.parameters()).dtype
        return self._adapters.get(artifact, lambda: PanaceaAdapter.from_artifact(artifact, lab.engine).to(lab.model.device, dtype))

    def steer(self, lab: Lab, artifact: Artifact, controls: torch.Tensor) -> AbstractContextManager[None]:
        adapter = self.adapter(lab, artifact)
        adapter.set_preference(controls)
        return adapter.attached(lab.engine)

    def analyze(self, lab: Lab, entry: MethodEntry, artifact: Artifact, result: SweepResult, folder: Path) -> Section:
        from steerlab_plugins.panacea.inspect import svd_analysis

        return svd_analysis(self.adapter(lab, artifact), artifact, lab, folder)
