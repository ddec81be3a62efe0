"""The prompting baseline of the IAV study: ask for a courteous answer in the system prompt.

It has no strength: every row whose alpha is > 0 gets the same instruction (the one the chosen
answers of the data were written under), rows at 0 get none. Its default sweep is therefore
just [0, 1]; a longer one would answer the same prompts several times over.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext

import torch

from steerlab.api import Artifact, BaseMethod, ControlSpace, Lab, Scalar

from steerlab_plugins.iav.config import CourteousConfig


class CourteousMethod(BaseMethod):
    name = "courteous"
    description = "baseline: a helpful, honest and courteous system prompt for rows with alpha > 0"
    Config = CourteousConfig
    trains = False  # a system prompt: nothing to draw from a seed

    def control_space(self, config: CourteousConfig) -> ControlSpace:
        return Scalar("alpha", grid=[0.0, 1.0], minimum=0.0)

    def train(self, lab: Lab, config: CourteousConfig) -> Artifact:
        return Artifact({}, {"instruction": config.instruction})

    def system_prompts(self, artifact: Artifact, controls: torch.Tensor) -> list[str | None]:
        return [artifact.meta["instruction"] if alpha > 0 else None for alpha in controls.reshape(-1).tolist()]

    def steer(self, lab: Lab, artifact: Artifact, controls: torch.Tensor) -> AbstractContextManager[None]:
        return nullcontext()  # the steering is all in the prompt
