"""Core's own plugin: the built-in metrics, the vector inspector, the model zoo, the ``base``
(unsteered) reference method and the ``vector`` method (a llama.cpp control vector).

Registered through the ``steerlab`` entry-point group like any third-party plugin (pytest's
habit: core features are plugins too, so the plugin interface is never missing anything).
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from typing import TYPE_CHECKING, Any, Callable

import torch

from steerlab.artifact import Artifact
from steerlab.controls import ControlSpace, Fixed
from steerlab.hookspecs import hookimpl
from steerlab.inspect.vector import VectorInspector
from steerlab.method import BaseMethod
from steerlab.metrics.builtin import FluencyMetric, KLMetric, LengthMetric, RelevanceMetric, SimilarityMetric
from steerlab.metrics.judge import JudgeMetric
from steerlab.metrics.likelihood import LikelihoodJudgeMetric
from steerlab.metrics.llm_judge import LLMJudgeMetric
from steerlab.model.backends import HFGenerate
from steerlab.model.static_decode import StaticDecode
from steerlab.model.zoo import builtin_models
from steerlab.vectors import VectorMethod

if TYPE_CHECKING:
    from steerlab.lab import Lab


class BaseModelMethod(BaseMethod):
    """The unsteered model: the reference every other method is compared with."""

    name = "base"
    description = "the unsteered model (reference)"
    trains = False

    def control_space(self, config: Any) -> ControlSpace:
        return Fixed()

    def train(self, lab: Lab, config: Any) -> Artifact:
        return Artifact({})

    def steer(self, lab: Lab, artifact: Artifact, controls: torch.Tensor) -> AbstractContextManager[None]:
        return nullcontext()


@hookimpl
def steerlab_methods(register: Callable[[Any], None]) -> None:
    register(BaseModelMethod())
    register(VectorMethod())


@hookimpl
def steerlab_metrics(register: Callable[[Any], None]) -> None:
    for metric in (LengthMetric(), FluencyMetric(), KLMetric(), SimilarityMetric(), RelevanceMetric(), JudgeMetric(), LikelihoodJudgeMetric(),
                   LLMJudgeMetric()):
        register(metric)


@hookimpl
def steerlab_inspectors(register: Callable[[Any], None]) -> None:
    register(VectorInspector())


@hookimpl
def steerlab_datasets(register: Callable[[Any], None]) -> None:
    from steerlab.analysis.scale_data import build_scales
    from steerlab.data.contrast import build_compare
    from steerlab.data.files import DatasetSpec

    register(DatasetSpec("compare", build_compare, "contrastive pairs per concept from a style data set (--from), for every method family"))
    register(DatasetSpec("compare-scales", build_scales, "fixed 0-2 instruction and fluency scales for [compare], calibrated on labelled "
                                                         "text made from a style data set's answers (--from; needs --model)"))


@hookimpl
def steerlab_backends(register: Callable[[Any], None]) -> None:
    register(HFGenerate())
    register(StaticDecode())
    register(StaticDecode(graphs=True))  # checked on an H200 (2026-12-04): generate's tokens, 4-7x its speed; docs/scaling.md


@hookimpl
def steerlab_models(register: Callable[[Any], None]) -> None:
    for spec in builtin_models():
        register(spec)
