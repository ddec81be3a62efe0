"""The prompting baselines of the IAV studies: ask for the target in the system prompt.

They have no strength: every row whose alpha is > 0 gets the same instruction, rows at 0 get
none. Their default sweep is therefore just [0, 1]; a longer one would answer the same prompts
several times over. ``instructed`` (the styles study) words its request apart from the judge's
system prompt, so the likelihood judge does not score the baseline by its own instruction;
``courteous`` (the first study) gives the instruction the chosen answers were written under.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from typing import Any

import torch

from steerlab.api import Artifact, BaseMethod, ControlSpace, Lab, Scalar

from steerlab_plugins.iav.config import CourteousConfig, InstructedConfig


class InstructedMethod(BaseMethod):
    name = "instructed"
    description = "baseline: an instruction for the target style (worded apart from the judge's) for rows with alpha > 0"
    Config: Any = InstructedConfig
    trains = False  # a system prompt: nothing to draw from a seed

    def control_space(self, config: Any) -> ControlSpace:
        return Scalar("alpha", grid=[0.0, 1.0], minimum=0.0)

    def train(self, lab: Lab, config: Any) -> Artifact:
        return Artifact({}, {"instruction": config.instruction})

    def system_prompts(self, artifact: Artifact, controls: torch.Tensor) -> list[str | None]:
        return [artifact.meta["instruction"] if alpha > 0 else None for alpha in controls.reshape(-1).tolist()]

    def steer(self, lab: Lab, artifact: Artifact, controls: torch.Tensor) -> AbstractContextManager[None]:
        return nullcontext()  # the steering is all in the prompt


class CourteousMethod(InstructedMethod):
    name = "courteous"
    description = "baseline: a helpful, honest and courteous system prompt for rows with alpha > 0"
    Config = CourteousConfig
