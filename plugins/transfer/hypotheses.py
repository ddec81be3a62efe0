"""The study-level summary of a transfer study, from a finished results.json (no model, no metric).

Every entry's success is recomputed from its records, per prompt (core's ``moves_both_ways``:
the answer is shorter at +c and longer at -c than at 0), so ``actdiff`` entries (the native
vectors) and ``transfer`` entries are measured by the same rule. A direction is a (source, target)
pair named by the transfer entries; beside its adapters stand the random control and the native
ceiling (the actdiff entry on the target), and H1 reads the actdiff entry on the source.

Choices read the dev half of the prompts, verdicts the test half (``evidence``): each entry's
strength, and the linear adapter that stands for "an adapter", are chosen on dev; every number in
the verdicts is a test share with its 95% interval, and a hypothesis about a control reads the
paired difference (same prompts, same draws). Each verdict is read from intervals alone
(``steerlab.api.hypothesis``; a hypothesis of several claims holds when all do, ``all_of``):

* H1: the vector works on its own model: its success lies above 70%, and above a random
  direction on the same model where the run has one;
* H2: direct transfer works only sometimes: it beats the random direction (without one: lies
  above 10%) and lies below 30%;
* H3: a linear adapter beats direct transfer by more than 20 points, and beats the random direction.

Use: ``write_summary(results_json)`` (hypotheses.md and two figures beside it), or
``hypotheses_table(results_json)`` for the markdown alone; ``python -m
steerlab_plugins.transfer.hypotheses RUN/results.json`` does the former.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from steerlab.api import (Artifact, ConfigError, Estimate, Figure, RunLayout, Section, all_of, atomic_write_text, direction_sign,
                          export_control_vector, hypothesis, markdown_table, new_figure, read_json, save_figure, verdict)

from steerlab_plugins.transfer.evidence import EntryView, Halves, Measured, best_on_dev, measure, paired

H1_MIN = 0.7
H2_RANGE = (0.10, 0.30)
H3_MARGIN = 0.20
LINEAR = ("ridge", "procrustes", "affine")
ORDER = ("direct", "random", *LINEAR, "native")


def entry_views(results: dict[str, Any], metric: str = "words", direction: str = "decrease") -> list[EntryView]:
    """The transfer and actdiff entries of a results.json (others are skipped)."""
    models = results.get("study", {}).get("models", {})
    default = results.get("study", {}).get("model", "")
    views = []
    for name, entry in results.get("methods", {}).items():
        if entry.get("method") not in ("transfer", "actdiff"):
            continue
        rows = [(r.get("seed"), r["prompt"], float(r["control"]), _number(r.get("scores", {}).get(metric))) for r in entry.get("records", [])]
        target = models.get(name, default)
        data = entry.get("analysis", {}).get("data", {})
        kind = data.get("adapter", "native") if entry["method"] == "transfer" else "native"
        source = data.get("source_model", target) if entry["method"] == "transfer" else target
        views.append(EntryView(name, kind, source, target, rows, direction_sign(direction), entry.get("summary", {})))
    return views


def study_seeds(results: dict[str, Any]) -> list[int]:
    study = results.get("study", {})
    return list(study.get("seeds") or [study.get("seed", 0)])


def _number(value: Any) -> float:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else float("nan")


def directions(views: list[EntryView]) -> list[tuple[str, str]]:
    """(source, target) of every transfer, in the order the study lists them."""
    return list(dict.fromkeys((v.source, v.target) for v in views if v.kind != "native"))


def row_for(views: list[EntryView], source: str, target: str, kind: str) -> EntryView | None:
    if kind == "native":
        return next((v for v in views if v.kind == "native" and v.target == target), None)
    return next((v for v in views if v.kind == kind and v.source == source and v.target == target), None)


def random_on(views: list[EntryView], model: str) -> EntryView | None:
    """A random direction steering ``model`` (any source: the control does not read the source)."""
    return next((v for v in views if v.kind == "random" and v.target == model), None)


@dataclass
class Direction:
    """One (source, target) read through the split: every entry measured, the adapter chosen on dev."""

    source: str
    target: str
    halves: Halves
    entries: dict[str, Measured]  # kind -> measured ("own": the native vector on the source, "own_random": a random one there)
    adapter: Measured | None  # the linear adapter with the best dev success

    @classmethod
    def of(cls, views: list[EntryView], source: str, target: str, halves: Halves) -> "Direction":
        found = {k: row_for(views, source, target, k) for k in ORDER}
        found["own"] = row_for(views, source, source, "native")
        found["own_random"] = random_on(views, source)
        entries = {k: measure(v, halves) for k, v in found.items() if v is not None}
        return cls(source, target, halves, entries, best_on_dev([entries[k] for k in LINEAR if k in entries]))

    def difference(self, a: Measured | None, b: Measured | None) -> Estimate | None:
        return paired(a, b, self.halves) if a is not None and b is not None else None


def _diff(name: str, e: Estimate | None) -> str:
    return f"{name} {e.text()}" if e is not None else f"{name}: not measured"


def _at(m: Measured) -> str:
    return f"`{m.view.name}` at ±{m.strength:g}" if m.strength is not None else f"`{m.view.name}` (no strength chosen)"


def h1(d: Direction) -> list[str]:
    own = d.entries.get("own")
    claim = f"success > {100 * H1_MIN:.0f}%"
    if own is None:
        return ["H1 vector works on its own model", "no actdiff entry on the source", claim, "not measured"]
    rand = d.entries.get("own_random")
    versus = d.difference(own, rand)
    claims = [hypothesis(own.test, above=H1_MIN)] + ([hypothesis(versus, above=0.0)] if versus is not None else [])
    measured = f"{_at(own)} on {d.source}: {own.test.text_n()}" + (f"; {_diff('minus random', versus)}" if versus is not None else "")
    return ["H1 vector works on its own model", measured, claim + (" and > random" if versus is not None else ""), all_of(*claims)]


def h2(d: Direction) -> list[str]:
    direct, rand = d.entries.get("direct"), d.entries.get("random")
    low, high = H2_RANGE
    if direct is None:
        return ["H2 direct transfer works only sometimes", "no direct entry", f"> random, < {100 * high:.0f}%", "not measured"]
    versus = d.difference(direct, rand)
    works = hypothesis(versus, above=0.0) if versus is not None else hypothesis(direct.test, above=low)
    claim = ("> random" if versus is not None else f"> {100 * low:.0f}%") + f", < {100 * high:.0f}%"
    measured = f"{_at(direct)}: {direct.test.text_n()}" + (f"; {_diff('minus random', versus)}" if versus is not None else "")
    return ["H2 direct transfer works only sometimes", measured, claim, all_of(works, hypothesis(direct.test, below=high))]


def h3(d: Direction) -> list[str]:
    title, claim = f"H3 a linear adapter beats direct by > {100 * H3_MARGIN:.0f} points", f"minus direct > {H3_MARGIN:.2f}"
    direct, rand, top = d.entries.get("direct"), d.entries.get("random"), d.adapter
    if direct is None or top is None:
        return [title, "no direct or linear adapter entry (or no dev prompt to choose one)", claim, "not measured"]
    over_direct, over_random = d.difference(top, direct), d.difference(top, rand)
    claims = [hypothesis(over_direct, above=H3_MARGIN)] + ([hypothesis(over_random, above=0.0)] if over_random is not None else [])
    measured = (f"{top.view.kind} (chosen on dev) {_at(top)}: {top.test.text_n()}; {_diff('minus direct', over_direct)}"
                + (f"; {_diff('minus random', over_random)}" if over_random is not None else ""))
    return [title, measured, claim + (" and > random" if over_random is not None else ""), all_of(*claims)]


def verdicts(d: Direction) -> list[list[str]]:
    """[hypothesis, measured on test, claim, verdict] rows for one direction."""
    return [h1(d), h2(d), h3(d)]


def _read(name: str, e: Estimate) -> str:
    """``ridge minus random +0.083 [-0.2, 0.3] (not distinguishable)``: the verdict of a higher-is-better share."""
    return f"{name} {e.text()} ({verdict(e.low, e.high, True)})"


def reading(d: Direction) -> str:
    """Sentences that set the chosen adapter and direct transfer against the controls, each read
    from a paired difference's interval on the test prompts (a gap the interval holds is noise)."""
    top, rand, ceiling, direct = d.adapter, d.entries.get("random"), d.entries.get("native"), d.entries.get("direct")
    if top is None:
        return ""
    said = [f"Chosen on dev: {top.view.kind} at ±{top.strength:g} (dev success {top.dev.text_n()}); on test {top.test.text_n()}."]
    over_random = d.difference(top, rand)
    if over_random is not None:
        beats = verdict(over_random.low, over_random.high, True) == "better"
        said.append(_read(f"{top.view.kind} minus random", over_random) + (
            "." if beats else ": on this evidence the chosen adapter moves length no more than a random vector of the same norm does."))
    direct_random = d.difference(direct, rand)
    if direct_random is not None:
        said.append(_read("Direct minus random", direct_random) + ".")
    native_random = d.difference(ceiling, rand)
    if native_random is not None and verdict(native_random.low, native_random.high, True) != "better":
        said.append(_read(f"{d.target}'s own vector minus random", native_random)
                    + f": length is not shown steerable this way on {d.target} at these strengths, so this direction cannot show transfer either way.")
    gap = d.difference(top, ceiling)
    if gap is not None:
        said.append(_read(f"{top.view.kind} minus {d.target}'s own vector (the ceiling)", gap) + ".")
    return "**Against the controls** (paired differences on the test prompts, 95% intervals). " + " ".join(said)


