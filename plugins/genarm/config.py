"""Settings of GenARM, as read from ``[methods.genarm]``."""

from __future__ import annotations

import math
from dataclasses import dataclass

from steerlab.api import DEFAULT_TARGETS, help_field, path_field

ALPHA_GRID = [0.0, 0.5, 1.0, 1.5, 2.0]  # IAV's grid: 0 base, 0.5 light, 1 standard, 1.5 strong, 2 max
MARGINS = ("sum", "mean")


@dataclass(frozen=True)
class GenARMConfig:
    pairs: str = path_field(help="JSONL of preference pairs {'prompt', 'chosen', 'rejected'} (studies/data/iav_styles/pairs.jsonl)",
                            jsonl=("prompt", "chosen", "rejected"))
    rank: int = help_field(8, "LoRA rank r of the autoregressive reward model")
    lora_alpha: float = help_field(16.0, "LoRA alpha (the update is scaled by lora_alpha / r)")
    targets: list[str] = help_field(DEFAULT_TARGETS, "site patterns of the Linear modules the LoRA adapts")
    beta: float = help_field(0.1, "temperature of -log sigmoid(beta * (log pi_r(y_w|x) - log pi_r(y_l|x)))")
    margin: str = help_field("sum", "how an answer's log-probability enters the margin: 'sum' over its tokens (the paper), or 'mean' "
                                    "per token (length-robust: a summed margin between answers of different lengths starts far from "
                                    "0 and the reward model learns length first)")
    steps: int = help_field(200, "optimisation steps")
    pairs_per_step: int = help_field(4, "preference pairs per step (both answers of each)")
    lr: float = help_field(5e-4, "AdamW learning rate")
    max_tokens: int = help_field(256, "truncate prompt + answer to this many tokens")
    heldout_fraction: float = help_field(0.0, "share of the pairs held out (0: none; by a stable hash of the prompt: IAV with the same value "
                                              "holds out the same pairs); their pair accuracy is measured every eval_every steps")
    eval_every: int = help_field(10, "steps between held-out pair-accuracy checks")
    require_heldout_accuracy: float = help_field(0.75, "held-out pair accuracy the reward model must reach at the end for its decoding "
                                                       "to be used in the iav report's tables (0: no requirement)")

    def __post_init__(self) -> None:
        for key in ("rank", "steps", "pairs_per_step", "max_tokens", "eval_every"):
            if getattr(self, key) < 1:
                raise ValueError(f"key '{key}' must be >= 1 (got {getattr(self, key)})")
        for key in ("lora_alpha", "beta", "lr"):
            if not math.isfinite(getattr(self, key)) or getattr(self, key) <= 0:
                raise ValueError(f"key '{key}' must be a finite number > 0 (got {getattr(self, key)})")
        if not self.targets:
            raise ValueError("key 'targets' needs at least one site pattern")
        if self.margin not in MARGINS:
            raise ValueError(f"key 'margin' must be one of {', '.join(MARGINS)} (got {self.margin!r})")
        if not 0 <= self.heldout_fraction < 1:
            raise ValueError(f"key 'heldout_fraction' must be in [0, 1) (got {self.heldout_fraction})")
        if not 0 <= self.require_heldout_accuracy <= 1:
            raise ValueError(f"key 'require_heldout_accuracy' must be in [0, 1] (got {self.require_heldout_accuracy})")
