"""prompting: the plain baseline that asks for the lambda mix of styles in a system prompt."""

from __future__ import annotations

import json
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch

from steerlab.api import Artifact, BaseMethod, ConfigError, ControlSpace, Lab, Simplex, help_field, hookimpl, path_field


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


def read_descriptions(path: Path, dimensions: list[str]) -> list[str]:
    """Each dimension's ``describe`` text from the styles JSON; ConfigError naming file and key."""
    try:
        styles = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{path}: not a readable JSON file ({exc})") from None
    missing = [d for d in dimensions if not isinstance(styles, dict) or not isinstance(styles.get(d), dict)
               or not isinstance(styles[d].get("describe"), str)]
    if missing:
        raise ConfigError(f"{path}: no 'describe' text for style {missing[0]!r}")
    return [styles[d]["describe"] for d in dimensions]


class PromptingMethod(BaseMethod):
    """No training: the preference is written into the system prompt, one per batch row."""

    name = "prompting"
    description = "baseline: a system prompt asking for the lambda mix of styles"
    Config = PromptingConfig
    trains = False  # a system prompt: nothing to draw from a seed

    def control_space(self, config: PromptingConfig) -> ControlSpace:
        return Simplex(config.dimensions, config.grid_step)

    def check(self, lab: Lab, config: PromptingConfig) -> None:
        read_descriptions(Path(config.styles), config.dimensions)

    def train(self, lab: Lab, config: PromptingConfig) -> Artifact:
        return Artifact({}, {"dimensions": config.dimensions, "descriptions": read_descriptions(Path(config.styles), config.dimensions)})

    def system_prompts(self, artifact: Artifact, controls: torch.Tensor) -> list[str | None]:
        return [mix_prompt(artifact.meta["descriptions"], row.tolist()) for row in controls.reshape(len(controls), -1)]

    def steer(self, lab: Lab, artifact: Artifact, controls: torch.Tensor) -> AbstractContextManager[None]:
        return nullcontext()  # the steering is all in the prompt


@hookimpl
def steerlab_methods(register: Callable[[Any], None]) -> None:
    register(PromptingMethod())
