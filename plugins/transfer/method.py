"""Cross-model transfer of a preference vector: extracted on a SOURCE model, mapped into the
TARGET model's residual space (the entry's model) and added there like actdiff's vector.

train, for adapter X:
1. load the source model, read the mean paired difference of the contrastive prompts at
   ``blocks.{source_layer}.resid_post``, last prompt token (actdiff's mean vector);
2. read the fit texts in both models (``pairing``), pair the rows, free the source model;
3. fit X on all but every k-th fit text, score it (R^2, cosine) on those held out;
4. map the vector through X's linear part and scale it by actdiff's relative rule: control c
   adds c * (median residual token norm at the target site, over the pairs' prompts) * unit vector.

Steps 1-2 are shared by every entry with the same source, layers and data (a lab resource), and
the native target vector (the same pairs read in the target) is kept beside the mapped one, to
report their cosine.
"""

from __future__ import annotations

import dataclasses
import gc
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from steerlab.api import (Artifact, ConfigError, ControlSpace, Lab, LoadedModel, MethodEntry, ResidualVector, ResidualVectorMethod,
                          Scalar, Section, SweepResult, collect, file_digest, load_model, read_jsonl)

from steerlab_plugins.transfer import adapters, layers, pairing
from steerlab_plugins.transfer.analysis import analyze
from steerlab_plugins.transfer.config import TransferConfig, matched_layer


def _site(layer: int) -> str:
    return f"blocks.{layer}.resid_post"


