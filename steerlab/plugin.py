"""Plugin discovery and the typed registry the rest of steerlab reads.

Load, then check (the tox habit): entry points of group ``steerlab`` (built-ins included) and
local plugin files are registered with pluggy, ``check_pending`` makes a misspelled hook
implementation fail loudly, and each hook is called once with a ``register`` callback. Nothing
outside this module handles pluggy's ``list[Any]`` results.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterable
from pathlib import Path
from types import ModuleType
from typing import Any

import pluggy

from steerlab import hookspecs
from steerlab.errors import ConfigError
from steerlab.registry import KINDS, Registry


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
