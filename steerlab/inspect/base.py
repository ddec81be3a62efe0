"""The inspector contract: a named view of a trained artifact (``steerlab inspect NAME RUN_DIR``).

Inspectors are plugins, found like methods (``steerlab_inspectors``). Each declares which
artifacts it applies to (``applies_to``: ``vector`` takes any artifact that declares a
residual-stream vector; ``svd`` takes Panacea adapters) and typed ``Options``: a frozen
dataclass whose fields become the command's flags (``top: int = 15`` -> ``--top 15``). A field
named ``control`` is read by the method's own control space. ``inspect`` writes its files under
the run's ``inspect/`` folder and returns a ``Section`` (text and figures) that the CLI prints.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from steerlab.artifact import Artifact
from steerlab.run.results import Section

if TYPE_CHECKING:
    from steerlab.run.tools import OpenRun
    from steerlab.study.schema import MethodEntry


@runtime_checkable
class Inspector(Protocol):
    name: str
    description: str
    Options: type

    def applies_to(self, entry: MethodEntry, artifact: Artifact) -> bool: ...

    def inspect(self, run: OpenRun, options: Any) -> Section: ...


INSPECTOR_MEMBERS = ("name", "description", "Options", "applies_to", "inspect")
