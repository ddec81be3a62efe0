"""The ``vector`` method: a llama.cpp control vector (.gguf) as a steerlab method, and the two
commands around it (``steerlab export gguf`` / ``steerlab import gguf``).

``train`` reads the file into an artifact with one ``ResidualVector`` per layer
(``direction.N`` at ``blocks.N.resid_post``, see ``steerlab.gguf`` for why N maps to N), and
``steer`` adds all of them times each row's control: control 1 is what llama.cpp adds with
``--control-vector FILE``, times ``scale``.
"""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
import tempfile
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from steerlab import gguf as cv
from steerlab.artifact import Artifact
from steerlab.config import help_field, path_field
from steerlab.controls import ControlSpace, Scalar
from steerlab.data.files import file_digest
from steerlab.errors import ConfigError
from steerlab.method import BaseMethod
from steerlab.storage import write_json, write_jsonl

if TYPE_CHECKING:
    from steerlab.lab import Lab


@dataclass(frozen=True)
class VectorConfig:
    file: str = path_field(help="a llama.cpp control vector (.gguf: arch controlvector, tensors direction.N)")
    scale: float = help_field(1.0, "multiplies every direction (control c adds c * scale * direction.N at block N's output)")


class VectorMethod(BaseMethod):
    """A fixed residual-stream vector per layer, read from a llama.cpp control-vector file."""

    name = "vector"
    description = "a llama.cpp control vector (.gguf), added at the output of each block it names"
    Config = VectorConfig
    trains = False  # a fixed vector read from a file

    def control_space(self, config: VectorConfig) -> ControlSpace:
        return Scalar("strength", grid=[-1.0, 0.0, 1.0])

    def _read(self, lab: Lab, config: VectorConfig) -> tuple[dict[int, torch.Tensor], str]:
        vectors, hint = cv.import_control_vector(config.file)
        cv.check_fits(vectors, lab.model.d_model, lab.model.n_layers, lab.model.name, config.file)
        return vectors, hint

    def check(self, lab: Lab, config: VectorConfig) -> None:
        self._read(lab, config)

    def train(self, lab: Lab, config: VectorConfig) -> Artifact:
        vectors, hint = self._read(lab, config)
        tensors, decls = cv.as_residual_vectors(vectors, config.scale)
        meta = {"file": config.file, "file_sha256": file_digest(Path(config.file)), "model_hint": hint,
                "blocks": list(vectors), "describe": f"control vector {Path(config.file).name}"}
        return Artifact(tensors, meta, sites=[d.site for d in decls], vectors=decls)

    def steer(self, lab: Lab, artifact: Artifact, controls: torch.Tensor) -> AbstractContextManager[None]:
        return lab.engine.add_vectors(artifact.vectors, artifact.tensors, controls)


def export_run(run_dir: Path, out: Path, method: str | None = None, strength: str | None = None,
               index: int | None = 0, plugin_files: list[str] = ()) -> tuple[Path, str, float]:  # type: ignore[assignment]
    """``steerlab export gguf``: a run's trained vector as a llama.cpp control vector. ``strength``
    is read by the method's control space (default: the last control of the entry's sweep, as
    ``steerlab generate`` does). Returns (file, entry name, strength)."""
    from steerlab.model.zoo import describe
    from steerlab.run.tools import open_run

    run = open_run(run_dir, method, plugin_files, accept=lambda e, a: bool(a.vectors),
                   wanted=" that declares a residual-stream vector")
    try:
        control = run.entry.space.parse(strength) if strength is not None else run.entry.controls[-1]
    except ValueError as exc:
        raise ConfigError(f"--strength {strength!r} for method '{run.entry.name}': {exc}") from None
    if not isinstance(control, float):
        raise ConfigError(f"method '{run.entry.name}' has no scalar strength to bake into a control vector")

    cv.export_control_vector(run.artifact, describe(run.lab.model), out, control, index)
    return out, run.entry.name, control


IMPORT_PROMPTS = ["Why is the sky blue?", "Give me a tip for learning to cook.", "What is a good name for a cat?",
                  "Explain what a computer does.", "How do plants grow?", "Tell me about the ocean."]


def import_study(name: str, model: str, file: Path) -> str:
    """The study an imported control vector runs in (paths relative to the run folder)."""
    return "\n".join([
        "# Written by `steerlab import gguf`: a llama.cpp control vector as a steerlab method.",
        "[study]", f"name = {json.dumps(name)}", f"model = {json.dumps(model)}",
        f"description = {json.dumps(f'llama.cpp control vector {file.name}, imported')}", "",
        "[data]", 'eval = "eval_prompts.jsonl"', "",
        "[generation]", "max_new_tokens = 64", "",
        "[metrics]", 'use = ["length"]', "",
        "[methods.vector]", f"file = {json.dumps(str(file))}", "",
    ])


def import_run(path: Path, model: str, out: Path) -> Path:
    """``steerlab import gguf``: a run folder (study.toml, eval prompts, run.json, the trained
    artifact) made through the runner, so ``steerlab generate`` / ``inspect`` open it like any run.
    The study points at ``path`` where it is (its sha256 is in run.json and the artifact)."""
    from steerlab.run import runner
    from steerlab.lab import Lab

    path = Path(path).resolve()
    cv.import_control_vector(path)  # a bad file fails here, naming it, before any model loads
    name = "import-" + (re.sub(r"[^A-Za-z0-9_-]+", "-", path.stem).strip("-") or "vector")
    with tempfile.TemporaryDirectory() as tmp:
        staged = Path(tmp) / "study.toml"
        staged.write_text(import_study(name, model, path), encoding="utf-8")
        write_jsonl(Path(tmp) / "eval_prompts.jsonl", [{"text": t} for t in IMPORT_PROMPTS])
        try:
            session = runner.start(runner.RunRequest(str(staged)), out, show_progress=False)
        except ConfigError as exc:  # name the command, not the staging file
            raise ConfigError(str(exc).replace(f"{staged}: ", "")) from None
        layout = session.layout
        shutil.copyfile(Path(tmp) / "eval_prompts.jsonl", layout.root / "eval_prompts.jsonl")
    # From now on the run's own study.toml is its study: its relative paths resolve inside the run.
    prompts = (layout.root / "eval_prompts.jsonl").resolve()
    request = dataclasses.replace(session.request, study_path=str(layout.study.resolve()),
                                  data_sha256={str(prompts): file_digest(prompts), str(path): file_digest(path)})
    write_json(layout.request, asdict(request))
    study, registry = runner.plan(request)
    lab = Lab(study=study, model=session.models[study.meta.model], registry=registry, layout=layout, show_progress=False)
    runner.trained_artifact(lab, study.methods[0])
    return layout.root
