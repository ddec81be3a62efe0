"""TOML study file -> validated ``Study``. Every error names the file, the key and what was expected.

A study declares the model, data, generation settings, metrics (with their own tables) and the
methods to run; each ``[methods.NAME]`` table is validated into that method's own ``Config`` and
its ``controls`` through the method's control space. ``--set a.b=v`` overrides any key before
validation; ``--quick`` applies the study's ``[quick]`` overrides and the control spaces' own
thinning. The ``[quick]`` table is validated on every load, so a typo in it never waits for the
first quick run.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import tomllib
from pathlib import Path
from typing import Any

from steerlab import config as cfg
from steerlab.errors import ConfigError
from steerlab.model.architectures import Architecture
from steerlab.model.generation import GenerationSettings
from steerlab.registry import Registry
from steerlab.storage import read_text_file
from steerlab.study.schema import CompareSettings, DataSettings, ExecutorSettings, MethodEntry, MetricEntry, ParetoSettings, Study, StudyMeta

QUICK_EVAL_LIMIT = 6
TOP_LEVEL = {"study", "data", "generation", "metrics", "methods", "quick", "pareto", "compare", "architecture", "executor"}
MOVED = {"judge": "the judge's settings live in [metrics.judge]"}


def read_toml(path: Path) -> dict[str, Any]:
    text = read_text_file(path, "study file")
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None


def parse_override(text: str) -> tuple[list[str], Any]:
    """``a.b.c=value`` -> (['a','b','c'], value); the value is read as TOML, else as a string."""
    if "=" not in text or not text.split("=", 1)[0].strip():
        raise ConfigError(f"--set {text!r}: expected KEY.PATH=VALUE")
    key, raw = text.split("=", 1)
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw
    return key.strip().split("."), value


def toml_value(value: Any, key: str) -> str:
    """A Python value (number, bool, string, path, list, dict) as the TOML text ``parse_override``
    reads back to it, so an override given in Python is kept in ``run.json`` as ``--set`` text."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(float(value)) if isinstance(value, float) else str(value)
    if isinstance(value, (str, Path)):
        return json.dumps(str(value))  # a JSON string is a TOML basic string
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v, key) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(str(k))} = {toml_value(v, key)}" for k, v in value.items()) + "}"
    raise ConfigError(f"override {key!r}: {value!r} has no TOML form (expected a number, bool, string, list or dict)")


def override_text(key: str, value: Any) -> str:
    """``("data.eval_limit", 4)`` -> ``"data.eval_limit=4"``: a Python override as ``--set`` text."""
    if not isinstance(key, str) or not all(part.strip() for part in key.split(".")) or "=" in key:
        raise ConfigError(f"override {key!r}: expected a dotted study key such as 'data.eval_limit'")
    return f"{key}={toml_value(value, key)}"


def apply_override(raw: dict[str, Any], keys: list[str], value: Any, where: str) -> None:
    node = raw
    for key in keys[:-1]:
        node = node.setdefault(key, {})
        if not isinstance(node, dict):
            raise ConfigError(f"{where}: '{'.'.join(keys)}' goes through a non-table key '{key}'")
    node[keys[-1]] = value


def with_quick(path: Path, raw: dict[str, Any]) -> dict[str, Any]:
    """The raw study with its ``[quick]`` overrides applied."""
    quick = raw.get("quick", {})
    if not isinstance(quick, dict):
        raise ConfigError(f"{path}: [quick] expected a table of 'dotted.key' = value")
    out = copy.deepcopy(raw)
    for dotted, value in quick.items():
        apply_override(out, dotted.split("."), copy.deepcopy(value), f"{path}: [quick] key '{dotted}'")
    return out


def load_study(path: Path | str, registry: Registry, overrides: list[str] = (), quick: bool = False) -> Study:  # type: ignore[assignment]
    """Read, override, validate (the ``[quick]`` variant is validated too, always)."""
    path = Path(path).resolve()
    raw = read_toml(path)
    for text in overrides:
        apply_override(raw, *parse_override(text), where=f"{path}: --set")
    plain = validate(path, raw, registry)
    quick_study = validate(path, with_quick(path, raw), registry, quick=True, where_suffix=" (with its [quick] overrides)")
    return quick_study if quick else plain


def validate(path: Path, raw: dict[str, Any], registry: Registry, quick: bool = False, where_suffix: str = "") -> Study:
    try:
        return _validate(path, raw, registry, quick)
    except ConfigError as exc:
        if where_suffix and str(exc).startswith(f"{path}:"):
            raise ConfigError(f"{path}{where_suffix}:{str(exc)[len(str(path)) + 1:]}") from None
        raise


