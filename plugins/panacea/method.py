"""Panacea: one SVD-LoRA adapter trained across sampled preferences; lambda chosen online."""

from __future__ import annotations

from contextlib import AbstractContextManager
from pathlib import Path

import torch

from steerlab.api import (Artifact, BaseMethod, ControlSpace, GroupSampler, Lab, MethodEntry, Section, Simplex, SweepResult,
                          file_digest, group_losses, match_sites, optimise, read_sft, sample_simplex)

from steerlab_plugins.panacea import losses
from steerlab_plugins.panacea.config import PanaceaConfig
from steerlab_plugins.panacea.layers import PanaceaAdapter


class PanaceaMethod(BaseMethod):
    """Pareto set learning with preference-conditioned singular values (arXiv 2402.02030)."""

    name = "panacea"
    description = "SVD-LoRA whose preference singular values are s_l * lambda: one adapter, any lambda"
    Config = PanaceaConfig

    def __init__(self) -> None:
        # The last artifact and its rebuilt adapter. Held by reference and compared with `is`:
        # an id() key could be reused by a new artifact once the old one is freed.
        self._cached: tuple[Artifact, PanaceaAdapter] | None = None

    def control_space(self, config: PanaceaConfig) -> ControlSpace:
        return Simplex(config.dimensions, config.grid_step)

    def check(self, lab: Lab, config: PanaceaConfig) -> None:
        match_sites(lab.model.hf, config.targets)
        GroupSampler(lab.model, read_sft(Path(config.data), config.dimensions), config.max_tokens, 0)

    def train(self, lab: Lab, config: PanaceaConfig) -> Artifact:
        sites = [s.name for s in match_sites(lab.model.hf, config.targets)]
        seed = lab.seed + config.seed
        adapter = PanaceaAdapter.for_engine(lab.engine, sites, config.rank, len(config.dimensions), seed).to(lab.model.device)
        sampler = GroupSampler(lab.model, read_sft(Path(config.data), config.dimensions), config.max_tokens, seed)
        scalarise = losses.get(config.aggregation, config.ideal)
        generator = torch.Generator().manual_seed(seed)
        m = len(config.dimensions)

        def step_loss(step: int) -> tuple[torch.Tensor, dict[str, float]]:
            preference = sample_simplex(m, generator, config.concentration)
            adapter.set_preference(preference)
            pairs, index = sampler.batch(config.per_dimension)
            per_dim = group_losses(lab.model, pairs, index, m)
            info = {f"loss.{d}": float(v) for d, v in zip(config.dimensions, per_dim.detach())}
            return scalarise(per_dim, preference.to(per_dim.device)), {**info, "lambda": preference.tolist()}

        with adapter.attached(lab.engine):
            log = optimise(list(adapter.parameters()), step_loss, config.steps, config.lr, lab.progress, "panacea train")
        meta = {"rank": config.rank, "dimensions": config.dimensions, "train_log": log,
                "tokens_per_step": sampler.tokens_per_batch(config.per_dimension), "data_sha256": file_digest(Path(config.data))}
        return Artifact(adapter.state(), meta, sites=sites)

    def adapter(self, lab: Lab, artifact: Artifact) -> PanaceaAdapter:
        """The artifact's adapter, rebuilt once and reused (steer is entered many times)."""
        if self._cached is None or self._cached[0] is not artifact:
            adapter = PanaceaAdapter.from_artifact(artifact, lab.engine)
            self._cached = (artifact, adapter.to(lab.model.device))
        return self._cached[1]

    def steer(self, lab: Lab, artifact: Artifact, controls: torch.Tensor) -> AbstractContextManager[None]:
        adapter = self.adapter(lab, artifact)
        adapter.set_preference(controls)
        return adapter.attached(lab.engine)

    def analyze(self, lab: Lab, entry: MethodEntry, artifact: Artifact, result: SweepResult, folder: Path) -> Section:
        from steerlab_plugins.panacea.inspect import svd_analysis

        return svd_analysis(self.adapter(lab, artifact), artifact, lab, folder)
