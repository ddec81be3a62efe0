"""The inspector contract: a named view of a trained artifact (``steerlab inspect NAME RUN_DIR``).

Inspectors are plugins, found like methods (``steerlab_inspectors``). Each declares which
artifacts it applies to (``applies_to``: ``vector`` takes any artifact that declares a
residual-stream vector; ``svd`` takes Panacea adapters) and typed ``Options``: a frozen
dataclass whose fields become the command's flags (``top: int = 15`` -> ``--top 15``). A field
named ``control`` is read by the method's own control space. ``inspect`` writes its files under
the run's ``inspect/`` folder and returns a ``Section`` (text and figures) that the CLI prints.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from steerlab.artifact import Artifact
from steerlab.controls import Control
from steerlab.errors import ConfigError
from steerlab.lab import Lab
from steerlab.results import Section
from steerlab.study.schema import MethodEntry


@dataclass
class OpenRun:
    """A finished run's method entry, reopened: what an inspector (or ``generate``) works on."""

    lab: Lab
    entry: MethodEntry
    method: Any
    artifact: Artifact

    def control(self, value: Any, flag: str = "--control") -> Control:
        """A control read by this method's control space: text as on the command line (``"0.4"``,
        ``"humorous=1"``), anything else (a number, a list, a dict of weights) checked as it is."""
        return read_control(self.entry, value, flag)


def read_control(entry: MethodEntry, value: Any, flag: str = "--control") -> Control:
    """``value`` as ``entry``'s canonical control; a bad one is a ConfigError naming the method
    and what its control space expected."""
    try:
        return entry.space.parse(value) if isinstance(value, str) else entry.space.check(value)
    except ValueError as exc:
        raise ConfigError(f"{flag} {value!r} for method '{entry.name}' ({entry.method}): {exc}") from None


@runtime_checkable
class Inspector(Protocol):
    name: str
    description: str
    Options: type

    def applies_to(self, entry: MethodEntry, artifact: Artifact) -> bool: ...

    def inspect(self, run: OpenRun, options: Any) -> Section: ...