def _validate(path: Path, raw: dict[str, Any], registry: Registry, quick: bool) -> Study:
    unknown = sorted(set(raw) - TOP_LEVEL)
    if unknown:
        hint = f"; {MOVED[unknown[0]]}" if unknown[0] in MOVED else ""
        raise ConfigError(f"{path}: unknown table '{unknown[0]}' (expected: {', '.join(sorted(TOP_LEVEL))}){hint}")
    base = path.parent
    if "study" not in raw:
        raise ConfigError(f"{path}: missing table [study] (with at least name = ...)")
    meta = cfg.build(StudyMeta, raw["study"], f"{path}: [study]", base)
    for name in meta.reports:
        registry.get("reports", name, f"{path}: [study] key 'reports'")
    _check_device(path, meta)
    _check_model(f"{path}: [study]", meta.model, registry)
    data = cfg.build(DataSettings, raw.get("data", {}), f"{path}: [data]", base)
    if quick and (data.eval_limit is None or data.eval_limit > QUICK_EVAL_LIMIT):
        data = dataclasses.replace(data, eval_limit=QUICK_EVAL_LIMIT)
    generation = cfg.build(GenerationSettings, raw.get("generation", {}), f"{path}: [generation]", base)
    registry.get("backends", generation.backend, f"{path}: [generation] key 'backend'")
    metrics = _metric_entries(path, raw.get("metrics", {}), registry)
    methods = [_method_entry(path, name, table, registry, quick, meta.model) for name, table in _method_tables(path, raw)]
    if not methods:
        raise ConfigError(f"{path}: no [methods.NAME] table (a study runs at least one method)")
    pareto = cfg.build(ParetoSettings, raw.get("pareto", {}), f"{path}: [pareto]", base)
    _check_pareto(path, pareto, metrics, methods, registry)
    _check_candidates(path, pareto, data, methods)
    try:
        compare = cfg.build(CompareSettings, raw.get("compare", {}), f"{path}: [compare]", base)
    except ConfigError as exc:
        hint = " (write it with `steerlab data build compare-scales --from studies/data/chat3d --out FOLDER`)" if "key 'scales'" in str(exc) else ""
        raise ConfigError(f"{exc}{hint}") from None
    _check_compare(path, compare, metrics, methods, registry)
    architecture = cfg.build(Architecture, raw["architecture"], f"{path}: [architecture]", base) if "architecture" in raw else None
    executor = cfg.build(ExecutorSettings, raw.get("executor", {}), f"{path}: [executor]", base)
    return Study(path, raw, meta, data, generation, metrics, methods, quick, pareto, compare, architecture, executor)


def _check_model(where: str, name: str, registry: Registry) -> None:
    from steerlab.model.zoo import unknown_model

    why = unknown_model(name, registry.models)
    if why:
        raise ConfigError(f"{where}: key 'model': {why}")


def _check_device(path: Path, meta: StudyMeta) -> None:
    from steerlab.model.zoo import pick_device, pick_dtype

    try:
        pick_dtype(meta.dtype, pick_device(meta.device))
    except ConfigError as exc:
        raise ConfigError(f"{path}: [study]: {exc}") from None


def _metric_entries(path: Path, table: Any, registry: Registry) -> list[MetricEntry]:
    where = f"{path}: [metrics]"
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: expected a table with 'use' (a list of metric names) and [metrics.NAME] settings")
    names = table.get("use", ["length"])
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise ConfigError(f"{where}: key 'use' expected a list of strings, got {names!r}")
    if len(set(names)) != len(names):
        raise ConfigError(f"{where}: key 'use' lists a metric twice")
    settings = {k: v for k, v in table.items() if k != "use"}
    for key, value in settings.items():
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: unknown key '{key}' (expected 'use' and [metrics.NAME] tables)")
    aliases = {k: _metric_alias(path, k, v) for k, v in settings.items()}
    for name in names:
        registry.get("metrics", aliases.get(name) or name, f"{where} key 'use'")
    for key, value in settings.items():
        metric = registry.get("metrics", aliases[key] or key, f"{path}: [metrics.{key}]")
        if key not in names:  # settings kept for later (--set metrics.use=...): still checked now
            cfg.build(metric.Config, _own(value), f"{path}: [metrics.{key}]", path.parent)
    entries = []
    for name in names:
        metric = registry.get("metrics", aliases.get(name) or name, f"{where} key 'use'")
        config = cfg.build(metric.Config, _own(settings.get(name, {})), f"{path}: [metrics.{name}]", path.parent)
        entries.append(MetricEntry(name, config, aliases.get(name) or ""))
    return entries


def _metric_alias(path: Path, key: str, value: dict[str, Any]) -> str:
    """A ``[metrics.NAME]`` table's ``metric = "..."``: the registered metric it runs ("" for NAME itself)."""
    alias = value.get("metric", "")
    if not isinstance(alias, str):
        raise ConfigError(f"{path}: [metrics.{key}] key 'metric' expected a registered metric's name, got {alias!r}")
    return alias


def _own(value: dict[str, Any]) -> dict[str, Any]:
    """A metric table's settings for its config (``metric`` is the loader's key, not the metric's)."""
    return {k: v for k, v in value.items() if k != "metric"}


