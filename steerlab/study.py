"""TOML study file -> validated, frozen dataclasses.

A study declares the model, data, generation settings, judge, metrics and the methods to run,
each method table validated into that method's own ``Config``. ``--set a.b=v`` overrides any key
before validation; ``--quick`` applies the study's ``[quick]`` overrides and core shrink rules.
"""

from __future__ import annotations

import copy
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from steerlab import config as cfg
from steerlab.errors import ConfigError
from steerlab.plugin import Registry

QUICK_EVAL_LIMIT = 6
QUICK_CONTROLS = 3


@dataclass(frozen=True)
class StudyMeta:
    name: str
    model: str = cfg.help_field("smollm2-135m-instruct", "zoo name, local path or hub id")
    seed: int = 0
    description: str = ""
    device: str = cfg.help_field("auto", "auto (CUDA when present), cpu, cuda, cuda:1, ...")
    dtype: str = cfg.help_field("auto", "auto (fp32 on CPU, bf16 on GPU), float32, bfloat16")
    plugins: list[str] = cfg.help_field([], "local plugin files, relative to the study file")

    def __post_init__(self) -> None:
        if not self.name.replace("-", "").replace("_", "").isalnum():
            raise ValueError(f"key 'name' must be letters, digits, '-' or '_' (got {self.name!r})")


@dataclass(frozen=True)
class DataSettings:
    eval: str = cfg.path_field(help="JSONL of held-out prompts ({'text': ...} per line)")
    eval_limit: int | None = cfg.help_field(None, "use only the first N eval prompts")

    def __post_init__(self) -> None:
        if self.eval_limit is not None and self.eval_limit < 1:
            raise ValueError("key 'eval_limit' must be >= 1")


@dataclass(frozen=True)
class GenerationSettings:
    max_new_tokens: int = cfg.help_field(200, "token cap; keep it well above natural answer length")
    batch_size: int = 8
    repetition_penalty: float = 1.0
    do_sample: bool = False
    temperature: float = 1.0
    top_p: float = 1.0

    def __post_init__(self) -> None:
        if self.max_new_tokens < 1 or self.batch_size < 1:
            raise ValueError("max_new_tokens and batch_size must be >= 1")


@dataclass(frozen=True)
class JudgeSettings:
    data: str | None = cfg.path_field(None, "JSONL of labelled texts ({'text', 'label'})")
    test_fraction: float = cfg.help_field(0.25, "held-out share used to report the judge's accuracy")
    C: float = cfg.help_field(1.0, "inverse regularisation strength of the logistic regression")

    def __post_init__(self) -> None:
        if not 0.05 <= self.test_fraction <= 0.5:
            raise ValueError("key 'test_fraction' must be between 0.05 and 0.5")
        if self.C <= 0:
            raise ValueError("key 'C' must be > 0")


@dataclass(frozen=True)
class ParetoSettings:
    axes: list[str] = cfg.help_field([], "score names forming the front, e.g. judge.helpful (empty: no comparison)")
    anchor: str = cfg.help_field("", "method compared against every other (default: the first)")


@dataclass(frozen=True)
class MethodEntry:
    """One ``[methods.NAME]`` table: which plugin method, its config and its control sweep."""

    name: str
    method: str
    config: Any
    controls: list[Any]


@dataclass(frozen=True)
class Study:
    path: Path
    raw: dict[str, Any]
    meta: StudyMeta
    data: DataSettings
    generation: GenerationSettings
    judge: JudgeSettings
    metrics: list[str]
    methods: list[MethodEntry] = field(default_factory=list)
    quick: bool = False
    pareto: ParetoSettings = field(default_factory=ParetoSettings)

    @property
    def base_dir(self) -> Path:
        return self.path.parent


TOP_LEVEL = {"study", "data", "generation", "judge", "metrics", "methods", "quick", "pareto"}


def read_toml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(f"{path}: study file not found")
    try:
        return tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None


def parse_override(text: str) -> tuple[list[str], Any]:
    """``a.b.c=value`` -> (['a','b','c'], value); the value is read as TOML, else as a string."""
    if "=" not in text:
        raise ConfigError(f"--set {text!r}: expected KEY.PATH=VALUE")
    key, raw = text.split("=", 1)
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw
    return key.strip().split("."), value


def apply_override(raw: dict[str, Any], keys: list[str], value: Any, where: str) -> None:
    node = raw
    for key in keys[:-1]:
        node = node.setdefault(key, {})
        if not isinstance(node, dict):
            raise ConfigError(f"{where}: '{'.'.join(keys)}' goes through a non-table key '{key}'")
    node[keys[-1]] = value


