"""The tables of a study file, as frozen dataclasses (help text in one place)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from steerlab import config as cfg
from steerlab.controls import Control, ControlSpace
from steerlab.data.split import in_dev_half
from steerlab.model.architectures import Architecture
from steerlab.model.generation import GenerationSettings

MAX_SEED = 2**31 - 1


@dataclass(frozen=True)
class StudyMeta:
    name: str
    model: str = cfg.help_field("smollm2-135m-instruct", "zoo name, local path or hub id")
    seed: int | None = cfg.help_field(None, f"0..{MAX_SEED}: one training seed (default 0); every random draw derives from it")
    seeds: list[int] | None = cfg.help_field(None, "distinct training seeds, e.g. [0, 1, 2]: every trained entry is trained and "
                                                   "swept once per seed (instead of 'seed')")
    description: str = ""
    device: str = cfg.help_field("auto", "auto (CUDA when present), cpu, cuda, cuda:1, ...")
    dtype: str = cfg.help_field("auto", "auto (fp32 on CPU, bf16 on GPU), float32, bfloat16, float16")
    plugins: list[str] = cfg.help_field([], "local plugin files, relative to the study file")
    reports: list[str] = cfg.help_field([], "study-level reports to add (steerlab plugins lists them), e.g. transfer")

    def __post_init__(self) -> None:
        if not self.name or not self.name.replace("-", "").replace("_", "").isalnum():
            raise ValueError(f"key 'name' must be letters, digits, '-' or '_' (got {self.name!r})")
        if self.seed is not None and self.seeds is not None:
            raise ValueError("give either key 'seed' (one seed) or key 'seeds' (a list), not both")
        if self.seed is not None and not 0 <= self.seed <= MAX_SEED:
            raise ValueError(f"key 'seed' must be between 0 and {MAX_SEED} (got {self.seed})")
        if self.seeds is not None:
            bad = [s for s in self.seeds if not 0 <= s <= MAX_SEED]
            if not self.seeds or bad or len(set(self.seeds)) != len(self.seeds):
                raise ValueError(f"key 'seeds' must be a non-empty list of distinct integers between 0 and {MAX_SEED} "
                                 f"(got {self.seeds})")

    @property
    def seed_list(self) -> list[int]:
        """The training seeds, in the study's order (``seed = N`` is one seed; neither: seed 0)."""
        if self.seeds is not None:
            return list(self.seeds)
        return [self.seed if self.seed is not None else 0]

    @property
    def first_seed(self) -> int:
        """The seed of everything shared by all seeds: judges, unsteered answers, untrained methods."""
        return self.seed_list[0]


@dataclass(frozen=True)
class DataSettings:
    eval: str = cfg.path_field(help="JSONL of held-out prompts ({'text': ...} per line)", jsonl=("text",))
    eval_limit: int | None = cfg.help_field(None, "use only the first N eval prompts (after the split)")
    split: str = cfg.help_field("all", "all, dev or test: a stable half of the eval prompts (by a hash of the text), so "
                                       "settings tuned on dev are reported on test")

    def __post_init__(self) -> None:
        if self.eval_limit is not None and self.eval_limit < 1:
            raise ValueError(f"key 'eval_limit' must be >= 1 (got {self.eval_limit})")
        if self.split not in ("all", "dev", "test"):
            raise ValueError(f"key 'split' must be 'all', 'dev' or 'test' (got {self.split!r})")

    def select(self, prompts: list[str]) -> list[str]:
        """The prompts of this split, then the first ``eval_limit`` of them."""
        chosen = [p for p in prompts if self.split == "all" or in_dev_half(p) == (self.split == "dev")]
        return chosen[: self.eval_limit] if self.eval_limit else chosen


@dataclass(frozen=True)
class ParetoSettings:
    axes: list[str] = cfg.help_field([], "score names forming the front, e.g. judge.helpful (empty: no comparison)")
    anchor: str = cfg.help_field("", "method compared against every other (default: the first)")
    also: list[str] = cfg.help_field([], "a second set of axes (a second judge's scores, e.g. lm.helpful) compared the same way")
    candidates: list[str] = cfg.help_field([], "entries among which the study picks a winning setting against the anchor, read from "
                                               "the paired hypervolume intervals on every judge's axes (needs [data] split = \"dev\")")


