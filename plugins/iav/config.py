"""Settings of the IAV method (``[methods.iav]``) and of its prompt baseline (``[methods.courteous]``)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from steerlab.api import help_field, path_field

from steerlab_plugins.iav.styles import COURTEOUS_SYSTEM

ALPHA_GRID = [0.0, 0.5, 1.0, 1.5, 2.0]  # 0 base, 0.5 light, 1 standard, 1.5 strong, 2 max
PAIRS_HELP = "JSONL of preference pairs {'prompt', 'chosen', 'rejected'} (studies/data/iav_styles/pairs.jsonl)"
# The prompting baseline of the styles study. Deliberately not the wording of the judge's system prompt
# (studies/data/iav_styles/judge_styles.json): the likelihood judge scores p(answer | its system prompt), so a
# baseline given that very prompt would be judged by its own instruction.
INSTRUCTED = ("Please reply thoughtfully, as a philosopher might: reflect on what the question reveals about life, meaning "
              "and the way people see the world, and wonder aloud about the bigger ideas behind it.")


@dataclass(frozen=True)
class IAVConfig:
    pairs: str = path_field(help=PAIRS_HELP, jsonl=("prompt", "chosen", "rejected"))
    heads: int = help_field(8, "intervention heads on the final hidden state")
    head_width: int = help_field(256, "width each head passes through (d_model -> width -> d_model)")
    beta: float = help_field(0.1, "DPO temperature on the a_t log-ratio margin")
    lambda_kl: float = help_field(0.1, "weight of KL(steered || base) on the pairs' answer tokens")
    lambda_l2: float = help_field(0.01, "weight of the mean squared logit shift a_t^2")
    steps: int = help_field(200, "optimisation steps")
    pairs_per_step: int = help_field(4, "preference pairs per step (both answers of each)")
    lr: float = help_field(1e-4, "AdamW learning rate (1e-3 overshoots: Adam's first steps move every element of the zero-initialised Out by ~lr at once, a logit shift of ~20 on SmolLM2)")
    max_tokens: int = help_field(256, "truncate prompt + answer to this many tokens")
    seed: int = help_field(0, "initialisation and sampling seed (added to the study seed)")
    heldout_fraction: float = help_field(0.0, "share of the pairs held out (0: none; by a stable hash of the prompt: GenARM with the same value "
                                              "holds out the same pairs); their pair accuracy is measured every eval_every steps")
    eval_every: int = help_field(10, "steps between held-out pair-accuracy checks")

    def __post_init__(self) -> None:
        if not 0 <= self.heldout_fraction < 1:
            raise ValueError(f"key 'heldout_fraction' must be in [0, 1) (got {self.heldout_fraction})")
        for key in ("heads", "head_width", "steps", "pairs_per_step", "max_tokens", "eval_every"):
            if getattr(self, key) < 1:
                raise ValueError(f"key '{key}' must be >= 1 (got {getattr(self, key)})")
        for key in ("beta", "lr"):
            if not math.isfinite(getattr(self, key)) or getattr(self, key) <= 0:
                raise ValueError(f"key '{key}' must be a finite number > 0 (got {getattr(self, key)})")
        for key in ("lambda_kl", "lambda_l2"):
            if not math.isfinite(getattr(self, key)) or getattr(self, key) < 0:
                raise ValueError(f"key '{key}' must be a finite number >= 0 (got {getattr(self, key)})")


@dataclass(frozen=True)
class CourteousConfig:
    instruction: str = help_field(COURTEOUS_SYSTEM, "system prompt given to every row whose alpha is > 0")

    def __post_init__(self) -> None:
        if not self.instruction.strip():
            raise ValueError("key 'instruction' must not be empty")


@dataclass(frozen=True)
class InstructedConfig:
    instruction: str = help_field(INSTRUCTED, "system prompt given to every row whose alpha is > 0 (word it apart from the judge's)")

    def __post_init__(self) -> None:
        if not self.instruction.strip():
            raise ValueError("key 'instruction' must not be empty")
