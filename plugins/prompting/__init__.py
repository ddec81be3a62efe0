"""prompting: the plain baseline that asks for the lambda mix of styles in a system prompt."""

from __future__ import annotations

import json
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from steerlab.artifact import Artifact
from steerlab.config import as_dict, help_field, path_field
from steerlab.errors import ConfigError
from steerlab.hookspecs import hookimpl
from steerlab.method import Control, PreferenceMethod
from steerlab.models import describe

if TYPE_CHECKING:
    from steerlab.lab import Lab


@dataclass(frozen=True)
class PromptingConfig:
    styles: str = path_field(help="JSON: {style: {'describe': ...}} (studies/data/chat3d/styles.json)")
    dimensions: list[str] = help_field(["helpful", "humorous", "philosophical"], "styles, in lambda order")
    grid_step: float = help_field(0.25, "simplex grid step of the default sweep")


def mix_prompt(descriptions: list[str], preference: list[float]) -> str:
    """A system prompt asking for the preference mix, styles sorted by weight."""
    parts = sorted(((w, d) for w, d in zip(preference, descriptions) if w > 0), reverse=True)
    if len(parts) == 1:
        return f"You are an assistant. Answer in this style: {parts[0][1]}."
    mix = "; ".join(f"{round(100 * w)}% {d}" for w, d in parts)
    return f"You are an assistant. Answer in a blend of styles, weighted as follows: {mix}."


class PromptingMethod(PreferenceMethod):
    """No training: the preference is written into the system prompt."""

    name = "prompting"
    description = "baseline: a system prompt asking for the lambda mix of styles"
    Config = PromptingConfig


    def train(self, lab: Lab, config: PromptingConfig) -> Artifact:
        styles = json.loads(Path(config.styles).read_text())
        missing = [d for d in config.dimensions if d not in styles or "describe" not in styles[d]]
        if missing:
            raise ConfigError(f"{config.styles}: no 'describe' for style {missing[0]!r}")
        descriptions = [styles[d]["describe"] for d in config.dimensions]
        return Artifact({}, {"method": self.name, "model": describe(lab.model), "sites": [],
                             "dimensions": config.dimensions, "descriptions": descriptions, "config": as_dict(config)})

    def steer(self, lab: Lab, artifact: Artifact, control: Control) -> AbstractContextManager[None]:
        return lab.system_prompt(mix_prompt(artifact.meta["descriptions"], control))


@hookimpl
def steerlab_methods(register: Callable[[Any], None]) -> None:
    register(PromptingMethod())
