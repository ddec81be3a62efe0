"""Panacea: one SVD-LoRA adapter trained across sampled preferences; lambda chosen online."""

from __future__ import annotations

from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from steerlab.artifact import Artifact
from steerlab.config import as_dict
from steerlab.data import file_digest
from steerlab.method import Analysis, Control, PreferenceMethod
from steerlab.models import describe
from steerlab.simplex import sample_simplex
from steerlab.sites import match_sites
from steerlab.training import GroupSampler, group_losses, optimise, read_sft

from steerlab_plugins.panacea import losses
from steerlab_plugins.panacea.config import PanaceaConfig
from steerlab_plugins.panacea.layers import PanaceaAdapter

if TYPE_CHECKING:
    from steerlab.lab import Lab


class PanaceaMethod(PreferenceMethod):
    """Pareto set learning with preference-conditioned singular values (arXiv 2402.02030)."""

    name = "panacea"
    description = "SVD-LoRA whose preference singular values are s_l * lambda: one adapter, any lambda"
    Config = PanaceaConfig

    def __init__(self) -> None:
        # The last artifact and its rebuilt adapter. Held by reference and compared with `is`:
        # an id() key could be reused by a new artifact once the old one is freed.
        self._cached: tuple[Artifact, PanaceaAdapter] | None = None


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
            batch, index = sampler.batch(config.per_dimension)
            per_dim = group_losses(lab.model, batch, index, m)
            info = {f"loss.{d}": float(v) for d, v in zip(config.dimensions, per_dim.detach())}
            return scalarise(per_dim, preference.to(per_dim.device)), {**info, "lambda": preference.tolist()}

        with adapter.attached(lab.engine):
            log = optimise(list(adapter.parameters()), step_loss, config.steps, config.lr, lab.progress, "panacea train")
        meta = {
            "method": self.name, "model": describe(lab.model), "sites": sites, "rank": config.rank,
            "dimensions": config.dimensions, "config": as_dict(config), "train_log": log,
            "tokens_per_step": sampler.tokens_per_batch(config.per_dimension),
            "data_sha256": file_digest(Path(config.data)),
        }
        return Artifact(adapter.state(), meta)

    def adapter(self, lab: Lab, artifact: Artifact) -> PanaceaAdapter:
        """The artifact's adapter, rebuilt once and reused (steer is entered many times)."""
        if self._cached is None or self._cached[0] is not artifact:
            meta = artifact.meta
            adapter = PanaceaAdapter.from_state(artifact.tensors, meta["sites"], meta["rank"], len(meta["dimensions"]))
            self._cached = (artifact, adapter.to(lab.model.device))
        return self._cached[1]

    def steer(self, lab: Lab, artifact: Artifact, control: Control) -> AbstractContextManager[None]:
        adapter = self.adapter(lab, artifact)
        adapter.set_preference(control)
        return adapter.attached(lab.engine)

    def inspectors(self) -> dict[str, Any]:
        return {"svd": self.inspect_svd}

    def inspect_svd(self, run: Any, options: dict[str, Any]) -> str:
        """``steerlab inspect svd RUN_DIR [--pref ...]``: heatmap PNG + table of contributions."""
        from steerlab.tools import checked_control
        from steerlab_plugins.panacea.inspect import inspect_svd

        m = len(run.artifact.meta["dimensions"])
        preference = checked_control(run, options.get("pref") or [1 / m] * m)
        text, png, _ = inspect_svd(self.adapter(run.lab, run.artifact), preference, run.lab.run_dir / "inspect", f"svd_{run.entry.name}")
        return text + f"\nwritten: {png} and {png.with_suffix('.md')}"

    def analyze(self, lab: Lab, entry_name: str, artifact: Artifact, config: Any, result: dict[str, Any], out_dir: Path) -> Analysis:
        from steerlab_plugins.panacea.inspect import svd_analysis

        return svd_analysis(self.adapter(lab, artifact), artifact, lab.run_dir, out_dir)
