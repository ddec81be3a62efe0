"""The registry of everything the plugins provide, and what each kind of item must have.

Kept apart from plugin discovery (``steerlab.plugin``) and free of imports into the rest of
steerlab, so every layer can hold a registry without an import cycle. ``MEMBERS`` lists each
protocol's members (``steerlab.method.SteeringMethod``, ``steerlab.metrics.base.Metric``,
``steerlab.inspect.base.Inspector``, ``steerlab.model.backends.GenerationBackend``, the
``ModelSpec`` and ``DatasetSpec`` records); ``docs/plugin-api.md`` is checked against it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from steerlab.errors import ConfigError

KINDS = ("methods", "metrics", "inspectors", "reports", "backends", "datasets", "models")
METHOD_REQUIRED = ("name", "description", "Config", "control_space", "train", "steer")  # the rest: BaseMethod's defaults
MEMBERS: dict[str, tuple[str, ...]] = {
    "methods": METHOD_REQUIRED + ("system_prompts", "evaluate", "analyze", "check"),
    "metrics": ("name", "description", "Config", "needs", "outputs", "score", "section"),
    "inspectors": ("name", "description", "Options", "applies_to", "inspect"),
    "reports": ("name", "description", "section"),
    "backends": ("name", "description", "generate"),
    "datasets": ("name", "build", "description"),
    "models": ("name", "load", "description"),
}


@dataclass(frozen=True)
class BrokenPlugin:
    """An installed entry point of group ``steerlab`` whose module cannot be imported (its folder
    deleted after an editable install, a missing dependency): left out of the registry, named in
    ``steerlab plugins`` and in the error of any lookup that may have needed it."""

    name: str  # the entry point's name
    value: str  # what it points at, ``module`` or ``module:attribute``
    distribution: str  # the installed distribution that declares it
    error: str  # ``ModuleNotFoundError: No module named 'x'``

    def line(self) -> str:
        return (f"plugin '{self.name}' ({self.value}) of the installed distribution '{self.distribution}' cannot be "
                f"imported ({self.error}); reinstall it, or remove it with `pip uninstall {self.distribution}`")


@dataclass
class Registry:
    """Everything the plugins provide, by kind and name, with who provided it."""

    methods: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    inspectors: dict[str, Any] = field(default_factory=dict)
    reports: dict[str, Any] = field(default_factory=dict)
    backends: dict[str, Any] = field(default_factory=dict)
    datasets: dict[str, Any] = field(default_factory=dict)
    models: dict[str, Any] = field(default_factory=dict)
    providers: dict[tuple[str, str], str] = field(default_factory=dict)
    broken: list[BrokenPlugin] = field(default_factory=list)  # entry points that failed to import

    def add(self, kind: str, item: Any, provider: str) -> None:
        name = getattr(item, "name", None)
        if not isinstance(name, str) or not name:
            raise ConfigError(f"plugin '{provider}' registered a {kind[:-1]} without a string 'name'")
        check_conformance(kind, item, provider)
        table = getattr(self, kind)
        if name in table:
            first = self.providers[(kind, name)]
            raise ConfigError(f"{kind[:-1]} '{name}' registered twice: by '{first}' and by '{provider}'")
        table[name] = item
        self.providers[(kind, name)] = provider

    def get(self, kind: str, name: str, where: str = "") -> Any:
        table = getattr(self, kind)
        if name not in table:
            known = ", ".join(sorted(table)) or "none"
            prefix = f"{where}: " if where else ""
            raise ConfigError(f"{prefix}unknown {kind[:-1]} '{name}' (expected one of: {known}){self.broken_hint()}")
        return table[name]

    def broken_hint(self) -> str:
        """What an unknown name may be missing for: every plugin that failed to import."""
        if not self.broken:
            return ""
        return "; it may come from a plugin that failed to import: " + "; ".join(b.line() for b in self.broken)

    def rows(self) -> list[tuple[str, str, str, str]]:
        """(kind, name, provider, description) for every registered item, for ``steerlab plugins``,
        then one ``broken`` row (entry point, distribution, error) per plugin that failed to import."""
        out = []
        for kind in KINDS:
            for name, item in sorted(getattr(self, kind).items()):
                doc = getattr(item, "description", "") or (type(item).__doc__ or "").strip().split("\n")[0]
                out.append((kind[:-1], name, self.providers[(kind, name)], doc))
        for b in self.broken:
            out.append(("broken", b.name, b.distribution, f"BROKEN: cannot be imported ({b.error}); `pip uninstall {b.distribution}` removes it"))
        return out


def required_members(kind: str) -> tuple[str, ...]:
    """What a registered item of ``kind`` must have (the protocols' members)."""
    return MEMBERS[kind]


def check_conformance(kind: str, item: Any, provider: str) -> None:
    """Refuse, at registration, an item that lacks a member of its protocol: the error names the
    plugin, the item and the member, instead of an AttributeError after minutes of training."""
    name = getattr(item, "name", "?")
    missing = [m for m in required_members(kind) if not hasattr(item, m)]
    if missing:
        hint = " (subclass steerlab.api.BaseMethod for the defaults)" if kind == "methods" else \
            " (subclass steerlab.api.BaseMetric for the defaults)" if kind == "metrics" else ""
        raise ConfigError(f"plugin '{provider}': {kind[:-1]} '{name}' lacks '{missing[0]}'{hint}")
    config = getattr(item, "Config", None)
    if kind in ("methods", "metrics", "inspectors") and not dataclasses.is_dataclass(config if kind != "inspectors" else item.Options):
        raise ConfigError(f"plugin '{provider}': {kind[:-1]} '{name}': its {'Options' if kind == 'inspectors' else 'Config'} must be a dataclass")


