"""Users' tools on a finished run: reload its model, method and artifact; answer new prompts."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from steerlab.artifact import Artifact
from steerlab.errors import ConfigError
from steerlab.lab import Lab
from steerlab.models import load_model
from steerlab.runner import RunRequest, prepare
from steerlab.study import GenerationSettings, MethodEntry


@dataclass
class LoadedRun:
    lab: Lab
    entry: MethodEntry
    method: Any
    artifact: Artifact


def open_run(run_dir: Path, method_name: str | None = None, plugin_files: list[str] = (),  # type: ignore[assignment]
             want: str | None = None, inspector: str | None = None) -> LoadedRun:
    """Load a run's study, model and one method's artifact.

    ``want``: an artifact tensor the method must have; ``inspector``: an inspector it must offer.
    """
    study, registry, _ = prepare_for(run_dir, plugin_files)
    entries = [e for e in study.methods if method_name in (None, e.name)]
    entries = [e for e in entries if (run_dir / "methods" / e.name / "artifact.json").exists()]
    if want:
        entries = [e for e in entries if want in Artifact.load(run_dir / "methods" / e.name).tensors]
    if inspector:
        entries = [e for e in entries if inspector in registry.methods[e.method].inspectors()]
    if not entries:
        what = f" with a {want}" if want else f" offering '{inspector}'" if inspector else ""
        raise ConfigError(f"{run_dir}: no trained method{' ' + repr(method_name) if method_name else ''}{what} in this run")
    entry = entries[0]
    model = load_model(study.meta.model, registry.models, study.meta.device, study.meta.dtype)
    lab = Lab(study=study, model=model, registry=registry, run_dir=run_dir, show_progress=False)
    return LoadedRun(lab, entry, registry.methods[entry.method], Artifact.load(run_dir / "methods" / entry.name))


def prepare_for(run_dir: Path, plugin_files: list[str]):
    """The run's study and registry, as ``--resume`` would load them (plus extra plugin files)."""
    if not (run_dir / "run.json").exists():
        raise ConfigError(f"{run_dir}: not a run folder (no run.json)")
    request = json.loads((run_dir / "run.json").read_text())
    request["plugin_files"] = list(request.get("plugin_files", [])) + list(plugin_files)
    return prepare(RunRequest(**request), resume=run_dir)


def checked_control(run: LoadedRun, control: Any) -> Any:
    """The method's own validation of a control given on the command line (exit 2 when bad)."""
    try:
        return run.method.check_control(control, run.entry.config)
    except ValueError as exc:
        raise ConfigError(f"control {control!r} for '{run.entry.name}': {exc}") from None


def generate_from_run(run_dir: Path, prompts: list[str], controls: list[Any], method_name: str | None = None,
                      max_new_tokens: int | None = None, plugin_files: list[str] = ()) -> list[str]:  # type: ignore[assignment]
    """Answer ``prompts`` at each control; returns printable blocks, one per prompt."""
    run = open_run(run_dir, method_name, plugin_files)
    settings = run.lab.study.generation
    if max_new_tokens:
        settings = GenerationSettings(**{**settings.__dict__, "max_new_tokens": max_new_tokens})
    controls = [c if c is not None else run.entry.controls[-1] for c in controls]
    controls = [checked_control(run, c) for c in controls]
    answers = {}
    for control in controls:
        with run.method.steer(run.lab, run.artifact, control):
            answers[run.method.control_key(control)] = run.lab.generate(prompts, settings)
    blocks = []
    for i, prompt in enumerate(prompts):
        lines = [f"### {prompt}"]
        lines += [f"[{run.entry.name} {run.method.control_label}={key}] {gens[i].output}" for key, gens in answers.items()]
        blocks.append("\n".join(lines) + "\n")
    return blocks
