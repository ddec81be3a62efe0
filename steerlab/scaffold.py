"""``steerlab new-plugin NAME --dir DIR``: an installable plugin package, ready to edit.

It writes a package a third party would ship: ``pyproject.toml`` with the ``steerlab`` entry
point, a config dataclass and a method with ``train`` and ``steer`` (a residual-stream vector
read from two sets of example prompts: the smallest real steering method), a test that runs the
shared contract test (``steerlab.testing.check_method``), an example study and a README. After
``pip install -e DIR`` it appears in ``steerlab plugins`` and a study can name it.
"""

from __future__ import annotations

import keyword
import sys
from importlib import metadata
from pathlib import Path
from string import Template

from steerlab.errors import ConfigError

PYPROJECT = """[build-system]
requires = ["setuptools>=68"]
build-backend = "setuptools.build_meta"

[project]
name = "steerlab-$dist"
version = "0.1.0"
description = "A steerlab plugin: the $name steering method"
requires-python = "$requires_python"
dependencies = ["steerlab"]

[project.entry-points.steerlab]
$name = "$name"

[tool.setuptools]
packages = ["$name"]
"""

INIT = '''"""$name: a steerlab plugin (registered through the ``steerlab`` entry-point group)."""

from typing import Any, Callable

from steerlab.api import hookimpl

from $name.method import ${cls}Method


@hookimpl
def steerlab_methods(register: Callable[[Any], None]) -> None:
    register(${cls}Method())
'''

METHOD = '''"""$name: the mean residual-stream difference between two sets of example prompts, added at one
block with one strength per batch row. Edit ``train`` and ``steer`` to make it yours."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from steerlab.api import Artifact, BaseMethod, ControlSpace, Lab, ResidualVector, Scalar, collect, help_field


@dataclass(frozen=True)
class ${cls}Config:
    layer: int = help_field(1, "block whose output (resid_post) is read and steered")
    positive: list[str] = help_field(["Answer briefly.", "In one sentence:", "Be concise."], "prompts to steer towards")
    negative: list[str] = help_field(["Answer at length.", "In great detail:", "Be thorough."], "prompts to steer away from")

    def __post_init__(self) -> None:
        if self.layer < 0 or not self.positive or not self.negative:
            raise ValueError("key 'layer' must be >= 0, and 'positive' and 'negative' non-empty")


class ${cls}Method(BaseMethod):
    """Mean activation difference between two prompt sets, added to the residual stream."""

    name = "$name"
    description = "mean residual difference of two prompt sets, added at one block"
    Config = ${cls}Config

    def control_space(self, config: ${cls}Config) -> ControlSpace:
        return Scalar("strength", grid=[-4.0, 0.0, 4.0])

    def check(self, lab: Lab, config: ${cls}Config) -> None:
        if config.layer >= lab.model.n_layers:
            raise ValueError(f"layer {config.layer} out of range (the model has {lab.model.n_layers} blocks)")

    def train(self, lab: Lab, config: ${cls}Config) -> Artifact:
        site = f"blocks.{config.layer}.resid_post"
        mean = lambda texts: collect(lab.model, [lab.model.format_prompt(t) for t in texts], [site]).vectors[site].mean(0)  # noqa: E731
        vector = mean(config.positive) - mean(config.negative)
        return Artifact({"vector": vector / vector.norm()}, {"layer": config.layer}, sites=[site],
                        vectors=[ResidualVector(site, "vector")])

    def steer(self, lab: Lab, artifact: Artifact, controls: torch.Tensor) -> Any:
        return lab.engine.add_vectors(artifact.vectors, artifact.tensors, controls)  # one strength per batch row
'''

TEST = '''"""$name keeps the steerlab contract (the same checks every built-in method passes)."""

from steerlab.testing import check_method

from $name.method import ${cls}Config, ${cls}Method


def test_${name}_keeps_the_steerlab_contract(tmp_path):
    check_method(${cls}Method(), ${cls}Config(layer=1), active="4", neutral="0", other="-4", tmp_path=tmp_path)
'''

STUDY = '''# A study that runs $name on a tiny random model (seconds): steerlab run example.toml
[study]
name = "$dist-example"
model = "tiny-llama"

[data]
eval = "eval_prompts.jsonl"

[generation]
max_new_tokens = 8

[metrics]
use = ["length", "kl"]

[methods.$name]
layer = 1
controls = [-4.0, 0.0, 4.0]
'''

README = """# steerlab-$dist

A [steerlab](https://github.com/) plugin: the `$name` steering method (`$name/method.py`).

```bash
pip install -e .                 # registers the plugin through the `steerlab` entry-point group
steerlab plugins                 # lists `$name`
python -m pytest tests           # the shared steerlab contract test
steerlab run example.toml        # a study using it, on a tiny model
```

Edit `train` (what the method learns) and `steer` (how it changes the model, one control per
batch row) in `$name/method.py`. Import steerlab only from `steerlab.api`.
"""


def requires_python() -> str:
    """steerlab's own ``Requires-Python`` from its installed metadata: a plugin cannot run on a
    Python that steerlab refuses (the scaffold once wrote >=3.10 while steerlab needs 3.11). Run
    from a source tree that was never installed: the running Python's version, on which it runs."""
    try:
        declared = metadata.metadata("steerlab")["Requires-Python"]
    except metadata.PackageNotFoundError:
        declared = None
    return declared or f">={sys.version_info.major}.{sys.version_info.minor}"


def scaffold(name: str, directory: Path) -> list[Path]:
    """Write the package; refuses a name that is not an identifier and an existing folder."""
    if not name.isidentifier() or keyword.iskeyword(name) or not name.islower():
        raise ConfigError(f"new-plugin {name!r}: expected a lower-case Python identifier (letters, digits, '_'), e.g. my_method")
    if directory.exists():
        raise ConfigError(f"--dir {directory}: already exists; new-plugin never overwrites a folder")
    values = {"name": name, "dist": name.replace("_", "-"), "cls": "".join(p.capitalize() for p in name.split("_")),
              "requires_python": requires_python()}
    files = {"pyproject.toml": PYPROJECT, f"{name}/__init__.py": INIT, f"{name}/method.py": METHOD,
             f"tests/test_{name}.py": TEST, "example.toml": STUDY, "README.md": README,
             "eval_prompts.jsonl": '{"text": "Why is the sky blue?"}\n{"text": "Name a fruit."}\n'}
    written = []
    for relative, template in files.items():
        path = directory / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(Template(template).substitute(values))
        written.append(path)
    return written
