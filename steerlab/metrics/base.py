"""The metric contract, the sample a metric scores and the context it scores in.

A metric turns samples (one steered answer each, with its prompt, control, token statistics and
the unsteered answer to the same prompt) into named numbers. A metric is a plugin like a method:
it may have settings (its ``Config``, read from the study's ``[metrics.NAME]`` table), state kept
in the run folder (``ctx.folder``: the judge's coefficients) and a section of its own in the
report (``section``: the judge's held-out accuracy and confusion matrix). Core names no metric.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from steerlab.config import NoConfig
from steerlab.results import Section

if TYPE_CHECKING:
    from steerlab.model.generation import Generation
    from steerlab.lab import Lab

TOKEN_STATS = ("base_nll", "kl")  # what core can compute for a metric (``Metric.needs``)


@dataclass
class Sample:
    prompt: str
    control: Any  # JSON form
    label: str
    generation: Generation
    base: Generation  # the unsteered answer to the same prompt
    stats: dict[str, float] = field(default_factory=dict)  # base_nll, kl: what the metrics need

    @property
    def output(self) -> str:
        return self.generation.output


@dataclass
class MetricContext:
    """What a metric sees while it scores one run: the lab, its settings and its own folder."""

    lab: Lab
    config: Any
    folder: Path
    _memo: dict[str, Any] = field(default_factory=dict)

    def memo(self, key: str, build: Callable[[], Any]) -> Any:
        """Build a value once per run (a trained judge) and reuse it."""
        if key not in self._memo:
            self._memo[key] = build()
        return self._memo[key]


@runtime_checkable
class Metric(Protocol):
    name: str
    description: str
    Config: type
    needs: tuple[str, ...]  # of TOKEN_STATS: what core must compute for score()

    def outputs(self, config: Any) -> list[str]: ...

    def score(self, samples: list[Sample], ctx: MetricContext) -> list[dict[str, float]]: ...

    def section(self, ctx: MetricContext) -> Section | None:
        """The metric's own part of the report (a judge's accuracy and confusion), about the metric,
        not about the methods: computed once per run and kept in the run folder."""
        ...


class BaseMetric:
    """Defaults: no settings, no token statistics, no report section."""

    name: str = ""
    description: str = ""
    Config: type = NoConfig
    needs: tuple[str, ...] = ()

    def outputs(self, config: Any) -> list[str]:
        return []

    def section(self, ctx: MetricContext) -> Section | None:
        return None


def registered(lab: Lab, name: str) -> Metric:
    """The metric study table ``name`` runs (``metric = ...`` names another registered one)."""
    entry = next((m for m in lab.study.metrics if m.name == name), None) if lab.study else None
    return lab.registry.metrics[entry.registered if entry else name]


def context(lab: Lab, name: str) -> MetricContext:
    """The context metric ``name`` scores in for this lab's run: its settings from the study,
    its own folder, and a memo that lives as long as the lab."""
    def build() -> MetricContext:
        entry = next((m for m in lab.study.metrics if m.name == name), None) if lab.study else None
        config = entry.config if entry else registered(lab, name).Config()
        return MetricContext(lab, config, lab.layout.metric(name))

    return lab.resource(f"metric:{name}", build)
