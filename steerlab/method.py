"""The one contract every steering method implements: train -> steer -> evaluate.

* ``control_space(config)``: what the method's control is (``Scalar("strength")``,
  ``Scalar("alpha", minimum=0)``, ``Simplex(dimensions)``...). Validation, grids, ``--quick``,
  labels and parsing all come from it.
* ``train(lab, config) -> Artifact``: may be a no-op (prompting) or minutes of optimisation
  (Panacea). The runner stamps the artifact's header and saves it; a resumed run loads it.
* ``steer(lab, artifact, controls)``: a context manager; inside it the lab's model is steered
  with one control per batch row: ``controls`` is the control space's tensor, ``(rows,)`` or
  ``(rows, width)``, and a single row broadcasts to the whole batch. Weight-, activation- and
  logit-space methods attach through ``lab.engine``; everything is undone on exit.
* ``system_prompts(artifact, controls)``: a prompt-space method's system prompt per row
  (default: none). Core formats prompts with it; nothing is kept on the model.
* ``evaluate(lab, entry, artifact)``: core's batched sweep by default (every control x every
  eval prompt through the same generate calls); a method overrides it only when it must.
* ``analyze``: optional extra numbers, figures and report text (a layer sweep, an SVD view).
* ``check(lab, config)``: optional checks against the loaded model (sites exist, budgets fit),
  run before the run folder is created.
* ``sweep_keys``: config keys that shape only the sweep (a default grid's step), not what
  ``train`` makes; an artifact trained in another run may differ in them and still be reused
  (``reuse_from``, steerlab.run.reuse). Default: none, so every key must match.
* ``trains``: whether ``train`` draws from the seed (default true). A study with several
  ``seeds`` trains and sweeps such a method once per seed; one that does not train (the base
  model, prompting) runs once under greedy decoding, since its answers cannot change with it.

Subclass ``BaseMethod`` for the defaults of the optional members.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import torch

from steerlab.artifact import Artifact
from steerlab.config import NoConfig
from steerlab.controls import ControlSpace, Scalar
from steerlab.results import Section, SweepResult
from steerlab.sweep import sweep

if TYPE_CHECKING:
    from steerlab.lab import Lab
    from steerlab.study.schema import MethodEntry


@runtime_checkable
class SteeringMethod(Protocol):
    name: str
    description: str
    Config: type
    trains: bool

    def control_space(self, config: Any) -> ControlSpace: ...

    def train(self, lab: Lab, config: Any) -> Artifact: ...

    def steer(self, lab: Lab, artifact: Artifact, controls: torch.Tensor) -> AbstractContextManager[None]: ...

    def system_prompts(self, artifact: Artifact, controls: torch.Tensor) -> list[str | None]: ...

    def evaluate(self, lab: Lab, entry: MethodEntry, artifact: Artifact) -> SweepResult: ...

    def analyze(self, lab: Lab, entry: MethodEntry, artifact: Artifact, result: SweepResult, folder: Path) -> Section: ...

    def check(self, lab: Lab, config: Any) -> None: ...


class BaseMethod:
    """Defaults for the optional parts of the contract."""

    name: str = ""
    description: str = ""
    Config: type = NoConfig
    trains: bool = True
    sweep_keys: frozenset[str] = frozenset()

    def control_space(self, config: Any) -> ControlSpace:
        return Scalar("strength")

    def system_prompts(self, artifact: Artifact, controls: torch.Tensor) -> list[str | None]:
        return [None] * len(controls)

    def evaluate(self, lab: Lab, entry: MethodEntry, artifact: Artifact) -> SweepResult:
        return sweep(lab, self, entry, artifact)

    def analyze(self, lab: Lab, entry: MethodEntry, artifact: Artifact, result: SweepResult, folder: Path) -> Section:
        return Section()

    def check(self, lab: Lab, config: Any) -> None:
        return None