def _mean_difference(model: LoadedModel, pairs: list[dict[str, str]], site: str, lab: Lab) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean of positive - negative at the last prompt token, every prompt token's norm): actdiff's
    mean vector and the norms its relative strength is measured against."""
    reads = {side: collect(model, [model.format_prompt(p[side]) for p in pairs], [site], "last", lab.settings.batch_size, lab.progress)
             for side in ("positive", "negative")}
    vector = (reads["positive"].vectors[site] - reads["negative"].vectors[site]).mean(0)  # (d,)
    return vector, torch.cat([reads[s].token_norms[site] for s in reads])


def _limited(rows: list[Any], limit: int) -> list[Any]:
    return rows[:limit] if limit else rows


@dataclass
class SourceReadings:
    """What the source model contributes (built once per source / layers / data, then freed)."""

    vector: torch.Tensor  # (d_source,) the source's mean paired difference
    paired: pairing.Paired
    n_layers: int
    d_model: int
    target_layer: int


class TransferMethod(ResidualVectorMethod):
    """A vector from another model, through a learned (or no) map between residual spaces."""

    name = "transfer"
    description = ("a source model's activation-difference vector mapped into the target model "
                   "(ridge, procrustes, affine, direct, random)")
    Config = TransferConfig

    def control_space(self, config: TransferConfig) -> ControlSpace:
        return Scalar("strength", grid=[-0.4, -0.2, 0.0, 0.2, 0.4])

    def check(self, lab: Lab, config: TransferConfig) -> None:
        if config.target_layer >= lab.model.n_layers:
            raise ValueError(f"target_layer {config.target_layer} out of range (the target model '{lab.model.name}' "
                             f"has {lab.model.n_layers} blocks, 0..{lab.model.n_layers - 1})")
        name = config.source_model
        if name not in lab.registry.models and not Path(name).exists() and "/" not in name:
            known = ", ".join(sorted(lab.registry.models))
            raise ValueError(f"source_model {name!r}: unknown model (expected one of: {known}; or a local path / hub id)")
        if config.target_layer_from:
            layers.check_names(lab, config.target_layer_from, lab.model.name, "target_layer_from")
        if config.source_layer_from:
            layers.check_names(lab, config.source_layer_from, name, "source_layer_from")

    def _resolved(self, lab: Lab, config: TransferConfig) -> tuple[TransferConfig, dict[str, Any]]:
        """The config with its blocks chosen on dev from the named entries (``layers``), and the
        record of each choice (empty when the study fixed the blocks)."""
        chosen: dict[str, Any] = {}
        if config.source_layer_from:
            pick = layers.choose(lab, config.source_layer_from, config.source_model, "source_layer_from")
            config, chosen["source"] = dataclasses.replace(config, source_layer=pick.layer), pick.to_json()
        if config.target_layer_from:
            pick = layers.choose(lab, config.target_layer_from, lab.model.name, "target_layer_from")
            config, chosen["target"] = dataclasses.replace(config, target_layer=pick.layer), pick.to_json()
        return config, chosen

    def _source(self, lab: Lab, config: TransferConfig) -> SourceReadings:
        """Load the source, read the vector and the fit texts in both models, free the source."""
        dtype = str(lab.model.hf.dtype).removeprefix("torch.")
        source = load_model(config.source_model, lab.registry.models, str(lab.model.device), dtype)
        if config.source_layer >= source.n_layers:
            raise ConfigError(f"source_layer {config.source_layer} out of range (the source model "
                              f"'{source.name}' has {source.n_layers} blocks, 0..{source.n_layers - 1})")
        target_layer = config.target_layer if config.target_layer >= 0 else \
            matched_layer(config.source_layer, source.n_layers, lab.model.n_layers)
        pairs = _limited(read_jsonl(Path(config.pairs), ("positive", "negative")), config.pairs_limit)
        texts = [row["text"] for row in _limited(read_jsonl(Path(config.fit_texts), ("text",)), config.fit_limit)]
        vector, _ = _mean_difference(source, pairs, _site(config.source_layer), lab)
        batch = lab.settings.batch_size
        src = pairing.read(source, texts, _site(config.source_layer), config.pooling, batch, lab.progress)
        tgt = pairing.read(lab.model, texts, _site(target_layer), config.pooling, batch, lab.progress)
        readings = SourceReadings(vector, pairing.pair(src, tgt), source.n_layers, source.d_model, target_layer)
        del source, src
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        return readings

    def _native(self, lab: Lab, config: TransferConfig, layer: int) -> tuple[torch.Tensor, float]:
        """The target's own vector from the same pairs, and the median token norm there."""
        def build() -> tuple[torch.Tensor, float]:
            pairs = _limited(read_jsonl(Path(config.pairs), ("positive", "negative")), config.pairs_limit)
            vector, norms = _mean_difference(lab.model, pairs, _site(layer), lab)
            return vector, float(norms.median())

        return lab.resource(f"transfer:native:{config.pairs}:{config.pairs_limit}:{layer}", build)

    def _readings(self, lab: Lab, config: TransferConfig) -> SourceReadings:
        key = (f"transfer:source:{config.source_model}:{config.source_layer}:{config.target_layer}:{config.pooling}:"
               f"{config.pairs}:{config.pairs_limit}:{config.fit_texts}:{config.fit_limit}")
        return lab.resource(key, lambda: self._source(lab, config))

    def train(self, lab: Lab, config: TransferConfig) -> Artifact:
        config, chosen = self._resolved(lab, config)
        readings = self._readings(lab, config)
        if config.adapter == "random":
            return self._train_random(lab, config, readings, chosen)
        paired = readings.paired
        held = paired.text % config.holdout_every == config.holdout_every - 1  # (n,) bool
        if int(held.sum()) == 0 or int((~held).sum()) < 2:
            raise ConfigError(f"{config.fit_texts}: too few fit texts to hold every {config.holdout_every}th out "
                              f"({int(paired.text.max()) + 1 if len(paired.text) else 0} texts)")
        train = ~held
        fitted = adapters.fit(config.adapter, paired.source[train], paired.target[train], config.components, paired.text[train])
        scores = adapters.fit_scores(fitted, paired.source[held], paired.target[held])
        mapped = fitted.linear(readings.vector)  # (d_target,)
        native, typical = self._native(lab, config, readings.target_layer)
        meta = {"fit": scores, "adapter_info": fitted.info, "n_fit_rows": {"train": int(train.sum()), "heldout": int(held.sum())},
                "source_vector_norm": float(readings.vector.norm()), "source_n_layers": readings.n_layers,
                "source_d_model": readings.d_model, "layer_choice": chosen}
        tensors = {"source_vector": readings.vector, "adapter.weight": fitted.weight, "adapter.bias": fitted.bias}
        return self._artifact(lab, config, readings.target_layer, mapped, native, typical, tensors, meta)

    def _train_random(self, lab: Lab, config: TransferConfig, readings: SourceReadings, chosen: dict[str, Any]) -> Artifact:
        """A Gaussian direction in the target space, at the same site: the chance-level control.
        Norm matched to the native vector (the relative rule rescales it anyway)."""
        native, typical = self._native(lab, config, readings.target_layer)
        vector = adapters.random_direction(lab.model.d_model, float(native.norm()))  # seeded by the runner
        meta = {"fit": {"r2": float("nan"), "cosine": float("nan"), "cosine_centered": float("nan")},
                "source_vector_norm": float(readings.vector.norm()), "layer_choice": chosen}
        return self._artifact(lab, config, readings.target_layer, vector, native, typical, {}, meta)

    def _artifact(self, lab: Lab, config: TransferConfig, layer: int, vector: torch.Tensor, native: torch.Tensor,
                  typical: float, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> Artifact:
        if not bool(torch.isfinite(vector).all()) or float(vector.norm()) == 0.0:
            raise ConfigError(f"adapter '{config.adapter}' mapped the vector to zero or a non-finite vector")
        site = _site(layer)
        meta = {**meta, "source_model": config.source_model, "target_model": lab.model.name, "adapter": config.adapter,
                "pooling": config.pooling, "source_layer": config.source_layer, "target_layer": layer,
                "typical_norm": typical, "vector_norm": float(vector.norm()),
                "native_cosine": float(torch.nn.functional.cosine_similarity(vector, native, dim=0)),
                "pairs_sha256": file_digest(Path(config.pairs)), "fit_texts_sha256": file_digest(Path(config.fit_texts)),
                "describe": f"{config.positive_label} minus {config.negative_label}, from {config.source_model} "
                            f"block {config.source_layer} via {config.adapter}",
                "labels": [config.positive_label, config.negative_label]}
        tensors = {**tensors, "vector": vector.float(), "native_vector": native.float()}
        return Artifact(tensors, meta, sites=[site], vectors=[ResidualVector(site, "vector", typical / float(vector.norm()))])

    def analyze(self, lab: Lab, entry: MethodEntry, artifact: Artifact, result: SweepResult, folder: Path) -> Section:
        return analyze(entry, artifact, result)
