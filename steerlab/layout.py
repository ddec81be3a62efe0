"""Where everything of one run lives on disk. The only place that knows the run-folder layout.

    RUN/study.toml                   the study as run
    RUN/run.json                     the request (absolute paths, overrides, data hashes) for --resume
    RUN/base_generations[.MODEL].json  unsteered answers to the eval prompts (shared by the methods on a model)
    RUN/methods/NAME/artifact.*      the trained artifact (safetensors + JSON); with several training
                                     seeds, each seed's files sit in RUN/methods/NAME/seed-K/
    RUN/methods/NAME/sweep.partial.json   finished batches of an unfinished sweep
    RUN/methods/NAME/result.json     the finished sweep
    RUN/methods/NAME/analysis.json   the method's extras; its figures sit beside it
    RUN/methods/NAME/cost.json       training seconds and tokens, extra memory: a finished entry needs no artifact
    RUN/metrics/NAME/                a metric's own state (the judge's coefficients)
    RUN/figures/*.png                figures of the report
    RUN/inspect/                     what ``steerlab inspect`` writes
    RUN/results.json, RUN/report.md  the results and the report a person reads
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from steerlab.errors import ConfigError


@dataclass(frozen=True)
class RunLayout:
    root: Path
    seed: int | None = None  # set: the method folders of one training seed (a multi-seed study)
    shared: frozenset[str] = frozenset()  # entries run once for every seed (untrained): unsuffixed even with a seed

    def for_seed(self, seed: int | None, shared: frozenset[str] = frozenset()) -> "RunLayout":
        """The same run, its method folders those of training seed ``seed`` (None: unsuffixed),
        except the ``shared`` entries' (run once for all seeds)."""
        return RunLayout(self.root, seed, shared)

    @classmethod
    def create(cls, out: Path, study_name: str) -> "RunLayout":
        """A new, empty run folder ``out/<study>-<timestamp>[-k]``."""
        if out.exists() and not out.is_dir():
            raise ConfigError(f"--out {out}: exists and is not a folder")
        stamp = time.strftime("%Y%m%d-%H%M%S")
        root, suffix = out / f"{study_name}-{stamp}", 1
        while True:
            try:
                root.mkdir(parents=True)
                return cls(root)
            except FileExistsError:
                suffix += 1
                root = out / f"{study_name}-{stamp}-{suffix}"
            except OSError as exc:
                raise ConfigError(f"--out {out}: cannot create a run folder there ({exc.strerror})") from None

    @classmethod
    def open(cls, root: Path) -> "RunLayout":
        """An existing run folder (it must hold run.json)."""
        layout = cls(root.resolve())
        if not layout.request.is_file():
            raise ConfigError(f"{root}: not a run folder (no run.json)")
        return layout

    @property
    def study(self) -> Path:
        return self.root / "study.toml"

    @property
    def request(self) -> Path:
        return self.root / "run.json"

    def base_generations(self, model: str = "") -> Path:
        """Unsteered answers of the study's model (or of another model a method entry names)."""
        if not model:
            return self.root / "base_generations.json"
        slug = "".join(c if c.isalnum() or c in "-_." else "_" for c in model)
        return self.root / f"base_generations.{slug}.json"

    @property
    def results(self) -> Path:
        return self.root / "results.json"

    @property
    def report(self) -> Path:
        return self.root / "report.md"

    @property
    def figures(self) -> Path:
        return self.root / "figures"

    @property
    def inspect(self) -> Path:
        return self.root / "inspect"

    def figure(self, stem: str) -> Path:
        return self.figures / f"{stem}.png"

    def method(self, name: str) -> Path:
        """The folder of one method entry (of one seed): artifact, sweep, analysis and its figures."""
        folder = self.root / "methods" / name
        return folder if self.seed is None or name in self.shared else folder / f"seed-{self.seed}"

    def result(self, name: str) -> Path:
        return self.method(name) / "result.json"

    def sweep_partial(self, name: str, stage: str = "") -> Path:
        """Finished batches of a sweep (``stage``: a staged sweep's second part, e.g. ``test``)."""
        return self.method(name) / (f"sweep.{stage}.partial.json" if stage else "sweep.partial.json")

    def cost(self, name: str) -> Path:
        """What training the entry cost (seconds, tokens, memory), so a finished piece never
        needs its artifact loaded again (a run folder can be kept without its tensors)."""
        return self.method(name) / "cost.json"

    def analysis(self, name: str) -> Path:
        return self.method(name) / "analysis.json"

    def metric(self, name: str) -> Path:
        return self.root / "metrics" / name

    def metric_section(self, name: str) -> Path:
        """A metric's own report section (the judge's accuracy...), kept so a resume skips it."""
        return self.metric(name) / "section.json"

    def relative(self, path: Path) -> str:
        """A path inside the run as the report and results.json write it."""
        return str(path.resolve().relative_to(self.root.resolve()))
