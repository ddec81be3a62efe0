"""The block a transfer reads or steers, chosen on the dev prompts from per-block native entries.

``source_layer_from`` / ``target_layer_from`` name actdiff entries of the same study (one per
block, on the source / target model). When a transfer entry trains, those entries have run (the
study lists them first; with ``--only`` they run first): each one's finished sweep is read back,
its success (``steerlab.api.symmetric_success`` of ``validate_metric``) is measured on the dev
prompts only, at its own dev-chosen strength, and the block of the best one is used (ties: the
first listed). So the layer pair is a choice written down before the run (these entries, this
rule) and made on dev: "Gemma 3's own vector moves Gemma at block b" is read on dev, and the
transfer into Gemma steers block b.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from steerlab.api import ConfigError, Lab, SweepResult, chosen_strength, in_dev_half, read_json, symmetric_success


@dataclass(frozen=True)
class LayerChoice:
    """Which named entry won on dev, its block, and every candidate's dev success (for the report)."""

    layer: int
    entry: str
    dev_success: dict[str, float]  # entry name -> dev success at its dev-chosen strength (NaN: none)

    def to_json(self) -> dict[str, Any]:
        return {"layer": self.layer, "entry": self.entry,
                "dev_success": {k: (v if math.isfinite(v) else None) for k, v in self.dev_success.items()}}


def _entry(lab: Lab, name: str, model: str, key: str) -> Any:
    """The study's actdiff entry ``name`` on ``model`` (ConfigError naming the key otherwise)."""
    if lab.study is None:
        raise ConfigError(f"key '{key}': choosing a block from other entries needs a study")
    entry = next((e for e in lab.study.methods if e.name == name), None)
    if entry is None or entry.method != "actdiff" or entry.model != model:
        names = [e.name for e in lab.study.methods if e.method == "actdiff" and e.model == model]
        raise ConfigError(f"{lab.study.path}: key '{key}': {name!r} is not an actdiff entry on '{model}' "
                          f"(expected one of: {', '.join(names) or 'none'})")
    return entry


def dev_success(records: list[Any], metric: str, direction: str) -> float:
    """Success on the dev prompts at the strength chosen there (NaN when none can be read)."""
    rows = [(r.prompt, float(r.control), r.scores.get(metric, math.nan)) for r in records if in_dev_half(r.prompt)]
    c = chosen_strength(rows, direction)
    return math.nan if c is None else symmetric_success(rows, direction)[c]


def check_names(lab: Lab, names: list[str], model: str, key: str) -> None:
    """Every name is an actdiff entry on ``model`` with ``validate_metric`` set (before any run)."""
    for name in names:
        if not _entry(lab, name, model, key).config.validate_metric:
            raise ConfigError(f"{lab.study.path}: key '{key}': entry {name!r} has no validate_metric to choose by")


def choose(lab: Lab, names: list[str], model: str, key: str) -> LayerChoice:
    """The block of the named entry with the best dev success (its finished sweep read back)."""
    success: dict[str, float] = {}
    for name in names:
        entry = _entry(lab, name, model, key)
        path = lab.layout.result(name)
        if not path.exists():
            raise ConfigError(f"key '{key}': entry {name!r} has not run yet ({path} missing); list it before this entry "
                              f"in the study, or run it first (--only {name})")
        result = SweepResult.from_json(read_json(path, "method result"), str(path))
        success[name] = dev_success(result.records, entry.config.validate_metric, entry.config.validate_direction)
    ranked = [n for n in names if math.isfinite(success[n])]
    if not ranked:
        raise ConfigError(f"key '{key}': none of {names} has a dev success to choose by (no dev prompt answered at 0, +c and -c)")
    best = max(ranked, key=lambda n: success[n])  # max keeps the first of equals
    return LayerChoice(int(_entry(lab, best, model, key).config.layer), best, success)
