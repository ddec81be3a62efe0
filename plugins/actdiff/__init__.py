"""actdiff: activation-difference preference vectors (e.g. concise vs verbose).

Registered through the ``steerlab`` entry-point group, like any third-party plugin.
"""

from __future__ import annotations

from typing import Any, Callable

from steerlab.api import DatasetSpec, hookimpl

from steerlab_plugins.actdiff.method import ActDiffMethod


@hookimpl
def steerlab_methods(register: Callable[[Any], None]) -> None:
    register(ActDiffMethod())


@hookimpl
def steerlab_datasets(register: Callable[[Any], None]) -> None:
    from steerlab_plugins.actdiff.dataset import build_concise

    register(DatasetSpec("concise", build_concise, "concise-vs-verbose pairs, eval prompts and judge texts, written by a real model"))
