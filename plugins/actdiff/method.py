"""Activation-difference steering: mean (or PCA) difference of residual activations between
contrastive prompts, added back as ``c * v`` at one block during generation."""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from steerlab.activations import collect
from steerlab.artifact import Artifact
from steerlab.config import as_dict
from steerlab.data import file_digest, read_jsonl
from steerlab.engine import add_vector
from steerlab.method import Analysis, BaseMethod, Control
from steerlab.models import describe

from steerlab_plugins.actdiff import aggregators
from steerlab_plugins.actdiff.analysis import analyze
from steerlab_plugins.actdiff.config import ActDiffConfig

if TYPE_CHECKING:
    from steerlab.lab import Lab


class ActDiffMethod(BaseMethod):
    """Contrastive activation difference added to the residual stream."""

    name = "actdiff"
    description = "activation-difference vector (mean or PCA of paired differences) added at a block"
    Config = ActDiffConfig
    control_label = "strength"

    def default_controls(self, config: ActDiffConfig) -> list[Control]:
        return [-0.4, 0.0, 0.4] if config.scale == "relative" else [-1.0, 0.0, 1.0]

    def train(self, lab: Lab, config: ActDiffConfig) -> Artifact:
        """Read every layer the study needs in one pass per side; one vector per layer."""
        pairs = read_jsonl(Path(config.pairs), ("positive", "negative"))
        layers = sorted({config.layer, *config.layer_sweep})
        sites = [config.site_name(layer) for layer in layers]
        batch = lab.study.generation.batch_size
        acts = {
            side: collect(lab.model, [lab.model.format_prompt(p[side]) for p in pairs], sites,
                          config.position, batch, lab.progress)
            for side in ("positive", "negative")
        }
        aggregate = aggregators.get(config.aggregator)
        tensors, typical = {}, {}
        for layer, site in zip(layers, sites):
            tensors[f"layer.{layer}"] = aggregate(acts["positive"].vectors[site], acts["negative"].vectors[site])
            norms = torch.cat([acts[s].token_norms[site] for s in acts])
            typical[str(layer)] = float(norms.median())
        tensors["vector"] = tensors[f"layer.{config.layer}"]
        meta = {
            "method": self.name, "model": describe(lab.model), "sites": [config.site_name()],
            "layer": config.layer, "layers": layers, "typical_norm": typical,
            "vector_norm": {str(layer): float(tensors[f"layer.{layer}"].norm()) for layer in layers},
            "config": as_dict(config), "n_pairs": len(pairs), "pairs_sha256": file_digest(Path(config.pairs)),
        }
        return Artifact(tensors, meta)

    def scaled_vector(self, artifact: Artifact, control: float, layer: int | None = None) -> torch.Tensor:
        layer = artifact.meta["layer"] if layer is None else layer
        vector = artifact.tensors[f"layer.{layer}"]
        if artifact.meta["config"]["scale"] == "raw":
            return control * vector
        return control * artifact.meta["typical_norm"][str(layer)] * vector / vector.norm()

    def raw_equivalent(self, artifact: Artifact, control: float) -> float:
        """The raw multiplier of the difference vector that a relative control amounts to."""
        if artifact.meta["config"]["scale"] == "raw":
            return control
        layer = str(artifact.meta["layer"])
        return control * artifact.meta["typical_norm"][layer] / artifact.meta["vector_norm"][layer]

    def steer(self, lab: Lab, artifact: Artifact, control: Control, layer: int | None = None) -> AbstractContextManager[None]:
        if control == 0:
            return nullcontext()  # nothing attached: exactly the unsteered model
        layer = artifact.meta["layer"] if layer is None else layer
        site = f"blocks.{layer}.{artifact.meta['config']['site']}"
        return lab.engine.edit({site: add_vector(self.scaled_vector(artifact, control, layer))})

    def analyze(self, lab: Lab, entry_name: str, artifact: Artifact, config: Any, result: dict[str, Any], out_dir: Path) -> Analysis:
        return analyze(self, lab, artifact, config, result, out_dir)
