"""The metric contract and the sample a metric scores.

A metric turns samples (one steered answer each, with its prompt, control, token statistics and
the unsteered answer to the same prompt) into named numbers. Names returned are the keys that
appear in ``records[i].scores`` and in the summaries; one metric may return several.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from steerlab.generation import Generation
    from steerlab.lab import Lab


@dataclass
class Sample:
    prompt: str
    control: Any
    generation: Generation
    base: Generation  # the unsteered answer to the same prompt
    stats: dict[str, float] = field(default_factory=dict)  # e.g. kl, base_nll (from evaluate)

    @property
    def output(self) -> str:
        return self.generation.output


@runtime_checkable
class Metric(Protocol):
    name: str
    description: str
    needs_token_stats: tuple[str, ...]  # of 'base_nll', 'kl': what core must compute for score()

    def score(self, samples: list[Sample], lab: Lab) -> list[dict[str, float]]: ...
