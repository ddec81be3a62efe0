"""transfer: a preference vector extracted on one model, steering another (directly, through a
learned linear map between residual spaces, or a random control), and the study-level summary of
the transfer hypotheses (``hypotheses.py``).

Registered through the ``steerlab`` entry-point group, like any third-party plugin.
"""

from __future__ import annotations

from typing import Any, Callable

from steerlab.api import hookimpl

from steerlab_plugins.transfer.hypotheses import TransferReport
from steerlab_plugins.transfer.method import TransferMethod


@hookimpl
def steerlab_methods(register: Callable[[Any], None]) -> None:
    register(TransferMethod())


@hookimpl
def steerlab_datasets(register: Callable[[Any], None]) -> None:
    from steerlab.api import DatasetSpec

    from steerlab_plugins.transfer.dataset import build_transfer

    register(DatasetSpec("transfer", build_transfer, "the transfer study's eval prompts, 48 dev / 48 test (no model; --from the concise data)"))


@hookimpl
def steerlab_reports(register: Callable[[Any], None]) -> None:
    register(TransferReport())
