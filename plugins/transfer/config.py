"""Settings of the transfer method, as read from a ``[methods.NAME]`` table whose ``model`` is the
TARGET model (the one steered); ``source_model`` is where the vector is extracted."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from steerlab.api import DIRECTIONS, help_field, path_field

from steerlab_plugins.transfer.pairing import POOLINGS

ADAPTERS = ("ridge", "procrustes", "affine", "direct", "random")


@dataclass(frozen=True)
class TransferConfig:
    source_model: str = dataclasses.field(metadata={"help": "model the vector is extracted from (zoo name, path or hub id)"})
    pairs: str = path_field(help="JSONL of contrastive pairs {'positive': ..., 'negative': ...} (the vector's data)",
                            jsonl=("positive", "negative"))
    fit_texts: str = path_field(help="JSONL {'text': ...} read in both models to fit the adapter (not the pairs, "
                                "not the eval prompts)", jsonl=("text",))
    adapter: str = help_field("ridge", "ridge, procrustes, affine, direct (coordinate identity) or random (control)")
    source_layer: int = help_field(15, "source block whose resid_post the vector is read at")
    target_layer: int = help_field(-1, "target block steered; -1: matched by relative depth, "
                                   "round(source_layer * (n_target - 1) / (n_source - 1)), halves up")
    source_layer_from: list[str] = help_field([], "actdiff entries on the source model, one per block: source_layer is the block "
                                              "of the one with the best dev success (they run first; overrides source_layer)")
    target_layer_from: list[str] = help_field([], "actdiff entries on the target model, one per block: target_layer is the block "
                                              "of the one with the best dev success (they run first; overrides target_layer)")
    test_chosen_only: bool = help_field(False, "stage the sweep: every control on the dev prompts, then on the test prompts only 0 "
                                        "and ±c for the strength c with the best dev success of validate_metric")
    pooling: str = help_field("words", "adapter rows: words (shared word ends + final prompt token), last, or mean")
    holdout_every: int = help_field(5, "every k-th fit text is held out for the fit score (k >= 2)")
    fit_limit: int = help_field(0, "use only the first N fit texts (0: all)")
    pairs_limit: int = help_field(0, "use only the first N pairs (0: all)")
    components: int = help_field(0, "procrustes: principal components per side (0: min(d_source, d_target, n - 1))")
    positive_label: str = help_field("positive", "what the vector points towards (for reports)")
    negative_label: str = help_field("negative", "what the vector points away from")
    validate_metric: str = help_field("words", "score whose per-prompt movement defines success (empty: skip)")
    validate_direction: str = help_field("decrease", "how a positive control should move validate_metric")

    def __post_init__(self) -> None:
        if not self.source_model:
            raise ValueError("key 'source_model' must name a model")
        if self.adapter not in ADAPTERS:
            raise ValueError(f"key 'adapter' must be one of {ADAPTERS} (got {self.adapter!r})")
        if self.pooling not in POOLINGS:
            raise ValueError(f"key 'pooling' must be one of {POOLINGS} (got {self.pooling!r})")
        if self.source_layer < 0 or self.target_layer < -1:
            raise ValueError("key 'source_layer' must be >= 0 and 'target_layer' >= 0 (or -1: matched)")
        if self.holdout_every < 2:
            raise ValueError(f"key 'holdout_every' must be >= 2 (got {self.holdout_every})")
        if min(self.fit_limit, self.pairs_limit, self.components) < 0:
            raise ValueError("keys 'fit_limit', 'pairs_limit' and 'components' must be >= 0")
        for key in ("source_layer_from", "target_layer_from"):
            names = getattr(self, key)
            if not all(isinstance(n, str) and n for n in names) or len(set(names)) != len(names):
                raise ValueError(f"key '{key}' must list distinct entry names (got {names!r})")
        if self.test_chosen_only and not self.validate_metric:
            raise ValueError("key 'test_chosen_only' needs 'validate_metric' (the score whose dev success chooses the strength)")
        if self.validate_direction not in DIRECTIONS:
            raise ValueError(f"key 'validate_direction' must be one of {DIRECTIONS} (got {self.validate_direction!r})")


def matched_layer(layer: int, n_source: int, n_target: int) -> int:
    """The target block at the same relative depth: first to first, last to last, halves up."""
    if n_source <= 1:
        return 0
    return int(layer * (n_target - 1) / (n_source - 1) + 0.5)
