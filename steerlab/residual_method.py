"""The shared half of the methods that steer by adding one residual-stream vector (actdiff, and
transfer's carried vector): the steer and evaluate parts of the contract, written once so the two
plugins cannot drift apart in how a control becomes an addition or how a sweep is staged."""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import TYPE_CHECKING

import torch

from steerlab.analysis.symmetric import dev_chosen_sweep
from steerlab.artifact import Artifact
from steerlab.method import BaseMethod
from steerlab.results import SweepResult

if TYPE_CHECKING:
    from steerlab.lab import Lab
    from steerlab.study.schema import MethodEntry


class ResidualVectorMethod(BaseMethod):
    """A method whose artifact's first ``ResidualVector`` is added times each row's control.

    Its config needs the keys ``dev_chosen_sweep`` reads (``test_chosen_only``,
    ``validate_metric``, ``validate_direction``): with ``test_chosen_only`` the sweep runs every
    control on the dev prompts and only the dev-chosen strength on the test prompts, so the
    strength that is reported is never picked on the prompts it is reported on."""

    def steer(self, lab: Lab, artifact: Artifact, controls: torch.Tensor) -> AbstractContextManager[None]:
        return lab.engine.add_vectors(artifact.vectors[:1], artifact.tensors, controls)

    def evaluate(self, lab: Lab, entry: MethodEntry, artifact: Artifact) -> SweepResult:
        """Core's sweep, staged on the dev prompts when ``test_chosen_only`` says so."""
        with dev_chosen_sweep(lab, entry.config):
            return super().evaluate(lab, entry, artifact)