def _check_pareto(path: Path, pareto: ParetoSettings, metrics: list[MetricEntry], methods: list[MethodEntry], registry: Registry) -> None:
    where = f"{path}: [pareto]"
    if pareto.anchor and pareto.anchor not in {m.name for m in methods}:
        raise ConfigError(f"{where} key 'anchor': no method '{pareto.anchor}' in this study")
    produced = [k for m in metrics for k in registry.metrics[m.registered].outputs(m.config)]
    for key, axes in (("axes", pareto.axes), ("also", pareto.also)):
        missing = [a for a in axes if a not in produced]
        if missing:
            raise ConfigError(f"{where} key '{key}': no metric in use produces '{missing[0]}' (produced: {', '.join(produced) or 'none'})")
        if axes and len(axes) < 2:
            raise ConfigError(f"{where} key '{key}': a front needs at least two axes, got {axes}")
    if pareto.also and not pareto.axes:
        raise ConfigError(f"{where} key 'also': give 'axes' first")


def _check_candidates(path: Path, pareto: ParetoSettings, data: DataSettings, methods: list[MethodEntry]) -> None:
    """A pick is a choice: it needs an anchor to beat, fronts to read, and the dev prompts only."""
    if not pareto.candidates:
        return
    where = f"{path}: [pareto] key 'candidates'"
    names = {m.name for m in methods}
    unknown = [c for c in pareto.candidates if c not in names]
    if unknown:
        raise ConfigError(f"{where}: no method '{unknown[0]}' in this study")
    if not pareto.axes or not pareto.anchor or pareto.anchor in pareto.candidates:
        raise ConfigError(f"{where}: a pick needs 'axes' and an 'anchor' that is not a candidate")
    if data.split != "dev":
        raise ConfigError(f"{where}: a winning setting is chosen on the dev prompts only (set [data] split = \"dev\", got '{data.split}')")


def _check_compare(path: Path, compare: CompareSettings, metrics: list[MetricEntry], methods: list[MethodEntry], registry: Registry) -> None:
    where = f"{path}: [compare]"
    unknown = sorted({m.concept for m in methods if m.concept} - set(compare.concepts))
    if unknown:
        raise ConfigError(f"{path}: a method table names concept '{unknown[0]}', which [compare] concepts does not list")
    if not compare.concepts:
        return
    if compare.reference not in {m.name for m in methods}:
        raise ConfigError(f"{where} key 'reference': no method entry '{compare.reference}' in this study")
    if not compare.scales:
        raise ConfigError(f"{where} key 'scales': missing; expected the fixed instruction and fluency scales file (scales.json, "
                          "written by `steerlab data build compare-scales --from studies/data/chat3d --out studies/data/compare`)")
    produced = set(k for m in metrics for k in registry.metrics[m.registered].outputs(m.config))
    needed = {k.lstrip("-") for k in compare.concepts.values()} | {"relevance", "perplexity", "distinct3"}
    missing = sorted(needed - produced)
    if missing:
        raise ConfigError(f"{where}: no metric in use produces '{missing[0]}' (the comparison needs the concepts' scores and "
                          "relevance, perplexity, distinct3: metrics relevance and fluency)")


def _method_tables(path: Path, raw: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    methods = raw.get("methods", {})
    if not isinstance(methods, dict) or not all(isinstance(t, dict) for t in methods.values()):
        raise ConfigError(f"{path}: [methods] expected tables like [methods.actdiff]")
    return list(methods.items())


# Keys every [methods.NAME] table may hold beside its method's own: read here, not by the method.
ENTRY_KEYS = ("method", "model", "concept", "reuse_from", "controls")


def _method_entry(path: Path, name: str, table: dict[str, Any], registry: Registry, quick: bool, study_model: str) -> MethodEntry:
    where = f"{path}: [methods.{name}]"
    if not name.replace("-", "").replace("_", "").isalnum():
        raise ConfigError(f"{where}: a method entry's name must be letters, digits, '-' or '_'")
    table = dict(table)
    method_name = table.pop("method", name)
    if not isinstance(method_name, str):
        raise ConfigError(f"{where}: key 'method' expected a string, got {method_name!r}")
    method = registry.get("methods", method_name, f"{where} key 'method'")
    model = table.pop("model", study_model)
    _check_model(where, model, registry)
    concept = table.pop("concept", "")
    if not isinstance(concept, str):
        raise ConfigError(f"{where}: key 'concept' expected a concept name (one of [compare] concepts), got {concept!r}")
    reuse_from = table.pop("reuse_from", None)
    if reuse_from is not None and (not isinstance(reuse_from, str) or not reuse_from):
        raise ConfigError(f"{where}: key 'reuse_from' expected the path of a run folder (relative to the study file), got {reuse_from!r}")
    controls = table.pop("controls", None)
    config = cfg.build(method.Config, table, where, path.parent, also=ENTRY_KEYS)
    try:
        space = method.control_space(config)
    except ValueError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    if controls is not None and (not isinstance(controls, list) or not controls):
        raise ConfigError(f"{where}: key 'controls' expected a non-empty list of {space.label} values, got {controls!r}")
    try:
        checked = space.default_grid() if controls is None else space.check_all(controls)
    except ValueError as exc:
        raise ConfigError(f"{where}: key 'controls': method '{method_name}': {exc}") from None
    return MethodEntry(name, method_name, config, space, space.quick(checked) if quick else checked, model, concept,
                       None if reuse_from is None else (path.parent / reuse_from).resolve())
