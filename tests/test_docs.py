"""Docs from code: docs/plugin-api.md lists every hook, every protocol member and every name
``steerlab.api`` exports (datasette's habit), and every hook is implemented by a built-in."""

import inspect
from dataclasses import fields
from pathlib import Path

from steerlab import api, hookspecs
from steerlab.controls import ControlSpace
from steerlab.data.files import DatasetSpec
from steerlab.registry import MEMBERS
from steerlab.model.zoo import ModelSpec

DOC = (Path(__file__).parent.parent / "docs" / "plugin-api.md").read_text()
HOOKS = [name for name, fn in inspect.getmembers(hookspecs, inspect.isfunction) if name.startswith("steerlab_")]


def test_every_hook_is_documented_with_a_docstring():
    assert len(HOOKS) == 7
    for name in HOOKS:
        assert f"`{name}`" in DOC, name
        assert getattr(hookspecs, name).__doc__, name


def test_every_protocol_member_is_documented():
    space_members = [n for n, v in vars(ControlSpace).items() if not n.startswith("_") and (callable(v) or isinstance(v, (str, property)))]
    for member in (*(m for kind in ("methods", "metrics", "inspectors", "backends", "reports") for m in MEMBERS[kind]), *space_members):
        assert f"`{member}" in DOC, member
    for spec in (ModelSpec, DatasetSpec):
        for f in fields(spec):
            assert f"`{spec.__name__}.{f.name}`" in DOC, f"{spec.__name__}.{f.name}"


def test_every_name_the_plugin_api_exports_is_documented():
    assert sorted(api.__all__) == sorted(set(api.__all__))
    missing = [name for name in api.__all__ if f"`{name}" not in DOC]
    assert not missing, missing
    assert all(hasattr(api, name) for name in api.__all__)


def test_every_hook_is_exercised_by_a_builtin_plugin(registry):
    for name in HOOKS:
        kind = name.removeprefix("steerlab_")
        assert getattr(registry, kind), f"no built-in implements {name}"
