"""Plugin discovery and the typed registry the rest of steerlab reads.

Load, then check (the tox habit): entry points of group ``steerlab`` (built-ins included) and
local plugin files are registered with pluggy, ``check_pending`` makes a misspelled hook
implementation fail loudly, and each hook is called once with a ``register`` callback. Nothing
outside this module handles pluggy's ``list[Any]`` results.

An installed plugin that cannot be imported (its folder deleted after ``pip install -e``) must not
turn every command into a traceback: it is left out, warned about in one line
(``BrokenPluginWarning``) and kept in ``Registry.broken``, so ``steerlab plugins`` marks it and a
lookup of a name it may have provided fails naming it. A local plugin file that fails to import
stays an error: the user asked for that very file.
"""

from __future__ import annotations

import importlib.util
import sys
import warnings
from collections.abc import Iterable
from importlib import metadata
from pathlib import Path
from types import ModuleType
from typing import Any

import pluggy

from steerlab import hookspecs
from steerlab.errors import BrokenPluginWarning, ConfigError
from steerlab.registry import KINDS, BrokenPlugin, Registry


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


def load_entry_points(pm: pluggy.PluginManager) -> list[BrokenPlugin]:
    """Register every installed ``steerlab`` entry point that imports; return those that do not.

    pluggy's ``load_setuptools_entrypoints`` does the same but lets the first import error escape,
    which ended every command in a traceback when one third-party plugin was broken."""
    broken = []
    for ep in metadata.entry_points(group=hookspecs.PROJECT):
        if pm.has_plugin(ep.name) or pm.is_blocked(ep.name):
            continue  # a second distribution declaring the same name: the first one wins, as in pluggy
        try:
            plugin = ep.load()
        except Exception as exc:  # the plugin's own import failing, whatever the reason
            broken.append(BrokenPlugin(ep.name, ep.value, distribution_name(ep), f"{type(exc).__name__}: {exc}"))
            continue
        pm.register(plugin, name=ep.name)
    return broken


def distribution_name(ep: metadata.EntryPoint) -> str:
    """The name ``pip uninstall`` takes for the distribution that declares ``ep``."""
    dist = getattr(ep, "dist", None)
    return (dist.metadata["Name"] or dist.name) if dist is not None else f"the package that provides {ep.value.split(':')[0]}"


def make_plugin_manager(plugin_files: Iterable[Path] = (), entry_points: bool = True) -> tuple[pluggy.PluginManager, list[BrokenPlugin]]:
    """A pluggy manager with the hookspecs, installed plugins and local plugin files loaded, and
    the installed plugins that could not be imported (each warned about once)."""
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    broken = load_entry_points(pm) if entry_points else []
    for plugin in broken:
        warnings.warn(plugin.line(), BrokenPluginWarning)
    for path in plugin_files:
        path = Path(path).resolve()
        if pm.has_plugin(str(path)):
            continue
        pm.register(load_plugin_file(path), name=str(path))
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        raise ConfigError(f"a plugin implements an unknown hook: {exc}") from exc
    return pm, broken


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
    pm, broken = make_plugin_manager(plugin_files, entry_points=entry_points)
    registry = collect(pm)
    registry.broken = broken
    return registry
