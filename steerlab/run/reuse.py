"""Reuse an artifact trained in another run instead of training it again (``reuse_from``).

Several studies train the very same thing: compare and judges run Panacea and soups at chat3d's
chosen settings, seeds 0 and 1, on the same training file, and on 2 CPU cores each of those is
half an hour. A method table may therefore name a finished run,

    [methods.panacea]
    reuse_from = "../docs/results/chat3d"   # relative to the study file

and a piece of that entry takes the run's artifact of the same entry name at the same training seed
instead of training, when (and only when) it was trained the way this study would train it: the
same method, the same model (fingerprint), the same training seed, the same config except the keys
the method declares as shaping only its sweep (``sweep_keys``: a grid step, the controls), the same
library versions, and the same contents of every file the config names (against the digests the
run recorded when it began). Training is seeded from the training
seed and the entry's name alone (``Lab.seeded``), so under those checks retraining would give the
same tensors; what the checks cannot see is a change to the training code itself, which is why the
artifact keeps its original training time and the folder it came from (``ArtifactHeader``).

Anything short of that trains as usual and says why on stderr: a run folder carried without its
tensors (published runs keep JSON only) is the common case, and training is always a correct answer.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from steerlab.artifact import Artifact, versions
from steerlab.config import as_dict, path_values
from steerlab.data.files import file_digest
from steerlab.errors import ConfigError
from steerlab.model.zoo import describe

if TYPE_CHECKING:
    from steerlab.lab import Lab
    from steerlab.study.schema import MethodEntry


def reused_artifact(lab: Lab, entry: MethodEntry) -> Artifact | None:
    """The artifact ``entry.reuse_from`` holds for this entry at the lab's training seed, if it
    was trained exactly as this study would train it; else None (the caller trains), with the
    reason on stderr."""
    if entry.reuse_from is None:
        return None
    folder, why = source_folder(entry.reuse_from, entry.name, lab.seed)
    if folder is None:
        return _declined(entry, lab.seed, why)
    try:
        artifact = Artifact.load(folder)
    except ConfigError as exc:
        return _declined(entry, lab.seed, str(exc))
    why = mismatch(lab, entry, artifact, folder, entry.reuse_from)
    if why:
        return _declined(entry, lab.seed, f"{folder}: {why}")
    assert artifact.header is not None  # mismatch() refuses an artifact without one
    artifact.header = dataclasses.replace(artifact.header, train_seed=lab.seed, reused_from=str(folder))
    print(f"steerlab: {entry.name}@{lab.seed}: reusing the artifact trained in {folder} "
          f"({artifact.header.train_seconds:.0f} s of training not repeated)", file=sys.stderr)
    return artifact


def source_folder(run: Path, name: str, seed: int) -> tuple[Path | None, str]:
    """The folder of ``run``'s artifact of entry ``name`` at training seed ``seed``: its
    ``seed-K`` folder, or the entry's own folder when that run trained at this one seed only."""
    if not run.is_dir():
        return None, f"{run}: no such run folder"
    per_seed = run / "methods" / name / f"seed-{seed}"
    if Artifact.exists(per_seed):
        return per_seed, ""
    plain = run / "methods" / name
    if Artifact.exists(plain):
        seeds = _run_seeds(run)
        if seeds == [seed]:
            return plain, ""
        return None, f"{plain}: trained in a run with seeds {seeds}, not at seed {seed} alone"
    return None, f"{run}: no kept artifact of entry '{name}' at seed {seed} (a published run keeps JSON only)"


def mismatch(lab: Lab, entry: MethodEntry, artifact: Artifact, folder: Path, run: Path) -> str:
    """Why ``artifact`` (in ``folder`` of ``run``) is not what this study would train for ``entry``; "" when it is."""
    header = artifact.header
    if header is None:
        return "the artifact has no header (not written by a steerlab run)"
    try:
        artifact.check_made_for(entry.method, describe(lab.model), folder / "artifact.json")
    except ConfigError as exc:
        return str(exc).split(": ", 1)[-1]
    if header.train_seed is not None and header.train_seed != lab.seed:
        return f"trained at seed {header.train_seed}, not {lab.seed}"
    sweep_only = set(getattr(lab.registry.methods[entry.method], "sweep_keys", ()))
    theirs, mine = _training_keys(header.config, sweep_only), _training_keys(as_dict(entry.config), sweep_only)
    differ = sorted(k for k in theirs.keys() | mine.keys() if theirs.get(k) != mine.get(k))  # JSON strings: None is a missing key
    if differ:
        key = differ[0]
        return f"trained with {key} = {theirs.get(key, '(unset)')}, this study has {key} = {mine.get(key, '(unset)')}"
    if header.versions != versions():
        return f"trained with {header.versions}, this process has {versions()}"
    recorded = _run_json(run).get("data_sha256", {})
    for path in path_values(entry.config):
        digest = recorded.get(str(path)) if isinstance(recorded, dict) else None
        if digest is None:
            return f"its run did not record the digest of {path}"
        if not path.is_file() or file_digest(path) != digest:
            return f"{path} changed since that run began (sha256 {digest} recorded)"
    return ""


def _training_keys(config: dict[str, Any], sweep_only: set[str]) -> dict[str, str]:
    """A config's training-relevant keys, each as canonical JSON (lists and tuples alike)."""
    return {k: json.dumps(v, sort_keys=True) for k, v in config.items() if k not in sweep_only}


def _run_json(run: Path) -> dict[str, Any]:
    """The run's request (``run.json``), or {} when it has none readable."""
    try:
        data = json.loads((run / "run.json").read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _run_seeds(run: Path) -> list[int] | None:
    seeds = _run_json(run).get("seeds")
    return seeds if isinstance(seeds, list) else None


def _declined(entry: MethodEntry, seed: int, why: str) -> None:
    print(f"steerlab: {entry.name}@{seed}: not reusing an artifact ({why}); training it", file=sys.stderr)
    return None
