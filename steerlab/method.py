"""The one contract every steering method implements: train -> steer -> evaluate.

* ``train(lab, config) -> Artifact``: may be a no-op (prompting) or minutes of optimisation
  (Panacea). The runner saves the artifact; a resumed run loads it instead of training again.
* ``steer(lab, artifact, control)``: a context manager; inside it, the lab's model is steered
  at ``control`` (a coefficient, an alpha, a preference vector...). It must undo everything on
  exit. Weight-space, activation-space and logit-space methods all fit: they attach through
  ``lab.engine``; a prompt-space method pushes a system prompt with ``lab.model.system_prompts``.
* ``evaluate``: core's sweep (generate at each control, score with the study's metrics) is the
  default; a method overrides it only when it must.
* ``analyze``: optional extra figures and numbers (a layer sweep, an SVD breakdown).

Subclass ``BaseMethod`` for the defaults; anything with the same attributes also works.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from steerlab.artifact import Artifact

if TYPE_CHECKING:
    from steerlab.lab import Lab

Control = Any  # a number, a list of numbers, or a JSON object: whatever the method's steer takes


@dataclass(frozen=True)
class NoConfig:
    """For methods without settings."""


@dataclass
class Analysis:
    """What ``analyze`` adds to a method's results: numbers, figures and report text."""

    summary: dict[str, float] = field(default_factory=dict)
    figures: list[tuple[str, str]] = field(default_factory=list)  # (path relative to run dir, caption)
    markdown: str = ""
    data: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class SteeringMethod(Protocol):
    name: str
    description: str
    Config: type
    control_label: str

    def train(self, lab: Lab, config: Any) -> Artifact: ...

    def steer(self, lab: Lab, artifact: Artifact, control: Control) -> AbstractContextManager[None]: ...

    def evaluate(self, lab: Lab, entry_name: str, artifact: Artifact, config: Any, controls: list[Control]) -> dict[str, Any]: ...

    def analyze(self, lab: Lab, entry_name: str, artifact: Artifact, config: Any, result: dict[str, Any], out_dir: Path) -> Analysis: ...

    def default_controls(self, config: Any) -> list[Control]: ...

    def check_control(self, control: Control, config: Any) -> Control: ...

    def quick_controls(self, controls: list[Control]) -> list[Control]: ...

    def inspectors(self) -> dict[str, Any]: ...


class BaseMethod:
    """Defaults for the optional parts of the contract."""

    name: str = ""
    description: str = ""
    Config: type = NoConfig
    control_label: str = "control"

    def evaluate(self, lab: Lab, entry_name: str, artifact: Artifact, config: Any, controls: list[Control]) -> dict[str, Any]:
        from steerlab.evaluate import sweep

        return sweep(lab, self, entry_name, artifact, controls)

    def analyze(self, lab: Lab, entry_name: str, artifact: Artifact, config: Any, result: dict[str, Any], out_dir: Path) -> Analysis:
        return Analysis()

    def default_controls(self, config: Any) -> list[Control]:
        return [0.0]

    def inspectors(self) -> dict[str, Any]:
        """Named views of a trained artifact for ``steerlab inspect NAME RUN_DIR``:
        ``{name: fn(loaded_run, options) -> printable text}``."""
        return {}

    def check_control(self, control: Control, config: Any) -> Control:
        if isinstance(control, bool) or not isinstance(control, (int, float)):
            raise ValueError(f"expected numbers, got {control!r}")
        return float(control)

    def quick_controls(self, controls: list[Control]) -> list[Control]:
        from steerlab.study import thin_controls

        return thin_controls(controls)

    def control_key(self, control: Control) -> str:
        """A short label for a control in tables and figure legends."""
        if isinstance(control, float):
            return f"{control:+g}"
        if isinstance(control, list):
            return "(" + ",".join(f"{c:g}" for c in control) + ")"
        return str(control)


class PreferenceMethod(BaseMethod):
    """Defaults for methods whose control is a preference vector lambda on the simplex.

    The config must have ``dimensions`` (lambda order) and ``grid_step`` (default sweep).
    ``--quick`` keeps the corners and the centre.
    """

    control_label = "lambda"

    def default_controls(self, config: Any) -> list[Control]:
        from steerlab.simplex import simplex_grid

        return simplex_grid(len(config.dimensions), config.grid_step)

    def check_control(self, control: Control, config: Any) -> Control:
        from steerlab.simplex import check_preference

        return check_preference(control, len(config.dimensions))

    def quick_controls(self, controls: list[Control]) -> list[Control]:
        from steerlab.simplex import corners_and_centre

        m = len(controls[0])
        corners = corners_and_centre(m)[:m]
        keep = [c for c in corners if any(_close(c, x) for x in controls)]
        return keep + corners_and_centre(m)[m:] if keep else controls[:3]

    def control_key(self, control: Control) -> str:
        return "(" + ",".join(f"{c:.2f}" for c in control) + ")"


def _close(a: list[float], b: list[float]) -> bool:
    return all(abs(x - y) < 1e-3 for x, y in zip(a, b))
