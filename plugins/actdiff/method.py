"""Activation-difference steering: mean (or PCA) difference of residual activations between
contrastive prompts, added back as ``c * v`` at one block during generation, one ``c`` per row."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch

from steerlab.api import (Artifact, ControlSpace, Lab, MethodEntry, ResidualVector, ResidualVectorMethod, Scalar, Section,
                          SweepResult, collect, file_digest, read_jsonl)

from steerlab_plugins.actdiff import aggregators
from steerlab_plugins.actdiff.analysis import analyze
from steerlab_plugins.actdiff.config import ActDiffConfig


class ActDiffMethod(ResidualVectorMethod):
    """Contrastive activation difference added to the residual stream."""

    name = "actdiff"
    description = "activation-difference vector (mean or PCA of paired differences) added at a block"
    Config = ActDiffConfig

    def control_space(self, config: ActDiffConfig) -> ControlSpace:
        grid = [-0.4, 0.0, 0.4] if config.scale == "relative" else [-1.0, 0.0, 1.0]
        return Scalar("strength", grid=grid)

    def check(self, lab: Lab, config: ActDiffConfig) -> None:
        for layer in (config.layer, *config.layer_sweep):
            if layer >= lab.model.n_layers:
                raise ValueError(f"layer {layer} out of range (the model has {lab.model.n_layers} blocks, 0..{lab.model.n_layers - 1})")

    def train(self, lab: Lab, config: ActDiffConfig) -> Artifact:
        """Read every layer the study needs in one pass per side; one vector per layer, the
        study's own layer declared first."""
        pairs = read_jsonl(Path(config.pairs), ("positive", "negative"))
        pairs = pairs[: config.pairs_limit] if config.pairs_limit else pairs
        layers = [config.layer] + sorted(set(config.layer_sweep) - {config.layer})
        sites = [config.site_name(layer) for layer in layers]
        acts = {
            side: collect(lab.model, [lab.model.format_prompt(p[side]) for p in pairs], sites,
                          config.position, lab.settings.batch_size, lab.progress)
            for side in ("positive", "negative")
        }
        aggregate = aggregators.get(config.aggregator)
        tensors, vectors, typical = {}, [], {}
        for layer, site in zip(layers, sites):
            vector = aggregate(acts["positive"].vectors[site], acts["negative"].vectors[site])
            typical[str(layer)] = float(torch.cat([acts[s].token_norms[site] for s in acts]).median())
            tensors[f"layer.{layer}"] = vector
            per_unit = typical[str(layer)] / float(vector.norm()) if config.scale == "relative" else 1.0
            vectors.append(ResidualVector(site, f"layer.{layer}", per_unit))
        meta = {
            "layer": config.layer, "layers": layers, "typical_norm": typical,
            "vector_norm": {str(layer): float(tensors[f"layer.{layer}"].norm()) for layer in layers},
            "n_pairs": len(pairs), "pairs_sha256": file_digest(Path(config.pairs)),
            "describe": f"{config.positive_label} minus {config.negative_label}",
            "labels": [config.positive_label, config.negative_label],
        }
        return Artifact(tensors, meta, sites=[sites[0]], vectors=vectors)

    def at_layer(self, artifact: Artifact, layer: int) -> Artifact:
        """The same artifact steering at another of its layers (for the layer sweep)."""
        decl = next(v for v in artifact.vectors if v.tensor == f"layer.{layer}")
        return dataclasses.replace(artifact, vectors=[decl], sites=[decl.site])

    def raw_equivalent(self, artifact: Artifact, control: float) -> float:
        """The raw multiplier of the difference vector that a control amounts to."""
        return control * artifact.vectors[0].per_unit

    def analyze(self, lab: Lab, entry: MethodEntry, artifact: Artifact, result: SweepResult, folder: Path) -> Section:
        return analyze(self, lab, entry, artifact, result, folder)

