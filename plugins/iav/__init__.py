"""iav: inherent alignment vectors, an alignment head whose logit shift a_t is scaled by alpha at
decoding time (z_final = z_base + alpha * a_t), trained by DPO against the frozen base.

Also registers the prompt baseline of the IAV study (``courteous``) and the ``iav`` dataset
builder (courteous vs careless preference pairs written by a real model).
"""

from __future__ import annotations

from typing import Any, Callable

from steerlab.api import DatasetSpec, hookimpl

from steerlab_plugins.iav.courteous import CourteousMethod, InstructedMethod
from steerlab_plugins.iav.method import IAVMethod
from steerlab_plugins.iav.verdict import IAVReport


@hookimpl
def steerlab_methods(register: Callable[[Any], None]) -> None:
    register(IAVMethod())
    register(CourteousMethod())
    register(InstructedMethod())


@hookimpl
def steerlab_reports(register: Callable[[Any], None]) -> None:
    register(IAVReport())


@hookimpl
def steerlab_datasets(register: Callable[[Any], None]) -> None:
    from steerlab_plugins.iav.dataset import build_iav

    register(DatasetSpec("iav", build_iav,
                         "courteous-vs-careless preference pairs (with mildly risky requests), judge texts, eval prompts"))
