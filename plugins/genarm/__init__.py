"""genarm: GenARM (Xu et al.), an autoregressive reward model guiding decoding token by token.

The reward model is a PEFT LoRA on a copy of the base, trained on the iav study's preference pairs
(``steerlab data build iav-styles``) with the same pairs held out as IAV's (``heldout_fraction``),
on IAV's alpha grid so the two compare point for point; its decoding is used in the iav report only
when its held-out pair accuracy reaches ``require_heldout_accuracy``.
"""

from __future__ import annotations

from typing import Any, Callable

from steerlab.api import hookimpl

from steerlab_plugins.genarm.method import GenARMMethod


@hookimpl
def steerlab_methods(register: Callable[[Any], None]) -> None:
    register(GenARMMethod())
