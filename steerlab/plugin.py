"""Plugin discovery and the typed registry the rest of steerlab reads.

Load, then check (the tox habit): entry points of group ``steerlab`` (built-ins included) and
local plugin files are registered with pluggy, ``check_pending`` makes a misspelled hook
implementation fail loudly, and each hook is called once with a ``register`` callback. Nothing
outside this module handles pluggy's ``list[Any]`` results.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import pluggy

from steerlab import hookspecs
from steerlab.errors import ConfigError

KINDS = ("methods", "metrics", "inspectors", "backends", "datasets", "models")


@dataclass
class Registry:
    """Everything the plugins provide, by kind and name, with who provided it."""

    methods: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    inspectors: dict[str, Any] = field(default_factory=dict)
    backends: dict[str, Any] = field(default_factory=dict)
    datasets: dict[str, Any] = field(default_factory=dict)
    models: dict[str, Any] = field(default_factory=dict)
    providers: dict[tuple[str, str], str] = field(default_factory=dict)

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
            raise ConfigError(f"{prefix}unknown {kind[:-1]} '{name}' (expected one of: {known})")
        return table[name]

    def rows(self) -> list[tuple[str, str, str, str]]:
        """(kind, name, provider, description) for every registered item, for ``steerlab plugins``."""
        out = []
        for kind in KINDS:
            for name, item in sorted(getattr(self, kind).items()):
                doc = getattr(item, "description", "") or (type(item).__doc__ or "").strip().split("\n")[0]
                out.append((kind[:-1], name, self.providers[(kind, name)], doc))
        return out


def required_members(kind: str) -> tuple[str, ...]:
    """What a registered item of ``kind`` must have (the protocols' members)."""
    from steerlab.inspect.base import INSPECTOR_MEMBERS
    from steerlab.method import MEMBERS
    from steerlab.metrics.base import METRIC_MEMBERS
    from steerlab.model.backends import BACKEND_MEMBERS

    return {"methods": MEMBERS, "metrics": METRIC_MEMBERS, "inspectors": INSPECTOR_MEMBERS, "backends": BACKEND_MEMBERS,
            "datasets": ("name", "build", "description"), "models": ("name", "load", "description")}[kind]


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


def load_plugin_file(path: Path) -> ModuleType:
    """Import a local ``.py`` file as a plugin module (``--plugin path.py`` / ``plugins = [...]``)."""
    if not path.is_file():
        raise ConfigError(f"{path}: plugin file not found")
    module_name = f"steerlab_local_plugin_{abs(hash(str(path.resolve())))}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise ConfigError(f"{path}: cannot be imported as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        raise ConfigError(f"{path}: plugin failed to import: {type(exc).__name__}: {exc}") from exc
    return module


def make_plugin_manager(plugin_files: Iterable[Path] = (), entry_points: bool = True) -> pluggy.PluginManager:
    """A pluggy manager with the hookspecs, installed plugins and local plugin files loaded."""
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    if entry_points:
        pm.load_setuptools_entrypoints(hookspecs.PROJECT)
    for path in plugin_files:
        path = Path(path).resolve()
        if pm.has_plugin(str(path)):
            continue
        pm.register(load_plugin_file(path), name=str(path))
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        raise ConfigError(f"a plugin implements an unknown hook: {exc}") from exc
    return pm


def collect(pm: pluggy.PluginManager) -> Registry:
    """Call every ``steerlab_*`` hook once per plugin, recording which plugin provided what.

    Hook implementations are called one by one (rather than through ``pm.hook.X(...)``) so each
    registered item can be attributed to the plugin that provided it.
    """
    registry = Registry()
    for kind in KINDS:
        caller = getattr(pm.hook, f"steerlab_{kind}")
        for impl in caller.get_hookimpls():
            provider = impl.plugin_name

            def register(item: Any, _kind: str = kind, _provider: str = provider) -> None:
                registry.add(_kind, item, _provider)

            try:
                impl.function(register=register)
            except ConfigError:
                raise
            except Exception as exc:  # a plugin's own bug: say whose, in one line
                raise ConfigError(f"plugin '{provider}': hook steerlab_{kind} failed: {type(exc).__name__}: {exc}") from None
    return registry


def build_registry(plugin_files: Iterable[Path] = (), entry_points: bool = True) -> Registry:
    """The registry for one run: installed plugins plus any local plugin files."""
    return collect(make_plugin_manager(plugin_files, entry_points=entry_points))