def thin_controls(controls: list[Any], keep: int = QUICK_CONTROLS) -> list[Any]:
    """Keep the two ends and the middle (e.g. negative, zero, positive) of a sorted sweep."""
    if len(controls) <= keep:
        return controls
    if all(isinstance(c, (int, float)) for c in controls):
        ordered = sorted(controls)
        middle = min(ordered, key=lambda c: abs(c))
        return sorted({ordered[0], middle, ordered[-1]})
    return [controls[0], controls[len(controls) // 2], controls[-1]]


def load_study(
    path: Path | str,
    registry: Registry,
    overrides: list[str] = (),  # type: ignore[assignment]
    quick: bool = False,
) -> Study:
    """Read, override, validate. Every error names ``path`` and the key."""
    path = Path(path)
    raw = read_toml(path)
    for text in overrides:
        apply_override(raw, *parse_override(text), where=str(path))
    if quick:
        for dotted, value in raw.get("quick", {}).items():
            apply_override(raw, dotted.split("."), copy.deepcopy(value), where=f"{path}: [quick]")
    return validate(path, raw, registry, quick)


def validate(path: Path, raw: dict[str, Any], registry: Registry, quick: bool = False) -> Study:
    unknown = sorted(set(raw) - TOP_LEVEL)
    if unknown:
        raise ConfigError(f"{path}: unknown table '{unknown[0]}' (expected: {', '.join(sorted(TOP_LEVEL))})")
    base = path.parent
    if "study" not in raw:
        raise ConfigError(f"{path}: missing table [study] (with at least name = ...)")
    meta = cfg.build(StudyMeta, raw["study"], f"{path}: [study]", base)
    data = cfg.build(DataSettings, raw.get("data", {}), f"{path}: [data]", base)
    if quick and (data.eval_limit is None or data.eval_limit > QUICK_EVAL_LIMIT):
        data = DataSettings(eval=data.eval, eval_limit=QUICK_EVAL_LIMIT)
    generation = cfg.build(GenerationSettings, raw.get("generation", {}), f"{path}: [generation]", base)
    judge = cfg.build(JudgeSettings, raw.get("judge", {}), f"{path}: [judge]", base)
    metrics = _metric_names(path, raw.get("metrics", {}), registry)
    methods = [_method_entry(path, name, table, registry, quick) for name, table in _method_tables(path, raw)]
    if not methods:
        raise ConfigError(f"{path}: no [methods.NAME] table (a study runs at least one method)")
    if "judge" in metrics and judge.data is None:
        raise ConfigError(f"{path}: [metrics] use includes 'judge' but [judge] has no 'data' file")
    pareto = cfg.build(ParetoSettings, raw.get("pareto", {}), f"{path}: [pareto]", base)
    if pareto.anchor and pareto.anchor not in {m.name for m in methods}:
        raise ConfigError(f"{path}: [pareto] key 'anchor': no method '{pareto.anchor}' in this study")
    return Study(path, raw, meta, data, generation, judge, metrics, methods, quick, pareto)


def _metric_names(path: Path, table: Any, registry: Registry) -> list[str]:
    where = f"{path}: [metrics]"
    if not isinstance(table, dict) or set(table) - {"use"}:
        raise ConfigError(f"{where}: expected only the key 'use' (a list of metric names)")
    names = table.get("use", ["length"])
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise ConfigError(f"{where}: key 'use' expected a list of strings, got {names!r}")
    for name in names:
        registry.get("metrics", name, f"{where} key 'use'")
    return names


def _method_tables(path: Path, raw: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    methods = raw.get("methods", {})
    if not isinstance(methods, dict) or not all(isinstance(t, dict) for t in methods.values()):
        raise ConfigError(f"{path}: [methods] expected tables like [methods.actdiff]")
    return list(methods.items())


def _method_entry(path: Path, name: str, table: dict[str, Any], registry: Registry, quick: bool) -> MethodEntry:
    where = f"{path}: [methods.{name}]"
    table = dict(table)
    method_name = table.pop("method", name)
    method = registry.get("methods", method_name, f"{where} key 'method'")
    controls = table.pop("controls", None)
    config = cfg.build(method.Config, table, where, path.parent)
    controls = method.default_controls(config) if controls is None else controls
    if not isinstance(controls, list) or not controls:
        raise ConfigError(f"{where}: key 'controls' expected a non-empty list, got {controls!r}")
    try:
        controls = [method.check_control(c, config) for c in controls]
    except ValueError as exc:
        raise ConfigError(f"{where}: key 'controls': {exc}") from None
    if quick:
        controls = method.quick_controls(controls)
    return MethodEntry(name=name, method=method_name, config=config, controls=controls)
