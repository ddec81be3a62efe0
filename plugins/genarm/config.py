"""Settings of GenARM, as read from ``[methods.genarm]``."""

from __future__ import annotations

import math
from dataclasses import dataclass

from steerlab.api import DEFAULT_TARGETS, help_field, path_field

ALPHA_GRID = [0.0, 0.5, 1.0, 1.5, 2.0]  # IAV's grid: 0 base, 0.5 light, 1 standard, 1.5 strong, 2 max


@dataclass(frozen=True)
class GenARMConfig:
    pairs: str = path_field(help="JSONL of preference pairs {'prompt', 'chosen', 'rejected'} (studies/data/iav/pairs.jsonl)",
                            jsonl=("prompt", "chosen", "rejected"))
    rank: int = help_field(8, "LoRA rank r of the autoregressive reward model")
    lora_alpha: float = help_field(16.0, "LoRA alpha (the update is scaled by lora_alpha / r)")
    targets: list[str] = help_field(DEFAULT_TARGETS, "site patterns of the Linear modules the LoRA adapts")
    beta: float = help_field(0.1, "temperature of -log sigmoid(beta * (sum log pi_r(y_w|x) - sum log pi_r(y_l|x)))")
    steps: int = help_field(200, "optimisation steps")
    pairs_per_step: int = help_field(4, "preference pairs per step (both answers of each)")
    lr: float = help_field(5e-4, "AdamW learning rate")
    max_tokens: int = help_field(256, "truncate prompt + answer to this many tokens")

    def __post_init__(self) -> None:
        for key in ("rank", "steps", "pairs_per_step", "max_tokens"):
            if getattr(self, key) < 1:
                raise ValueError(f"key '{key}' must be >= 1 (got {getattr(self, key)})")
        for key in ("lora_alpha", "beta", "lr"):
            if not math.isfinite(getattr(self, key)) or getattr(self, key) <= 0:
                raise ValueError(f"key '{key}' must be a finite number > 0 (got {getattr(self, key)})")
        if not self.targets:
            raise ValueError("key 'targets' needs at least one site pattern")
