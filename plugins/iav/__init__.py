"""iav: inherent alignment vectors, an alignment head whose logit shift a_t is scaled by alpha at
decoding time (z_final = z_base + alpha * a_t), trained by DPO against the frozen base.

Also registers the prompt baselines of the IAV studies (``instructed``, ``courteous``) and their
dataset builders: ``iav-styles`` (philosophical vs plain pairs from the chat3d data, no model; the
target with headroom) and ``iav`` (courteous vs careless pairs written by a real model).
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
    from steerlab_plugins.iav.styles_dataset import build_iav_styles

    register(DatasetSpec("iav", build_iav,
                         "courteous-vs-careless preference pairs (with mildly risky requests), judge texts, eval prompts"))
    register(DatasetSpec("iav-styles", build_iav_styles,
                         "philosophical-vs-plain length-matched pairs from the chat3d data (no model), judge texts, eval prompts"))
