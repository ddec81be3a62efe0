"""panacea: Pareto alignment via preference adaptation (arXiv 2402.02030).

One SVD-LoRA adapter whose preference singular values are ``s_l * lambda``: train once across
sampled preferences, then follow any lambda on the simplex online. Also registers the chat-3D
dataset builder that writes the flagship study's data with a real model.
"""

from __future__ import annotations

from typing import Any, Callable

from steerlab.api import DatasetSpec, hookimpl

from steerlab_plugins.panacea.inspect import SvdInspector
from steerlab_plugins.panacea.method import PanaceaMethod


@hookimpl
def steerlab_methods(register: Callable[[Any], None]) -> None:
    register(PanaceaMethod())


@hookimpl
def steerlab_inspectors(register: Callable[[Any], None]) -> None:
    register(SvdInspector())


@hookimpl
def steerlab_datasets(register: Callable[[Any], None]) -> None:
    from steerlab_plugins.panacea.dataset import build_chat3d

    register(DatasetSpec("chat3d", build_chat3d, "chat-3D SFT answers (helpful / humorous / philosophical), judge texts, eval prompts"))