def _cell(e: Estimate | None) -> str:
    return e.text() if e is not None and math.isfinite(e.value) else "n/a"


def direction_table(views: list[EntryView], d: Direction) -> str:
    strengths = sorted({c for v in views for c in v.strengths})
    header = ["method", "entry", "strength (chosen on dev)", "success on dev", "success on test", "n test (prompts x seeds)",
              *[f"test@{c:g}" for c in strengths]]
    rows = []
    for kind in ORDER:
        m = d.entries.get(kind)
        if m is None:
            continue
        label = "native (actdiff on target)" if kind == "native" else kind
        rows.append([label, f"`{m.view.name}`", "n/a" if m.strength is None else f"±{m.strength:g}", _cell(m.dev), _cell(m.test),
                     f"{m.test.n_prompts}x{m.test.n_seeds}",
                     *[_cell(m.per_strength.get(c)) for c in strengths]])
    return markdown_table(header, rows)


def fit_table(d: Direction) -> str:
    """Properties of each fitted map (held-out fit texts, not eval prompts): one number per artifact, no interval."""
    rows = [[k, f"`{m.view.name}`", _number(m.view.summary.get("fit_r2")), _number(m.view.summary.get("native_cosine"))]
            for k, m in d.entries.items() if k in ORDER and k != "native"]
    return markdown_table(["method", "entry", "fit R² (held-out fit texts)", "cos(mapped, native)"], rows) if rows else ""


