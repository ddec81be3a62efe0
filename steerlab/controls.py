"""Control spaces: what a method's control is, declared by the method itself.

A steering method is turned by a control: a strength, an alpha, a preference vector lambda on
the simplex... Everything that depends on what a control *is* lives in its ``ControlSpace`` and
nowhere else: the default grid, validation (finite numbers, ranges, the simplex), ``--quick``
thinning, labels for tables and legends, parsing ``--control TEXT``, JSON form, the per-row
tensor a method's ``steer`` receives, and the per-method sweep figure. Code outside this module
never branches on a control's Python type.

Canonical control values are hashable: a ``float`` for a scalar space, a ``tuple`` of floats
for a simplex. ``check`` turns any accepted input (TOML, JSON, a list) into that form.

A new space is one subclass: implement ``check``, ``parse``, ``key``, ``default_grid`` and
``width`` (and ``plot_sweep`` if the default line plot does not fit).
"""

from __future__ import annotations

import itertools
import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

Control = Any  # canonical: float (Scalar) or tuple[float, ...] (Simplex); opaque outside this module


def finite_number(value: Any, what: str = "a number") -> float:
    """A real, finite number (bools are not numbers here); ValueError otherwise."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"expected {what}, got {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"expected {what}, finite, got {value!r}")
    return float(value)


def corner_of(coordinates: Sequence[float]) -> int | None:
    """The axis a point of a simplex puts all its weight on (one coordinate 1, the rest 0), else
    None: the one corner test, for controls (``ControlSpace.corner_of``) and for the coordinates a
    finished run stored alike."""
    point = [float(c) for c in coordinates]
    return point.index(1.0) if point and sorted(point) == [0.0] * (len(point) - 1) + [1.0] else None


class ControlSpace(ABC):
    """What a method's control is. See the module docstring for the contract."""

    label: str = "control"  # what a control is called in reports: strength, alpha, lambda
    kind: str = "custom"  # recorded in results.json so readers know how to read a control

    @property
    def dimensions(self) -> tuple[str, ...]:
        """Named coordinates of a control (a simplex's styles); empty for a plain scalar."""
        return ()

    @abstractmethod
    def check(self, value: Any) -> Control:
        """The canonical control for ``value``; ValueError saying what was expected."""

    @abstractmethod
    def parse(self, text: str) -> Control:
        """A control from command-line text (``--control 0.4``); ValueError when it cannot."""

    @abstractmethod
    def key(self, control: Control) -> str:
        """A short label for tables, legends and JSON keys."""

    @abstractmethod
    def default_grid(self) -> list[Control]:
        """The sweep a study runs when its method table gives no ``controls``."""

    @abstractmethod
    def width(self) -> int:
        """Numbers per control in the per-row tensor (1 for a scalar)."""

    def coordinates(self, control: Control) -> tuple[float, ...]:
        """The control as numbers (for plots and rank correlations)."""
        return tuple(float(c) for c in (control if isinstance(control, tuple) else (control,)))

    def to_json(self, control: Control) -> Any:
        coords = self.coordinates(control)
        return coords[0] if self.width() == 1 else list(coords)

    def corner_of(self, control: Control) -> int | None:
        """The dimension whose corner ``control`` is (all its weight on that one), or None; always
        None for a space without named dimensions."""
        return corner_of(self.coordinates(control)) if self.dimensions else None

    def neutral(self) -> Control | None:
        """The control that leaves the model unsteered, if the space has one."""
        return None

    def quick(self, grid: list[Control], keep: int = 3) -> list[Control]:
        """The part of ``grid`` that ``--quick`` keeps: for one number per control, the two ends
        and the control nearest the neutral one (e.g. negative, zero, positive); otherwise the
        first, middle and last."""
        if len(grid) <= keep:
            return list(grid)
        if self.width() == 1:
            ordered = sorted(grid, key=lambda c: self.coordinates(c)[0])
            centre_value = self.neutral()
            centre_at = self.coordinates(centre_value)[0] if centre_value is not None else self.coordinates(ordered[len(ordered) // 2])[0]
            centre = min(ordered, key=lambda c: abs(self.coordinates(c)[0] - centre_at))
            return list(dict.fromkeys([ordered[0], centre, ordered[-1]]))
        return [grid[0], grid[len(grid) // 2], grid[-1]]

    def describe(self) -> dict[str, Any]:
        """How results.json says what the controls are."""
        return {"kind": self.kind, "label": self.label, "dimensions": list(self.dimensions)}

    def widget(self, grid: Sequence[Control]) -> dict[str, Any]:
        """How a page lets a person pick a control (the playground of ``steerlab serve``), given
        the run's sweep ``grid``: by default a text box whose text ``parse`` reads."""
        return {"widget": "text", "example": str(self.to_json(grid[0])) if grid else ""}

    def tensor(self, controls: Sequence[Control], device: torch.device | str | None = None) -> torch.Tensor:
        """One row per control: (n,) for width 1, else (n, width); float32."""
        rows = [self.coordinates(c) for c in controls]
        out = torch.tensor(rows, dtype=torch.float32, device=device)  # (n, width)
        return out[:, 0] if self.width() == 1 else out

    def check_all(self, values: Sequence[Any]) -> list[Control]:
        """Every value checked; duplicates rejected (a sweep point is keyed by its control)."""
        controls = [self.check(v) for v in values]
        keys = [self.key(c) for c in controls]
        dupes = sorted({k for k in keys if keys.count(k) > 1})
        if dupes:
            raise ValueError(f"control {dupes[0]} is listed twice")
        return controls

    def plot_sweep(self, title: str, points: list[tuple[Control, dict[str, float]]], path: Path,
                   intervals: list[dict[str, list[float]]] | None = None) -> bool:
        """One panel per score against the control (width-1 spaces); False when nothing is drawn.
        ``intervals``: per point, each score's [low, high], drawn as error bars."""
        if self.width() != 1 or not points:
            return False
        from steerlab.figures import score_panels

        xs = [self.coordinates(c)[0] for c, _ in points]
        score_panels(title, self.label, xs, [s for _, s in points], path, mark=self.neutral(), intervals=intervals)
        return True


class Scalar(ControlSpace):
    """One number per control: a strength, an alpha, a multiplier."""

    kind = "scalar"

    def __init__(self, label: str = "strength", grid: Sequence[float] = (-1.0, 0.0, 1.0),
                 minimum: float | None = None, maximum: float | None = None, neutral: float | None = 0.0) -> None:
        self.label, self.minimum, self.maximum, self._neutral = label, minimum, maximum, neutral
        self._grid = [self.check(g) for g in grid]

    def check(self, value: Any) -> float:
        number = finite_number(value, f"a number ({self.label})")
        if self.minimum is not None and number < self.minimum:
            raise ValueError(f"{self.label} must be >= {self.minimum:g}, got {number:g}")
        if self.maximum is not None and number > self.maximum:
            raise ValueError(f"{self.label} must be <= {self.maximum:g}, got {number:g}")
        return number

    def parse(self, text: str) -> float:
        raw = text.split("=", 1)[1] if text.startswith(f"{self.label}=") else text
        try:
            value = float(raw)
        except ValueError:
            raise ValueError(f"expected a number ({self.label}), e.g. 0.4; got {text!r}") from None
        return self.check(value)

    def key(self, control: Control) -> str:
        return f"{control:+g}"

    def default_grid(self) -> list[Control]:
        return list(self._grid)

    def width(self) -> int:
        return 1

    def neutral(self) -> float | None:
        return self._neutral

    def widget(self, grid: Sequence[Control]) -> dict[str, Any]:
        """A slider over the run's sweep (and the neutral control), inside the space's bounds."""
        values = [float(c) for c in grid] + ([self._neutral] if self._neutral is not None else [])
        low, high = min(values, default=-1.0), max(values, default=1.0)
        if low == high:
            low, high = low - 1.0, high + 1.0
        low = max(low, self.minimum) if self.minimum is not None else low
        high = min(high, self.maximum) if self.maximum is not None else high
        return {"widget": "slider", "min": low, "max": high}


class Simplex(ControlSpace):
    """A preference vector lambda over named dimensions: >= 0, summing to 1."""

    kind = "simplex"
    TOLERANCE = 1e-6

    def __init__(self, dimensions: Sequence[str], step: float = 0.25, label: str = "lambda") -> None:
        if len(dimensions) < 2 or len(set(dimensions)) != len(dimensions):
            raise ValueError(f"a simplex needs at least two distinct dimensions, got {list(dimensions)}")
        self._dims, self.label = tuple(dimensions), label
        self.step = self._check_step(step)

    @staticmethod
    def _check_step(step: float) -> float:
        step = finite_number(step, "a grid step")
        n = round(1 / step) if step > 0 else 0
        if step <= 0 or step > 1 or abs(n * step - 1) > 1e-9:
            raise ValueError(f"grid step must be 1/n for a whole n >= 1 (e.g. 0.25), got {step:g}")
        return step

    @property
    def dimensions(self) -> tuple[str, ...]:
        return self._dims

    def width(self) -> int:
        return len(self._dims)

    def check(self, value: Any) -> tuple[float, ...]:
        if isinstance(value, dict):
            unknown = sorted(set(value) - set(self._dims))
            if unknown:
                raise ValueError(f"unknown dimension {unknown[0]!r} (expected: {', '.join(self._dims)})")
            value = [value.get(d, 0.0) for d in self._dims]
        if not isinstance(value, (list, tuple)) or len(value) != len(self._dims):
            raise ValueError(f"expected {len(self._dims)} weights for {', '.join(self._dims)} (a preference vector), got {value!r}")
        weights = tuple(finite_number(v, "numbers") for v in value)
        if min(weights) < 0 or abs(sum(weights) - 1.0) > self.TOLERANCE:
            raise ValueError(f"a preference vector must be >= 0 and sum to 1, got {list(weights)}")
        return weights

    def parse(self, text: str) -> tuple[float, ...]:
        """``helpful=0.3,humorous=0.7`` (unnamed dimensions are 0) or ``0.3,0.7,0``."""
        parts = [p.strip() for p in text.split(",") if p.strip()]
        try:
            if parts and all("=" in p for p in parts):
                return self.check({k.strip(): float(v) for k, v in (p.split("=", 1) for p in parts)})
            return self.check([float(p) for p in parts])
        except ValueError as exc:
            example = ",".join(f"{d}={w:g}" for d, w in zip(self._dims, self.centre()))
            raise ValueError(f"{exc}; e.g. --control {example}") from None

    def key(self, control: Control) -> str:
        return "(" + ",".join(f"{c:.2f}" for c in control) + ")"

    def default_grid(self) -> list[Control]:
        """Every point whose weights are multiples of the step; corners first (see ``quick``)."""
        n, m = round(1 / self.step), len(self._dims)
        points = [tuple(c / n for c in combo) for combo in itertools.product(range(n + 1), repeat=m) if sum(combo) == n]
        corners = sorted((p for p in points if corner_of(p) is not None), reverse=True)
        return corners + sorted((p for p in points if corner_of(p) is None), reverse=True)

    def widget(self, grid: Sequence[Control]) -> dict[str, Any]:
        """A point in the simplex (a draggable point in a triangle for three dimensions)."""
        return {"widget": "simplex"}

    def corners(self) -> list[tuple[float, ...]]:
        m = len(self._dims)
        return [tuple(1.0 if i == j else 0.0 for i in range(m)) for j in range(m)]

    def centre(self) -> tuple[float, ...]:
        m = len(self._dims)
        return tuple([1.0 / m] * m)

    def quick(self, grid: list[Control], keep: int = 3) -> list[Control]:
        """The corners in the grid (where styles differ most), then the centre when the grid
        goes beyond its corners (it stands for the interior)."""
        corners = [c for c in self.corners() if c in grid]
        if not corners:
            return super().quick(grid, keep)
        return corners + ([self.centre()] if len(grid) > len(corners) else [])

    def plot_sweep(self, title: str, points: list[tuple[Control, dict[str, float]]], path: Path,
                   intervals: list[dict[str, list[float]]] | None = None) -> bool:
        """Scores named after the dimensions (``judge.helpful`` for ``helpful``) along each
        simplex edge, lambda moving from one corner to another (``intervals``: bands)."""
        from steerlab.figures import simplex_edges

        keys = {k for _, s in points for k in s}
        axes = [next((k for k in sorted(keys) if k.split(".")[-1] == d), "") for d in self._dims]
        if not all(axes):
            return False
        bands = intervals or [{} for _ in points]
        return simplex_edges(title, axes, {"": [(self.coordinates(c), s, b) for (c, s), b in zip(points, bands)]}, path)


class Fixed(ControlSpace):
    """A method with nothing to turn (the unsteered reference): one control, ``0``."""

    kind = "none"
    label = "none"

    def check(self, value: Any) -> float:
        if finite_number(value) != 0.0:
            raise ValueError(f"this method has no control (only 0), got {value!r}")
        return 0.0

    def parse(self, text: str) -> float:
        try:
            return self.check(float(text))
        except ValueError:
            raise ValueError(f"this method has no control (only 0), got {text!r}") from None

    def key(self, control: Control) -> str:
        return "-"

    def default_grid(self) -> list[Control]:
        return [0.0]

    def widget(self, grid: Sequence[Control]) -> dict[str, Any]:
        return {"widget": "none"}

    def width(self) -> int:
        return 1

    def neutral(self) -> float:
        return 0.0

    def plot_sweep(self, title: str, points: list[tuple[Control, dict[str, float]]], path: Path,
                   intervals: list[dict[str, list[float]]] | None = None) -> bool:
        return False
