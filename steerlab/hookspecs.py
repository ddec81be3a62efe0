"""Every hook a steerlab plugin can implement, in one place.

A plugin is any module or object with functions decorated by ``hookimpl``. Each hook receives a
``register`` callback and may call it any number of times (the llm/datasette habit: register
callbacks, not return values). Hooks are called with keyword arguments only. The registry
rejects a name registered twice, naming both providers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

import pluggy

if TYPE_CHECKING:  # imported for annotations only; avoids import cycles at runtime
    from steerlab.data.files import DatasetSpec
    from steerlab.inspect.base import Inspector
    from steerlab.model.backends import GenerationBackend
    from steerlab.method import SteeringMethod
    from steerlab.metrics.base import Metric
    from steerlab.model.zoo import ModelSpec
    from steerlab.results import StudyReport

PROJECT = "steerlab"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def steerlab_methods(register: Callable[[SteeringMethod], None]) -> None:
    """Register steering methods (objects following ``steerlab.method.SteeringMethod``)."""


@hookspec
def steerlab_metrics(register: Callable[[Metric], None]) -> None:
    """Register metrics that score generated answers, with settings and a report section (``steerlab.metrics.base.Metric``)."""


@hookspec
def steerlab_inspectors(register: Callable[[Inspector], None]) -> None:
    """Register views of a trained artifact for ``steerlab inspect NAME RUN_DIR`` (``steerlab.inspect.base.Inspector``)."""


@hookspec
def steerlab_reports(register: Callable[[StudyReport], None]) -> None:
    """Register study-level reports a study asks for with ``[study] reports`` (``steerlab.results.StudyReport``)."""


@hookspec
def steerlab_backends(register: Callable[[GenerationBackend], None]) -> None:
    """Register generation backends a study can choose with ``[generation] backend`` (``steerlab.model.backends.GenerationBackend``)."""


@hookspec
def steerlab_datasets(register: Callable[[DatasetSpec], None]) -> None:
    """Register dataset builders a study or ``steerlab data build`` can run by name."""


@hookspec
def steerlab_models(register: Callable[[ModelSpec], None]) -> None:
    """Register models by short name (``steerlab.models.ModelSpec``)."""