@dataclass
class Summary:
    """A run's transfer entries read through one split: every direction, ready to render and draw."""

    views: list[EntryView]
    halves: Halves
    directions: list[Direction]

    @classmethod
    def of(cls, results: dict[str, Any]) -> "Summary":
        views = entry_views(results)
        halves = Halves.of(views, study_seeds(results))
        return cls(views, halves, [Direction.of(views, s, t, halves) for s, t in directions(views)])

    def verdicts(self) -> dict[str, dict[str, str]]:
        """``{"source -> target": {"H1": verdict, ...}}``, for results.json."""
        return {f"{d.source} -> {d.target}": {row[0].split()[0]: row[3] for row in verdicts(d)} for d in self.directions}


def render(summary: Summary) -> str:
    split = summary.halves.split
    lines = ["## Cross-model transfer: hypotheses", "",
             "Success: the share of prompts whose answer is shorter at +c and longer at -c than at 0 (words; ties fail). "
             f"Each entry's strength and the linear adapter H3 stands on are {split.describe()}; every share is a test "
             "share with its 95% interval (paired bootstrap over seeds, then prompts) and n (prompts x seeds); a verdict "
             "is read from intervals alone: supported (the interval clears the claim), not supported (it lies wholly on "
             "the other side) or not distinguishable (it holds the bound)."]
    if not split.usable:
        lines += ["", f"This run's prompts do not fill both halves ({len(split.dev)} dev, {len(split.test)} test): "
                  "nothing can be chosen on one and reported on the other, so the verdicts are not measured."]
    for d in summary.directions:
        lines += ["", f"### {d.source} → {d.target}", "", direction_table(summary.views, d), "",
                  markdown_table(["hypothesis", "measured (test)", "claim", "verdict"], verdicts(d))]
        said = reading(d)
        lines += ["", said] if said else []
        fit = fit_table(d)
        lines += ["", "Each fitted map (one number per artifact, on its held-out fit texts: no prompt interval):", "", fit] if fit else []
    if not summary.directions:
        lines += ["", "No transfer entries in this run."]
    return "\n".join(lines) + "\n"


