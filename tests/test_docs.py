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


def test_every_public_member_of_the_engine_is_documented():
    from steerlab.model.engine import HookEngine

    members = [n for n, v in vars(HookEngine).items() if not n.startswith("_") and (callable(v) or isinstance(v, property))]
    assert "add_vectors" in members and len(members) >= 8
    missing = [n for n in members if f"`{n}" not in DOC]
    assert not missing, missing


def test_the_meta_keys_core_reads_are_the_documented_ones():
    """Core reads a method's ``meta`` only at the keys ``CORE_META`` names, each documented (a
    metric's own artifact, the judge's state, is the metric's business: metrics/ is left out)."""
    import re

    from steerlab.artifact import CORE_META

    core = Path(__file__).parent.parent / "steerlab"
    read = {key for path in core.rglob("*.py") if "metrics" not in path.parts
            for key in re.findall(r"""meta(?:\.get\(|\[)\s*["'](\w+)["']""", path.read_text())}
    assert read == set(CORE_META), read ^ set(CORE_META)
    for key in CORE_META:
        assert f"| `{key}` |" in DOC, key


def test_an_inspector_option_named_control_reaches_the_inspector_as_the_text_typed():
    from dataclasses import dataclass

    from steerlab.config import options_parser, parse_options
    from steerlab_plugins.panacea.inspect import SvdOptions

    @dataclass(frozen=True)
    class Options:
        control: str | None = None
        top: int = 5

    for typed in ("0.4", "helpful=1", "0.2,0.3,0.5"):
        assert parse_options(Options, ["--control", typed, "--top", "3"], "inspect x", options_parser(Options)) == Options(typed, 3)
    assert "control" in {f for f in SvdOptions.__dataclass_fields__}
    assert "A field named `control`" in DOC and "run.control(options.control)" in DOC



def test_every_public_name_of_the_shared_contract_test_is_documented():
    """``steerlab.testing`` is public: plugins' own tests (and ``new-plugin``'s) call it."""
    from steerlab import testing

    own = [n for n, v in vars(testing).items() if not n.startswith("_")
           and (getattr(v, "__module__", None) == testing.__name__ or (n.isupper() and isinstance(v, list)))]
    assert {"check_method", "train_on_tiny", "Trained", "PROMPTS"} <= set(own)
    missing = [n for n in own if f"`{n}" not in DOC]
    assert not missing, missing

PLUGIN = '''
from contextlib import nullcontext
from pathlib import Path

import torch

from steerlab.api import Artifact, BaseMethod, Section, hookimpl

LOG = Path({log!r})
FIRST = []


def seen(artifact, where):
    FIRST.extend([] if FIRST else [artifact])
    with LOG.open("a") as log:
        log.write(f"{{where}} {{'same' if artifact is FIRST[0] else 'other'}}\\n")


class Watcher(BaseMethod):
    name = "watcher"

    def train(self, lab, config):
        return Artifact({{"v": torch.zeros(2)}})

    def steer(self, lab, artifact, controls):
        seen(artifact, "steer")
        return nullcontext()

    def analyze(self, lab, entry, artifact, result, folder):
        seen(artifact, "analyze")
        return Section()


@hookimpl
def steerlab_methods(register):
    register(Watcher())
'''


def test_steer_and_analyze_get_the_one_artifact_object_of_their_entry(study_dir):
    """The promise ``ArtifactCache`` rests on: every batch of a sweep and the analysis see the
    same ``Artifact`` object, compared with ``is``."""
    from steerlab.cli import main

    log = study_dir / "seen.log"
    (study_dir / "watcher.py").write_text(PLUGIN.format(log=str(log)))
    path = study_dir / "tiny.toml"
    text = path.read_text().replace("seed = 3", 'seed = 3\nplugins = ["watcher.py"]').split("[metrics]")[0]
    path.write_text(text + '[metrics]\nuse = ["length"]\n\n[methods.watcher]\ncontrols = [-1.0, 0.0, 1.0]\n')
    assert main(["run", str(path), "--out", str(study_dir / "runs"), "--no-progress"]) == 0
    lines = log.read_text().split()
    assert lines.count("steer") >= 3 and lines.count("analyze") == 1  # 2 active controls x 3 prompts, 2 rows a batch
    assert set(lines[1::2]) == {"same"}
