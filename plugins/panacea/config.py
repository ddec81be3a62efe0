"""Settings of the Panacea method, as read from ``[methods.panacea]``."""

from __future__ import annotations

from dataclasses import dataclass

from steerlab.api import help_field, path_field

DEFAULT_TARGETS = ["blocks.*.attn.*_proj", "blocks.*.mlp.*_proj"]


@dataclass(frozen=True)
class PanaceaConfig:
    data: str = path_field(help="SFT JSONL: {'prompt', 'style', 'response'} per line", jsonl=("prompt", "style", "response"))
    dimensions: list[str] = help_field(["helpful", "humorous", "philosophical"], "preference dimensions = styles in the data, in lambda order")
    rank: int = help_field(4, "k: shared (preference-independent) singular values per layer")
    pref_rank: int = help_field(1, "r_p: singular values each lambda_i scales per layer (the paper: 1)")
    sigma_init: float = help_field(1.0, "initial value of the shared singular values")
    scale_init: float = help_field(1.0, "initial value of each layer's preference scale s_l")
    svd_lr: float = help_field(1.0, "learning-rate multiplier for the singular values and s_l (U and V get lr)")
    normalise: bool = help_field(False, "divide each dimension's loss by a running mean of it, so no style's scale dominates")
    holdout: float = help_field(0.0, "share of prompts held out of training to measure held-out loss per style (0: none)")
    eval_every: int = help_field(0, "measure held-out loss every N steps and keep the best parameters (0: never)")
    targets: list[str] = help_field(DEFAULT_TARGETS, "site patterns of the Linear modules to adapt")
    aggregation: str = help_field("ls", "ls (linear scalarisation) or tche (weighted Tchebycheff)")
    ideal: float = help_field(0.0, "Tchebycheff ideal point z (a lower bound of every loss)")
    steps: int = help_field(120, "optimisation steps")
    per_dimension: int = help_field(2, "examples of each dimension in every step")
    lr: float = help_field(2e-3, "AdamW learning rate")
    max_tokens: int = help_field(192, "truncate prompt + response to this many tokens")
    concentration: float = help_field(1.0, "Dirichlet concentration for sampling lambda (1 = uniform)")
    grid_step: float = help_field(0.25, "simplex grid step for the default evaluation sweep (0.25: 15 points)")
    seed: int = help_field(0, "initialisation and sampling seed (added to the study seed)")

    def __post_init__(self) -> None:
        if len(self.dimensions) < 2 or len(set(self.dimensions)) != len(self.dimensions):
            raise ValueError("key 'dimensions' needs at least two distinct names")
        if self.aggregation not in ("ls", "tche"):
            raise ValueError(f"key 'aggregation' must be 'ls' or 'tche' (got {self.aggregation!r})")
        for key in ("rank", "pref_rank", "steps", "per_dimension", "max_tokens"):
            if getattr(self, key) < 1:
                raise ValueError(f"key '{key}' must be >= 1")
        if self.lr <= 0 or self.concentration <= 0 or self.svd_lr <= 0:
            raise ValueError("keys 'lr', 'svd_lr' and 'concentration' must be > 0")
        if not 0 <= self.holdout < 0.5 or self.eval_every < 0 or (self.eval_every > 0) != (self.holdout > 0):
            raise ValueError("keys 'holdout' (0 to 0.5) and 'eval_every' (>= 1) go together: both set or both 0")
