"""The typed results of a run, and their strict JSON form (``results.json``).

Every stage hands the next typed objects, never dicts read by key: a ``Record`` per answer, a
``SweepPoint`` per control (the mean of each score), a ``MethodResult`` per method and one
``RunResults``. ``from_json`` checks shape and types, so a hand-edited or truncated file is a
``ConfigError`` naming the file, and ``SCHEMA_VERSION`` says which shape a file has.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from steerlab.errors import ConfigError
from steerlab.storage import read_json_object, write_json

SCHEMA_VERSION = 3
READABLE_VERSIONS = (2, 3)  # 3 added each record's "seed", each method's "seeds" and "intervals"; 2 reads with seed null


class SchemaError(ValueError):
    """A results file does not have the shape this version writes."""


def _number(value: Any, where: str) -> float:
    if value is None:
        return float("nan")  # written as null: NaN or infinite
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise SchemaError(f"{where}: expected a number, got {value!r}")
    return float(value)


def _numbers(data: Any, where: str) -> dict[str, float]:
    if not isinstance(data, dict):
        raise SchemaError(f"{where}: expected an object of numbers")
    return {str(k): _number(v, f"{where}.{k}") for k, v in data.items()}


def _str(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise SchemaError(f"{where}: expected a string, got {value!r}")
    return value


def _list(value: Any, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise SchemaError(f"{where}: expected a list")
    return value


def _dict(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise SchemaError(f"{where}: expected an object")
    return value


def mean_finite(values: list[float]) -> float:
    finite = [v for v in values if v is not None and math.isfinite(v)]
    return float(np.mean(finite)) if finite else float("nan")


@dataclass
class Record:
    """One answer: the prompt, the control (JSON form and label), the text, its scores and the
    training seed of the piece that answered (None in files written before seeds existed)."""

    prompt: str
    control: Any
    label: str
    output: str
    scores: dict[str, float] = field(default_factory=dict)
    seed: int | None = None

    @classmethod
    def from_json(cls, data: Any, where: str) -> "Record":
        data = _dict(data, where)
        seed = data.get("seed")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise SchemaError(f"{where}.seed: expected an integer or null, got {seed!r}")
        return cls(_str(data.get("prompt"), f"{where}.prompt"), data.get("control"), _str(data.get("label"), f"{where}.label"),
                   _str(data.get("output"), f"{where}.output"), _numbers(data.get("scores", {}), f"{where}.scores"), seed)


@dataclass
class SweepPoint:
    """The mean of every score over the prompts answered at one control."""

    control: Any
    label: str
    n: int
    scores: dict[str, float] = field(default_factory=dict)

    @classmethod
    def from_records(cls, control: Any, label: str, records: list[Record]) -> "SweepPoint":
        keys = sorted({k for r in records for k in r.scores})
        return cls(control, label, len(records), {k: mean_finite([r.scores.get(k, float("nan")) for r in records]) for k in keys})

    @classmethod
    def from_json(cls, data: Any, where: str) -> "SweepPoint":
        data = _dict(data, where)
        n = data.get("n")
        if isinstance(n, bool) or not isinstance(n, int):
            raise SchemaError(f"{where}.n: expected an integer")
        return cls(data.get("control"), _str(data.get("label"), f"{where}.label"), n, _numbers(data.get("scores", {}), f"{where}.scores"))


@dataclass
class SweepResult:
    """What ``evaluate`` returns: one point per control and every record behind them."""

    points: list[SweepPoint]
    records: list[Record]
    timing: dict[str, float] = field(default_factory=dict)  # decode seconds, tokens, tokens/s of the generated rows

    def summary(self) -> dict[str, float]:
        """``{score@label: mean}``: the flat per-control summary."""
        return {f"{k}@{p.label}": v for p in self.points for k, v in p.scores.items()}

    def to_json(self) -> dict[str, Any]:
        return {"points": [asdict(p) for p in self.points], "records": [asdict(r) for r in self.records], "timing": self.timing}

    @classmethod
    def from_json(cls, data: Any, where: str) -> "SweepResult":
        data = _dict(data, where)
        points = [SweepPoint.from_json(p, f"{where}.points[{i}]") for i, p in enumerate(_list(data.get("points"), f"{where}.points"))]
        records = [Record.from_json(r, f"{where}.records[{i}]") for i, r in enumerate(_list(data.get("records"), f"{where}.records"))]
        return cls(points, records, _numbers(data.get("timing", {}), f"{where}.timing"))


@dataclass
class Figure:
    path: str  # relative to the run folder
    caption: str


@dataclass
class Section:
    """What a method's ``analyze``, a metric or an inspector adds: numbers, data, text, figures."""

    summary: dict[str, float] = field(default_factory=dict)
    figures: list[Figure] = field(default_factory=list)
    markdown: str = ""
    data: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json(cls, data: Any, where: str) -> "Section":
        data = _dict(data, where)
        figures = [Figure(_str(_dict(f, where).get("path"), f"{where}.figures"), _str(f.get("caption"), f"{where}.figures"))
                   for f in _list(data.get("figures", []), f"{where}.figures")]
        return cls(_numbers(data.get("summary", {}), f"{where}.summary"), figures, _str(data.get("markdown", ""), f"{where}.markdown"),
                   _dict(data.get("data", {}), f"{where}.data"))


