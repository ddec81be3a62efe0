"""Plugin discovery: entry points, local files, loud failures, duplicate names."""

import sys
import textwrap
from pathlib import Path

import pytest

from steerlab.errors import ConfigError
from steerlab.plugin import build_registry

LOCAL_PLUGIN = '''
from contextlib import nullcontext
from steerlab.hookspecs import hookimpl
from steerlab.method import BaseMethod
from steerlab.artifact import Artifact

class Echo(BaseMethod):
    name = "{name}"
    description = "does nothing, loudly"
    def train(self, lab, config):
        return Artifact({{}}, {{"method": self.name}})
    def steer(self, lab, artifact, control):
        return nullcontext()

@hookimpl
def steerlab_methods(register):
    register(Echo())
'''


def write_plugin(path: Path, name: str = "echo") -> Path:
    path.write_text(LOCAL_PLUGIN.format(name=name))
    return path


def test_builtins_register_through_the_entry_point_group(registry):
    assert registry.providers[("methods", "actdiff")] == "actdiff"
    assert registry.providers[("methods", "base")] == "core"
    assert {"length", "fluency", "kl", "similarity", "judge"} <= set(registry.metrics)
    assert {"smollm2-135m-instruct", "gemma3-270m", "tiny-llama", "tiny-gemma3"} <= set(registry.models)
    assert "concise" in registry.datasets


def test_a_local_plugin_file_adds_a_method(tmp_path):
    path = write_plugin(tmp_path / "echo_plugin.py")
    registry = build_registry([path])
    assert registry.methods["echo"].description == "does nothing, loudly"
    assert registry.providers[("methods", "echo")] == str(path)


def test_an_installed_distribution_is_discovered_by_entry_point(tmp_path, monkeypatch):
    """A fake installed package (dist-info + module on sys.path), found the way pip installs are."""
    write_plugin(tmp_path / "thirdparty_steer.py", name="thirdparty")
    info = tmp_path / "thirdparty_steer-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: thirdparty-steer\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[steerlab]\nthirdparty = thirdparty_steer\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    registry = build_registry()
    assert registry.providers[("methods", "thirdparty")] == "thirdparty"
    sys.modules.pop("thirdparty_steer", None)


def test_a_misspelled_hook_fails_loudly(tmp_path):
    path = tmp_path / "typo.py"
    path.write_text(textwrap.dedent('''
        from steerlab.hookspecs import hookimpl
        @hookimpl
        def steerlab_method(register):
            pass
    '''))
    with pytest.raises(ConfigError, match="unknown hook.*steerlab_method"):
        build_registry([path])


def test_the_same_name_registered_twice_names_both_plugins(tmp_path):
    path = write_plugin(tmp_path / "dup.py", name="actdiff")
    with pytest.raises(ConfigError, match="'actdiff' registered twice: by 'actdiff' and by"):
        build_registry([path])


def test_a_missing_or_broken_plugin_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="plugin file not found"):
        build_registry([tmp_path / "nope.py"])
    (tmp_path / "broken.py").write_text("import does_not_exist_anywhere\n")
    with pytest.raises(ConfigError, match="broken.py: plugin failed to import: ModuleNotFoundError"):
        build_registry([tmp_path / "broken.py"])


def test_the_readme_tutorial_plugin_works(tmp_path, tiny_llama, registry):
    """The README's 'Write your own method' example, run as written."""
    import re

    import torch

    from steerlab.generation import tokenize_prompts
    from steerlab.lab import Lab

    readme = (Path(__file__).parent.parent / "README.md").read_text()
    code = re.search(r"## Write your own method.*?```python\n(.*?)```", readme, re.S).group(1)
    path = tmp_path / "my_method.py"
    path.write_text(code)
    method = build_registry([path]).methods["random-direction"]
    lab = Lab(study=None, model=tiny_llama, registry=registry, run_dir=tmp_path, show_progress=False)
    artifact = method.train(lab, method.Config(layer=1))
    enc = tokenize_prompts(tiny_llama, ["Hello"])
    with torch.no_grad():
        base = tiny_llama.hf(**enc).logits
        with method.steer(lab, artifact, 5.0):
            steered = tiny_llama.hf(**enc).logits
        assert torch.equal(tiny_llama.hf(**enc).logits, base)
    assert not torch.allclose(base, steered)