@dataclass(frozen=True)
class CompareSettings:
    concepts: dict[str, str] = cfg.help_field({}, "concept -> its score: a judge score (judge.humorous) or -SCORE for one that should fall (-words)")
    reference: str = cfg.help_field("base", "the unsteered method entry: its median is what a falling concept score (-words) is "
                                                  "measured against (instruction and fluency use the fixed scales)")
    dev_share: float = cfg.help_field(0.5, "share of requests (by a stable hash) used to choose each method's control")
    test_chosen_only: bool = cfg.help_field(True, "generate a strength entry (concept = ...) on the test requests only at the control chosen on dev")
    scales: str = cfg.path_field("", help="scales.json: the fixed 0-2 instruction and fluency scales (steerlab data build compare-scales); "
                                          "required with concepts")

    def __post_init__(self) -> None:
        if not 0.1 <= self.dev_share <= 0.9:
            raise ValueError(f"key 'dev_share' must be between 0.1 and 0.9 (got {self.dev_share})")
        bad = [k for k, v in self.concepts.items() if not isinstance(v, str) or not v.lstrip("-")]
        if bad:
            raise ValueError(f"key 'concepts': concept {bad[0]!r} needs a score name, e.g. \"judge.{bad[0]}\" or \"-words\"")


def _ray_amount(value: float) -> bool:
    """A resource amount Ray accepts: a fraction below 1 (tasks share the unit) or a whole number."""
    return 0 <= value < 1 or float(value).is_integer()


@dataclass(frozen=True)
class ExecutorSettings:
    """``[executor]``: what each (method entry, seed) task of ``steerlab run --executor ray`` asks
    the cluster for. The in-process run ignores it."""

    gpus_per_task: float | None = cfg.help_field(None, "GPUs per task; a fraction packs tasks on one GPU (0.25: four); "
                                                       "default 1 when CUDA is present, else 0")
    cpus_per_task: float = cfg.help_field(1.0, "CPU cores per task (a whole number also sets the task's torch threads)")

    def __post_init__(self) -> None:
        for key, value in (("gpus_per_task", self.gpus_per_task), ("cpus_per_task", self.cpus_per_task)):
            if value is not None and (value < 0 or not _ray_amount(value)):
                raise ValueError(f"key '{key}' must be a fraction between 0 and 1 or a whole number (got {value})")
        if self.cpus_per_task == 0:
            raise ValueError("key 'cpus_per_task' must be > 0 (a task's model runs on its CPU threads even beside a GPU)")

    def gpus(self, cuda_present: bool) -> float:
        """The GPUs a task asks for: the study's, else one when CUDA is present."""
        if self.gpus_per_task is not None:
            return self.gpus_per_task
        return 1.0 if cuda_present else 0.0


@dataclass(frozen=True)
class MethodEntry:
    """One ``[methods.NAME]`` table: which plugin method, on which model (the study's unless the
    table says ``model = ...``), its config, its control space and sweep."""

    name: str
    method: str
    config: Any
    space: ControlSpace
    controls: list[Control]
    model: str = ""
    concept: str = ""  # the concept every control steers towards (``[compare]``); "" for none or per-dimension
    reuse_from: Path | None = None  # a run folder whose artifact of this entry (same seed, same training settings) is reused


@dataclass(frozen=True)
class MetricEntry:
    """One metric in ``[metrics] use``, with its ``[metrics.NAME]`` settings. ``metric``: the
    registered metric the table runs when its name is not one (``metric = "lm_judge"`` under
    ``[metrics.lm_judge_gemma]``), so one metric can run twice in a study with two settings."""

    name: str
    config: Any
    metric: str = ""

    @property
    def registered(self) -> str:
        """The registered metric's name (the table's own name unless it says ``metric = ...``)."""
        return self.metric or self.name


@dataclass(frozen=True)
class Study:
    path: Path
    raw: dict[str, Any]
    meta: StudyMeta
    data: DataSettings
    generation: GenerationSettings
    metrics: list[MetricEntry]
    methods: list[MethodEntry] = field(default_factory=list)
    quick: bool = False
    pareto: ParetoSettings = field(default_factory=ParetoSettings)
    compare: CompareSettings = field(default_factory=CompareSettings)
    architecture: Architecture | None = None  # [architecture]: where the study model keeps its parts, if not found alone
    executor: ExecutorSettings = field(default_factory=ExecutorSettings)  # [executor]: resources per task of a Ray run

    @property
    def base_dir(self) -> Path:
        return self.path.parent

    @property
    def metric_names(self) -> list[str]:
        return [m.name for m in self.metrics]

    def method(self, name: str) -> MethodEntry:
        return next(m for m in self.methods if m.name == name)

    @property
    def models(self) -> list[str]:
        """Every model the study steers, the study's own first."""
        return list(dict.fromkeys([self.meta.model, *(m.model for m in self.methods)]))

    def data_files(self) -> list[Path]:
        """Every file the study reads (eval prompts, method and metric data), once each."""
        configs = [self.data, *(m.config for m in self.methods), *(m.config for m in self.metrics), *([self.compare] if self.compare.scales else [])]
        return list(dict.fromkeys(p for c in configs for p in cfg.path_values(c)))