def hypotheses_table(results_json_path: Path | str) -> str:
    """Markdown: per direction, every method's success (chosen on dev, reported on test) beside the
    random control and the native ceiling, then H1/H2/H3 with intervals and verdicts."""
    return render(Summary.of(read_json(Path(results_json_path), "results")))


def _short(model: str) -> str:
    return Path(model).name.split("-instruct")[0]


def transfer_matrix(summary: Summary, path: Path) -> bool:
    """Heat map: rows source → target, columns methods, cells the test success at the strength chosen on dev."""
    if not summary.directions:
        return False
    grid = [[(m.test.value if (m := d.entries.get(k)) else float("nan")) for k in ORDER] for d in summary.directions]
    fig, ax = new_figure(width=7.0, height=1.2 + 0.7 * len(grid))
    image = ax.imshow(grid, vmin=0.0, vmax=1.0, cmap="viridis", aspect="auto")
    ax.set_xticks(range(len(ORDER)), ORDER, rotation=25, ha="right")
    ax.set_yticks(range(len(grid)), [f"{_short(d.source)} → {_short(d.target)}" for d in summary.directions])
    for i, row in enumerate(grid):
        for j, value in enumerate(row):
            ax.text(j, i, "-" if math.isnan(value) else f"{value:.2f}", ha="center", va="center",
                    color="white" if not math.isnan(value) and value < 0.5 else "black")
    ax.set_title("Transfer success on test (strength chosen on dev): source → target x method")
    fig.colorbar(image, ax=ax, label="share of test prompts")
    save_figure(fig, path)
    return True


STYLES = {"direct": ("C1", ":", "v"), "random": ("0.5", "--", "x"), "ridge": ("C2", "-", "s"),
          "procrustes": ("C3", "-", "D"), "affine": ("C4", "-", "^"), "native": ("k", "-", "o")}


