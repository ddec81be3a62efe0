"""genarm: GenARM (Xu et al.), an autoregressive reward model guiding decoding token by token.

The reward model is a PEFT LoRA on a copy of the base, trained on the iav preference pairs
(``steerlab data build iav``), on IAV's alpha grid so the two compare point for point.
"""

from __future__ import annotations

from typing import Any, Callable

from steerlab.api import hookimpl

from steerlab_plugins.genarm.method import GenARMMethod


@hookimpl
def steerlab_methods(register: Callable[[Any], None]) -> None:
    register(GenARMMethod())
