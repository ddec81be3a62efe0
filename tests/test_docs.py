"""Docs from code: docs/plugin-api.md lists every hook and protocol member (datasette's habit),
and every hook is implemented by at least one built-in plugin."""

import inspect
from dataclasses import fields
from pathlib import Path

from steerlab import hookspecs
from steerlab.data import DatasetSpec
from steerlab.method import SteeringMethod
from steerlab.metrics.base import Metric
from steerlab.models import ModelSpec

DOC = (Path(__file__).parent.parent / "docs" / "plugin-api.md").read_text()
HOOKS = [name for name, fn in inspect.getmembers(hookspecs, inspect.isfunction) if name.startswith("steerlab_")]


def protocol_members(protocol: type) -> set[str]:
    return {n for n in protocol.__dict__ if not n.startswith("_")} | set(protocol.__annotations__)


def test_every_hook_is_documented_with_a_docstring():
    assert len(HOOKS) == 4
    for name in HOOKS:
        assert f"`{name}`" in DOC, name
        assert getattr(hookspecs, name).__doc__, name


def test_every_protocol_member_is_documented():
    for protocol in (SteeringMethod, Metric):
        for member in protocol_members(protocol):
            assert f"`{member}" in DOC, f"{protocol.__name__}.{member}"
    for spec in (ModelSpec, DatasetSpec):
        for f in fields(spec):
            assert f"`{spec.__name__}.{f.name}`" in DOC, f"{spec.__name__}.{f.name}"


def test_every_hook_is_exercised_by_a_builtin_plugin(registry):
    for name in HOOKS:
        kind = name.removeprefix("steerlab_")
        assert getattr(registry, kind), f"no built-in implements {name}"