def success_curves(summary: Summary, path: Path) -> bool:
    """One panel per direction: test success against strength with 95% intervals, one line per method."""
    if not summary.directions:
        return False
    fig, axes = new_figure(ncols=len(summary.directions), width=4.5, height=3.6)
    axes = [axes] if len(summary.directions) == 1 else list(axes)
    # Distinct colour and marker per method, and each method's points nudged sideways by a few
    # percent of the strength: with few prompts many methods tie, and tied lines hid each other.
    for ax, d in zip(axes, summary.directions):
        tried: set[float] = set()
        for k, kind in enumerate(ORDER):
            m = d.entries.get(kind)
            if m is None or not m.per_strength:
                continue
            tried.update(m.per_strength)
            colour, line, marker = STYLES.get(kind, (f"C{k}", "-", "o"))
            xs = sorted(m.per_strength)
            nudge = 1 + 0.015 * (k - (len(ORDER) - 1) / 2)
            ys = [m.per_strength[x] for x in xs]
            errors = [[max(e.value - e.low, 0.0) for e in ys], [max(e.high - e.value, 0.0) for e in ys]]
            ax.errorbar([x * nudge for x in xs], [e.value for e in ys], yerr=errors, marker=marker, color=colour,
                        linestyle=line, label=kind, capsize=2)
        ticks = sorted(tried)
        ax.set_xticks(ticks, [f"{c:g}" for c in ticks])  # ticks only at the strengths tried (points are nudged)
        if len(ticks) == 1:
            ax.set_xlim(ticks[0] * 0.9, ticks[0] * 1.1)
        ax.set_ylim(-0.02, 1.02)
        ax.set_xlabel("strength |c|")
        ax.set_ylabel("test success (both signs), 95% interval")
        ax.set_title(f"{_short(d.source)} → {_short(d.target)}")
        if tried:
            ax.legend(fontsize=7)
    save_figure(fig, path)
    return True


def write_summary(results_json_path: Path | str, out_dir: Path | str | None = None) -> Path:
    """hypotheses.md plus figures/transfer_matrix.png and figures/transfer_success.png, in
    ``out_dir`` (default: the run folder holding results.json). Returns the markdown's path."""
    results_path = Path(results_json_path)
    out = Path(out_dir) if out_dir is not None else results_path.parent
    summary = Summary.of(read_json(results_path, "results"))
    text = render(summary)
    for stem, draw, caption in (("transfer_matrix", transfer_matrix, "Transfer matrix"),
                                ("transfer_success", success_curves, "Success against strength")):
        if draw(summary, out / "figures" / f"{stem}.png"):
            text += f"\n![{caption}](figures/{stem}.png)\n"
    atomic_write_text(out / "hypotheses.md", text)
    return out / "hypotheses.md"


class TransferReport:
    """The transfer hypotheses as a study-level report (``[study] reports = ["transfer"]``)."""

    name = "transfer"
    description = "H1 / H2 / H3 per direction, the transfer matrix and success-vs-strength curves"

    def section(self, results: Any, layout: RunLayout) -> Section | None:
        summary = Summary.of(results.to_json())
        if not summary.views:
            return None
        text, drawn = render(summary), []
        for stem, draw, caption in (("transfer_matrix", transfer_matrix, "Transfer matrix: test success (strength chosen on dev) per source -> target and method"),
                                    ("transfer_success", success_curves, "Length-direction success on the test prompts against strength")):
            if draw(summary, layout.figure(stem)):
                drawn.append(Figure(layout.relative(layout.figure(stem)), caption))
        exported = export_vectors(results, layout)
        if exported:
            text += (f"\n\nEvery vector as a llama.cpp control vector (strength {EXPORT_STRENGTH} baked in; `--control-vector FILE` "
                     "in llama.cpp, or `steerlab import gguf FILE --model NAME`): " + ", ".join(f"`{p}`" for p in exported) + "\n")
        return Section(markdown=text, figures=drawn, data={"exports": exported, "verdicts": summary.verdicts()})


EXPORT_STRENGTH = 0.2


def export_vectors(results: Any, layout: RunLayout) -> list[str]:
    """``exports/NAME.gguf`` for every entry whose artifact declares a residual vector."""
    out = []
    for name in results.methods:
        folder = layout.method(name)
        if not Artifact.exists(folder):
            continue
        artifact = Artifact.load(folder)
        if not artifact.vectors or artifact.header is None:
            continue
        path = layout.root / "exports" / f"{name}.gguf"
        try:
            export_control_vector(artifact, artifact.header.model, path, EXPORT_STRENGTH)
        except ConfigError:
            continue  # a site llama.cpp cannot steer (block 0's output): nothing to export
        out.append(layout.relative(path))
    return out


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) not in (1, 2):
        print("usage: python -m steerlab_plugins.transfer.hypotheses RUN/results.json [OUT_DIR]", file=sys.stderr)
        return 2
    print(write_summary(*args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
