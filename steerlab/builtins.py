"""Core's own plugin: the built-in metrics and the ``base`` (unsteered) reference method.

Registered through the ``steerlab`` entry-point group like any third-party plugin.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from typing import TYPE_CHECKING, Any, Callable

from steerlab.artifact import Artifact
from steerlab.hookspecs import hookimpl
from steerlab.method import BaseMethod, Control
from steerlab.metrics import builtin as m
from steerlab.models import describe

if TYPE_CHECKING:
    from steerlab.lab import Lab


class BaseModelMethod(BaseMethod):
    """The unsteered model: the reference every other method is compared with."""

    name = "base"
    description = "the unsteered model (reference)"
    control_label = "none"

    def train(self, lab: Lab, config: Any) -> Artifact:
        return Artifact({}, {"method": self.name, "model": describe(lab.model), "sites": []})

    def steer(self, lab: Lab, artifact: Artifact, control: Control) -> AbstractContextManager[None]:
        return nullcontext()


@hookimpl
def steerlab_methods(register: Callable[[Any], None]) -> None:
    register(BaseModelMethod())


@hookimpl
def steerlab_metrics(register: Callable[[Any], None]) -> None:
    for metric in (m.LengthMetric(), m.FluencyMetric(), m.KLMetric(), m.SimilarityMetric(), m.JudgeMetric()):
        register(metric)
