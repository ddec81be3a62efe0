"""The declared plugin API: built-in plugins import steerlab only through ``steerlab.api``."""

import ast
from pathlib import Path

PLUGINS = Path(__file__).parent.parent / "plugins"


def steerlab_imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text())
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.append(node.module)
        elif isinstance(node, ast.Import):
            names += [a.name for a in node.names]
    return [n for n in names if n == "steerlab" or n.startswith("steerlab.")]


def test_builtin_plugins_import_core_only_through_steerlab_api():
    files = sorted(PLUGINS.rglob("*.py"))
    assert len(files) > 10
    offenders = {str(f.relative_to(PLUGINS)): bad for f in files if (bad := [n for n in steerlab_imports(f) if n != "steerlab.api"])}
    assert not offenders, offenders


def test_plugins_never_import_each_other():
    for path in PLUGINS.rglob("*.py"):
        own = path.relative_to(PLUGINS).parts[0]
        tree = ast.parse(path.read_text())
        others = [n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module
                  and n.module.startswith("steerlab_plugins.") and n.module.split(".")[1] != own]
        assert not others, (path, others)


def test_data_the_builders_read_ships_inside_the_packages():
    """A non-editable install has no studies/ folder: builders read only package data."""
    import tomllib
    from importlib import resources

    from steerlab.data.builders import INSTRUCTIONS
    from steerlab_plugins.iav.dataset import RISKY_FILE
    from steerlab_plugins.panacea.dataset import STYLES_FILE

    package_data = tomllib.loads((PLUGINS.parent / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    assert INSTRUCTIONS == Path(str(resources.files("steerlab.data") / "instructions.jsonl")) and INSTRUCTIONS.is_file()
    for path, package in ((STYLES_FILE, "steerlab_plugins.panacea"), (RISKY_FILE, "steerlab_plugins.iav")):
        assert path.is_file() and path.parent.name == package.split(".")[-1]
        assert any(path.match(pattern) for pattern in package_data[package]), (path, package_data.get(package))
