"""soups: rewarded soups (Rame et al. 2023): one PEFT LoRA per preference dimension, mixed by lambda."""

from __future__ import annotations

from typing import Any, Callable

from steerlab.api import hookimpl

from steerlab_plugins.soups.method import SoupsMethod


@hookimpl
def steerlab_methods(register: Callable[[Any], None]) -> None:
    register(SoupsMethod())
