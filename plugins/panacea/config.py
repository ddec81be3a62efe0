"""Settings of the Panacea method, as read from ``[methods.panacea]``: the shared style-training
settings (``StyleTraining``: data, dimensions, targets, steps, ...) and Panacea's own."""

from __future__ import annotations

from dataclasses import dataclass

from steerlab.api import StyleTraining, help_field


@dataclass(frozen=True)
class PanaceaConfig(StyleTraining):
    rank: int = help_field(4, "k: shared (preference-independent) singular values per layer")
    pref_rank: int = help_field(1, "r_p: singular values each lambda_i scales per layer (the paper: 1)")
    sigma_init: float = help_field(1.0, "initial value of the shared singular values")
    scale_init: float = help_field(1.0, "initial value of each layer's preference scale s_l")
    svd_lr: float = help_field(1.0, "learning-rate multiplier for the singular values and s_l (U and V get lr)")
    normalise: bool = help_field(False, "divide each dimension's loss by a running mean of it, so no style's scale dominates")
    aggregation: str = help_field("ls", "ls (linear scalarisation) or tche (weighted Tchebycheff)")
    ideal: float = help_field(0.0, "Tchebycheff ideal point z (a lower bound of every loss)")
    concentration: float = help_field(1.0, "Dirichlet concentration for sampling lambda (1 = uniform, < 1 nearer the corners)")
    seed: int = help_field(0, "initialisation and sampling seed (added to the study seed)")

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.aggregation not in ("ls", "tche"):
            raise ValueError(f"key 'aggregation' must be 'ls' or 'tche' (got {self.aggregation!r})")
        for key in ("rank", "pref_rank"):
            if getattr(self, key) < 1:
                raise ValueError(f"key '{key}' must be >= 1 (got {getattr(self, key)})")
        for key in ("svd_lr", "concentration"):
            if not getattr(self, key) > 0:  # NaN fails too
                raise ValueError(f"key '{key}' must be > 0 (got {getattr(self, key)})")