@dataclass
class MethodResult:
    """One method of a study: its sweep, its summary (sweep means + analysis numbers) and extras."""

    name: str
    method: str
    controls: dict[str, Any]  # ControlSpace.describe(): kind, label, dimensions
    summary: dict[str, float]
    points: list[SweepPoint]
    records: list[Record]
    analysis: Section = field(default_factory=Section)
    cost: dict[str, float] = field(default_factory=dict)  # wall-clock and memory: not reproducible like the scores
    seeds: list[int] = field(default_factory=list)  # the training seeds behind the records (one for an untrained method)
    intervals: dict[str, list[float]] = field(default_factory=dict)  # summary name -> 95% [low, high] (steerlab.analysis.evidence)
    n: dict[str, int] = field(default_factory=dict)  # {"prompts", "seeds"} behind the intervals

    @classmethod
    def from_json(cls, name: str, data: Any, where: str) -> "MethodResult":
        data = _dict(data, where)
        points = [SweepPoint.from_json(p, f"{where}.points[{i}]") for i, p in enumerate(_list(data.get("points"), f"{where}.points"))]
        records = [Record.from_json(r, f"{where}.records[{i}]") for i, r in enumerate(_list(data.get("records"), f"{where}.records"))]
        seeds = _list(data.get("seeds", []), f"{where}.seeds")
        if not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds):
            raise SchemaError(f"{where}.seeds: expected a list of integers")
        intervals = {k: [_number(v, f"{where}.intervals.{k}") for v in _list(pair, f"{where}.intervals.{k}")]
                     for k, pair in _dict(data.get("intervals", {}), f"{where}.intervals").items()}
        return cls(name, _str(data.get("method"), f"{where}.method"), _dict(data.get("controls"), f"{where}.controls"),
                   _numbers(data.get("summary", {}), f"{where}.summary"), points, records,
                   Section.from_json(data.get("analysis", {}), f"{where}.analysis"), _numbers(data.get("cost", {}), f"{where}.cost"),
                   seeds, intervals, {k: int(v) for k, v in _numbers(data.get("n", {}), f"{where}.n").items()})

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out.pop("name")
        return out


@runtime_checkable
class StudyReport(Protocol):
    """A study-level section computed from the finished results (no model): a plugin's own summary
    across method entries (the transfer hypotheses). A study asks for it with ``[study] reports``."""

    name: str
    description: str

    def section(self, results: "RunResults", layout: Any) -> Section | None: ...  # layout: the run's RunLayout


@dataclass
class RunResults:
    """Everything ``results.json`` holds."""

    study: dict[str, Any]
    methods: dict[str, MethodResult]
    metrics: dict[str, Section] = field(default_factory=dict)  # a metric's own report (the judge's accuracy...)
    comparison: dict[str, Any] | None = None  # the Pareto comparison (``[pareto]``)
    concepts: dict[str, Any] | None = None  # the concept comparison (``[compare]``)
    reports: dict[str, Section] = field(default_factory=dict)  # study-level reports (``[study] reports``)
    schema_version: int = SCHEMA_VERSION

    def to_json(self) -> dict[str, Any]:
        return {"schema_version": self.schema_version, "study": self.study,
                "methods": {n: m.to_json() for n, m in self.methods.items()},
                "metrics": {n: asdict(s) for n, s in self.metrics.items()}, "comparison": self.comparison, "concepts": self.concepts,
                "reports": {n: asdict(s) for n, s in self.reports.items()}}

    def save(self, path: Path) -> None:
        write_json(path, self.to_json())

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "RunResults":
        version = data.get("schema_version")
        if version not in READABLE_VERSIONS:
            raise SchemaError(f"schema_version {version!r} (this steerlab reads {', '.join(map(str, READABLE_VERSIONS))})")
        methods = {n: MethodResult.from_json(n, m, f"methods.{n}") for n, m in _dict(data.get("methods"), "methods").items()}
        metrics = {n: Section.from_json(s, f"metrics.{n}") for n, s in _dict(data.get("metrics", {}), "metrics").items()}
        comparison, concepts = data.get("comparison"), data.get("concepts")
        reports = {n: Section.from_json(s, f"reports.{n}") for n, s in _dict(data.get("reports", {}), "reports").items()}
        return cls(_dict(data.get("study"), "study"), methods, metrics, _dict(comparison, "comparison") if comparison is not None else None,
                   _dict(concepts, "concepts") if concepts is not None else None, reports)

    @classmethod
    def load(cls, path: Path) -> "RunResults":
        data = read_json_object(path, "results file")
        try:
            return cls.from_json(data)
        except SchemaError as exc:
            raise ConfigError(f"{path}: {exc}") from None
