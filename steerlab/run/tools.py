"""Users' tools on a finished run: reopen its model, method and artifact; answer new prompts.

``open_run`` is what ``steerlab generate``, ``steerlab inspect`` and ``steerlab export`` share:
the run's study and plugins as the run began (plus any ``--plugin`` given now), its model, and
one method entry's artifact, checked against that method and model.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

from steerlab.artifact import Artifact
from steerlab.errors import ConfigError
from steerlab.inspect.base import OpenRun
from steerlab.model.zoo import describe
from steerlab.run.lab import Lab
from steerlab.run.runner import load_study_model, reopen
from steerlab.study.schema import MethodEntry


def open_run(run_dir: Path, method_name: str | None = None, plugin_files: list[str] = (),  # type: ignore[assignment]
             accept: Callable[[MethodEntry, Artifact], bool] | None = None, wanted: str = "") -> OpenRun:
    """Load a run's study, model and one method's artifact (the first trained entry that
    ``accept``s, or ``method_name``)."""
    study, registry, layout, _ = reopen(run_dir, plugin_files, check_data=False)
    names = [e.name for e in study.methods]
    if method_name is not None and method_name not in names:
        raise ConfigError(f"--method {method_name!r}: no such method entry in {run_dir} (entries: {', '.join(names)})")
    chosen: tuple[MethodEntry, Artifact] | None = None
    for entry in study.methods:
        if method_name not in (None, entry.name) or not Artifact.exists(layout.method(entry.name)):
            continue
        artifact = Artifact.load(layout.method(entry.name))
        if accept is None or accept(entry, artifact):
            chosen = (entry, artifact)
            break
    if chosen is None:
        label = f" {method_name!r}" if method_name else ""
        raise ConfigError(f"{run_dir}: no trained method{label}{wanted} in this run")
    entry, artifact = chosen
    model = load_study_model(study, registry, entry.model)
    artifact.check_made_for(entry.method, describe(model), layout.method(entry.name) / "artifact.json")
    lab = Lab(study=study, model=model, registry=registry, layout=layout, show_progress=False)
    return OpenRun(lab, entry, registry.methods[entry.method], artifact)


def generate_from_run(run_dir: Path, prompts: list[str], controls: list[str], method_name: str | None = None,
                      max_new_tokens: int | None = None, plugin_files: list[str] = ()) -> list[str]:  # type: ignore[assignment]
    """Answer ``prompts`` at each control (text for the method's control space; none: the last
    control of the study's sweep); returns printable blocks, one per prompt."""
    run = open_run(run_dir, method_name, plugin_files)
    settings = run.lab.settings
    if max_new_tokens is not None:
        if max_new_tokens < 1:
            raise ConfigError(f"--max-new-tokens {max_new_tokens}: expected a whole number >= 1")
        settings = dataclasses.replace(settings, max_new_tokens=max_new_tokens)
    chosen = [run.control(c) for c in controls] or [run.entry.controls[-1]]
    space = run.entry.space
    rows = [(c, p) for c in chosen for p in prompts]  # every control and prompt in the same batches
    gens = run.lab.answer(run.method, run.artifact, space, [c for c, _ in rows], [p for _, p in rows], settings)
    blocks = []
    for i, prompt in enumerate(prompts):
        lines = [f"### {prompt}"]
        lines += [f"[{run.entry.name} {space.label}={space.key(c)}] {gens[k * len(prompts) + i].output}" for k, c in enumerate(chosen)]
        blocks.append("\n".join(lines) + "\n")
    return blocks
