"""Settings of the activation-difference method, as read from ``[methods.actdiff]``."""

from __future__ import annotations

import math
from dataclasses import dataclass

from steerlab.api import DIRECTIONS, help_field, path_field

AGGREGATORS = ("mean", "pca")
SCALES = ("relative", "raw")
SITE_KINDS = ("resid_post", "resid_pre")


@dataclass(frozen=True)
class ActDiffConfig:
    pairs: str = path_field(help="JSONL of contrastive pairs {'positive': ..., 'negative': ...}", jsonl=("positive", "negative"))
    pairs_limit: int = help_field(0, "use only the first N pairs (0: all; a --quick run's knob)")
    layer: int = help_field(15, "block whose residual stream is read and steered")
    site: str = help_field("resid_post", "resid_post or resid_pre of that block")
    aggregator: str = help_field("mean", "mean (mean of differences) or pca (first PC of differences)")
    position: str = help_field("last", "token read from each prompt: last, or mean over the prompt")
    scale: str = help_field("relative", "relative: control c adds c * typical residual norm * unit vector; raw: c * vector")
    positive_label: str = help_field("positive", "what the vector points towards (for reports)")
    negative_label: str = help_field("negative", "what the vector points away from")
    validate_metric: str = help_field("", "score that a positive control should move (e.g. words); empty: skip")
    validate_direction: str = help_field("decrease", "how a positive control should move validate_metric")
    test_chosen_only: bool = help_field(False, "stage the sweep: every control on the dev prompts, then on the test prompts only 0 "
                                        "and ±c for the strength c with the best dev success of validate_metric")
    layer_sweep: list[int] = help_field([], "blocks to compare in the layer-sweep figure (empty: skip)")
    layer_sweep_prompts: int = help_field(8, "eval prompts used by the layer sweep")
    layer_sweep_control: float = help_field(0.4, "|control| applied at each layer in the sweep")
    layer_sweep_tokens: int = help_field(160, "token cap in the layer sweep")

    def __post_init__(self) -> None:
        if self.aggregator not in AGGREGATORS:
            raise ValueError(f"key 'aggregator' must be one of {AGGREGATORS} (got {self.aggregator!r})")
        if self.scale not in SCALES:
            raise ValueError(f"key 'scale' must be one of {SCALES} (got {self.scale!r})")
        if self.site not in SITE_KINDS:
            raise ValueError(f"key 'site' must be one of {SITE_KINDS} (got {self.site!r})")
        if self.position not in ("last", "mean"):
            raise ValueError(f"key 'position' must be 'last' or 'mean' (got {self.position!r})")
        if self.validate_direction not in DIRECTIONS:
            raise ValueError(f"key 'validate_direction' must be one of {DIRECTIONS} (got {self.validate_direction!r})")
        if self.test_chosen_only and not self.validate_metric:
            raise ValueError("key 'test_chosen_only' needs 'validate_metric' (the score whose dev success chooses the strength)")
        if self.pairs_limit < 0:
            raise ValueError(f"key 'pairs_limit' must be >= 0 (got {self.pairs_limit})")
        if self.layer < 0:
            raise ValueError(f"key 'layer' must be >= 0 (got {self.layer})")
        if any(layer < 0 for layer in self.layer_sweep):
            raise ValueError(f"key 'layer_sweep' expected block indices >= 0 (got {self.layer_sweep})")
        for key in ("layer_sweep_prompts", "layer_sweep_tokens"):
            if getattr(self, key) < 1:
                raise ValueError(f"key '{key}' must be >= 1 (got {getattr(self, key)})")
        if not math.isfinite(self.layer_sweep_control) or self.layer_sweep_control <= 0:
            raise ValueError(f"key 'layer_sweep_control' must be a finite number > 0 (got {self.layer_sweep_control})")

    def site_name(self, layer: int | None = None) -> str:
        return f"blocks.{self.layer if layer is None else layer}.{self.site}"
