"""Run a study: load the model, then for each method train -> evaluate -> analyze, then report.

Each stage writes its output atomically into the run folder; a resumed run (``--resume``)
skips every stage whose output is already there, so an interruption loses nothing finished.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from steerlab import report
from steerlab.artifact import Artifact, atomic_write_text
from steerlab.data import file_digest
from steerlab.errors import ConfigError
from steerlab.evaluate import save_json
from steerlab.lab import Lab
from steerlab.method import Analysis
from steerlab.models import load_model
from steerlab.plugin import Registry, build_registry
from steerlab.study import MethodEntry, Study, load_study


@dataclass
class RunRequest:
    """What the user asked for on the command line (kept in ``run.json`` for ``--resume``)."""

    study_path: str
    overrides: list[str] = field(default_factory=list)
    quick: bool = False
    plugin_files: list[str] = field(default_factory=list)


def new_run_dir(out: Path, study_name: str) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    run_dir = out / f"{study_name}-{stamp}"
    suffix = 1
    while run_dir.exists():
        suffix += 1
        run_dir = out / f"{study_name}-{stamp}-{suffix}"
    run_dir.mkdir(parents=True)
    return run_dir


def prepare(request: RunRequest, out: Path | None = None, resume: Path | None = None) -> tuple[Study, Registry, Path]:
    """Validate everything that can be validated before the (slow) model load."""
    if resume is not None:
        request = _request_from(resume)
    study_path = Path(request.study_path)
    registry = build_registry([Path(p) for p in request.plugin_files] + _study_plugins(study_path))
    study = load_study(study_path, registry, request.overrides, request.quick)
    if resume is not None:
        if (resume / "study.toml").read_text() != study_path.read_text():
            raise ConfigError(f"{study_path}: changed since run {resume} began; start a new run instead of --resume")
        return study, registry, resume
    run_dir = new_run_dir(out or Path("runs"), study.meta.name)
    shutil.copyfile(study_path, run_dir / "study.toml")
    atomic_write_text(run_dir / "run.json", json.dumps(request.__dict__, indent=1))
    return study, registry, run_dir


def _request_from(run_dir: Path) -> RunRequest:
    path = run_dir / "run.json"
    if not path.exists():
        raise ConfigError(f"{run_dir}: not a run folder (no run.json)")
    return RunRequest(**json.loads(path.read_text()))


def _study_plugins(study_path: Path) -> list[Path]:
    """Local plugin files named in the study (read before validation: they may add methods)."""
    from steerlab.study import read_toml

    names = read_toml(study_path).get("study", {}).get("plugins", [])
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise ConfigError(f"{study_path}: [study] key 'plugins' expected a list of file paths")
    return [study_path.parent / n for n in names]


def run_method(lab: Lab, entry: MethodEntry) -> dict[str, Any]:
    method = lab.registry.methods[entry.method]
    folder = lab.run_dir / "methods" / entry.name
    if (folder / "artifact.json").exists():
        artifact = Artifact.load(folder)
    else:
        lab.seeded(f"train:{entry.name}")
        artifact = method.train(lab, entry.config)
        artifact.save(folder)
    result_path = folder / "result.json"
    if result_path.exists():
        result = json.loads(result_path.read_text())
    else:
        result = method.evaluate(lab, entry.name, artifact, entry.config, entry.controls)
        save_json(result_path, result)
    return _with_analysis(lab, method, entry, artifact, result, folder)


def _with_analysis(lab: Lab, method: Any, entry: MethodEntry, artifact: Artifact, result: dict[str, Any], folder: Path) -> dict[str, Any]:
    analysis_path = folder / "analysis.json"
    if analysis_path.exists():
        analysis = Analysis(**json.loads(analysis_path.read_text()))
    else:
        lab.seeded(f"analyze:{entry.name}")
        analysis = method.analyze(lab, entry.name, artifact, entry.config, result, folder)
        save_json(analysis_path, analysis.__dict__)
    figures = list(analysis.figures)
    sweep_png = lab.run_dir / "figures" / f"{entry.name}_sweep.png"
    if report.plot_sweep(entry.name, method.control_label, result["by_control"], sweep_png):
        figures.insert(0, (str(sweep_png.relative_to(lab.run_dir)), f"{entry.name}: mean scores against {method.control_label}"))
    return {
        "method": entry.method,
        "control_label": method.control_label,
        "summary": {**result["summary"], **analysis.summary},
        "by_control": result["by_control"],
        "records": result["records"],
        "figures": figures,
        "analysis": analysis.data,
        "analysis_markdown": analysis.markdown,
    }


def study_record(study: Study, n_prompts: int) -> dict[str, Any]:
    eval_path = Path(study.data.eval)
    return {
        "name": study.meta.name, "description": study.meta.description, "model": study.meta.model,
        "seed": study.meta.seed, "quick": study.quick, "n_eval_prompts": n_prompts,
        "max_new_tokens": study.generation.max_new_tokens, "eval_sha256": file_digest(eval_path),
        "metrics": study.metrics, "methods": {m.name: m.method for m in study.methods},
    }


def execute(study: Study, registry: Registry, run_dir: Path, show_progress: bool = True, model: Any = None) -> dict[str, Any]:
    """Run every stage not yet finished in ``run_dir`` and write results.json + report.md."""
    s = study.meta
    loaded = model or load_model(s.model, registry.models, s.device, s.dtype)
    lab = Lab(study=study, model=loaded, registry=registry, run_dir=run_dir, show_progress=show_progress)
    methods = {entry.name: run_method(lab, entry) for entry in study.methods}
    results: dict[str, Any] = {"study": study_record(study, len(lab.eval_prompts())), "methods": methods}
    if "judge" in study.metrics:
        results["judge"] = lab.judge().report
    if study.pareto.axes:
        from steerlab.compare import compare

        results["comparison"] = compare(results, study.pareto.axes, run_dir, study.pareto.anchor or None)
    save_json(run_dir / "results.json", results)
    report.write_report(run_dir, results)
    return results
