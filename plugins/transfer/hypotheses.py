"""The study-level summary of a transfer study, from a finished results.json (no model, no metric).

Every entry's success is recomputed from its records with ``length_success`` (the share of eval
prompts whose answer is shorter at +c and longer at -c than at 0), so ``actdiff`` entries (the
native vectors) and ``transfer`` entries are measured by the same rule. A direction is a
(source, target) pair named by the transfer entries; beside its adapters stand the random
control and the native ceiling (the actdiff entry on the target), and H1 reads the actdiff entry
on the source.

* H1: the vector works on its own model: source validation > 0.7.
* H2: direct transfer works only sometimes: success within 10-30%.
* H3: a linear adapter beats direct transfer by more than 20 points.

"Success" in the verdicts is the best over the strengths tried (both signs required at each);
the per-strength numbers are in the tables and the curves.

Use: ``write_summary(results_json)`` (hypotheses.md and two figures beside it), or
``hypotheses_table(results_json)`` for the markdown alone; ``python -m
steerlab_plugins.transfer.hypotheses RUN/results.json`` does the former.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from steerlab.api import Artifact, ConfigError, Figure, RunLayout, Section, atomic_write_text, export_control_vector, markdown_table, new_figure, read_json, save_figure

from steerlab_plugins.transfer.analysis import best, length_success

H1_MIN = 0.7
H2_RANGE = (0.10, 0.30)
H3_MARGIN = 0.20
LINEAR = ("ridge", "procrustes", "affine")
ORDER = ("direct", "random", *LINEAR, "native")


@dataclass
class EntryView:
    """One method entry of the run as the summary reads it."""

    name: str
    kind: str  # an adapter name, or "native" for an actdiff entry
    source: str  # the model the vector was extracted on
    target: str  # the model steered
    success: dict[float, float]
    n_prompts: int
    summary: dict[str, Any] = field(default_factory=dict)

    @property
    def best(self) -> float:
        return best(self.success)


def entry_views(results: dict[str, Any], metric: str = "words", direction: str = "decrease") -> list[EntryView]:
    """The transfer and actdiff entries of a results.json (others are skipped)."""
    models = results.get("study", {}).get("models", {})
    default = results.get("study", {}).get("model", "")
    views = []
    for name, entry in results.get("methods", {}).items():
        if entry.get("method") not in ("transfer", "actdiff"):
            continue
        records = entry.get("records", [])
        rows = [(r["prompt"], float(r["control"]), _number(r.get("scores", {}).get(metric))) for r in records]
        target = models.get(name, default)
        data = entry.get("analysis", {}).get("data", {})
        kind = data.get("adapter", "native") if entry["method"] == "transfer" else "native"
        source = data.get("source_model", target) if entry["method"] == "transfer" else target
        views.append(EntryView(name, kind, source, target, length_success(rows, direction),
                               len({r["prompt"] for r in records}), entry.get("summary", {})))
    return views


def _number(value: Any) -> float:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else float("nan")


def directions(views: list[EntryView]) -> list[tuple[str, str]]:
    """(source, target) of every transfer, in the order the study lists them."""
    return list(dict.fromkeys((v.source, v.target) for v in views if v.kind != "native"))


def row_for(views: list[EntryView], source: str, target: str, kind: str) -> EntryView | None:
    if kind == "native":
        return next((v for v in views if v.kind == "native" and v.target == target), None)
    return next((v for v in views if v.kind == kind and v.source == source and v.target == target), None)


def _pct(value: float) -> str:
    return "n/a" if not math.isfinite(value) else f"{100 * value:.0f}%"


def verdicts(views: list[EntryView], source: str, target: str) -> list[list[str]]:
    """[hypothesis, measured, threshold, verdict] rows for one direction."""
    own = row_for(views, source, source, "native")
    direct, rand = row_for(views, source, target, "direct"), row_for(views, source, target, "random")
    rows = []
    if own is None:
        rows.append(["H1 vector works on its own model", "no actdiff entry on the source", f"> {_pct(H1_MIN)}", "not measured"])
    else:
        ok = own.best > H1_MIN
        rows.append(["H1 vector works on its own model", f"{_pct(own.best)} (`{own.name}` on {source})", f"> {_pct(H1_MIN)}",
                     "supported" if ok else "not supported"])
    chance = f"; random control {_pct(rand.best)}" if rand else ""
    if direct is None:
        rows.append(["H2 direct transfer works only sometimes", "no direct entry", "10-30%", "not measured"])
    else:
        low, high = H2_RANGE
        verdict = "supported" if low <= direct.best <= high else \
            ("not supported: fails (below 10%)" if direct.best < low else "not supported: works more often (above 30%)")
        rows.append(["H2 direct transfer works only sometimes", f"{_pct(direct.best)} (`{direct.name}`{chance})", "10-30%", verdict])
    linear = [v for k in LINEAR if (v := row_for(views, source, target, k)) is not None]
    if direct is None or not linear:
        rows.append(["H3 a linear adapter beats direct by > 20 points", "no direct or linear adapter entry", "> +20 points", "not measured"])
    else:
        top = max(linear, key=lambda v: v.best if math.isfinite(v.best) else -1.0)
        gap = top.best - direct.best
        each = ", ".join(f"{v.kind} {_pct(v.best)}" for v in linear)
        rows.append(["H3 a linear adapter beats direct by > 20 points", f"{each}; best {top.kind} - direct = {100 * gap:+.0f} points",
                     "> +20 points", "supported" if gap > H3_MARGIN else "not supported"])
    return rows


def _se(a: float, b: float, n: int) -> float:
    """Standard error of the difference of two shares over the same n prompts (as if independent)."""
    return math.sqrt((a * (1 - a) + b * (1 - b)) / n) if n else float("nan")


def reading(views: list[EntryView], source: str, target: str) -> str:
    """Plain sentences that set the verdicts against the controls: a verdict on the thresholds alone
    can call noise a success (a direct transfer at 17% is 'supported' when a random direction also
    reaches 17%), so the best adapter is read against the random control and the native ceiling."""
    rand, ceiling = row_for(views, source, target, "random"), row_for(views, source, target, "native")
    direct = row_for(views, source, target, "direct")
    linear = [v for k in LINEAR if (v := row_for(views, source, target, k)) is not None and math.isfinite(v.best)]
    if not linear:
        return ""
    top = max(linear, key=lambda v: v.best)
    n = top.n_prompts
    said = [f"Best adapter: {top.kind} {_pct(top.best)}"
            + (f"; random control {_pct(rand.best)}" if rand else "")
            + (f"; {target}'s own vector (the ceiling) {_pct(ceiling.best)}." if ceiling else ".")]
    if rand is not None and math.isfinite(rand.best):
        gap, se = top.best - rand.best, _se(top.best, rand.best, n)
        if gap <= se:
            said.append(f"That is within one standard error ({100 * se:.0f} points) of the random direction: on this "
                        "evidence no adapter moves length more than a random vector of the same norm does.")
        else:
            said.append(f"It beats the random direction by {100 * gap:.0f} points ({gap / se:.1f} standard errors of "
                        f"{100 * se:.0f} points).")
        if direct is not None and abs(direct.best - rand.best) <= _se(direct.best, rand.best, n):
            said.append(f"Direct transfer ({_pct(direct.best)}) cannot be told apart from the random control.")
    if ceiling is not None and math.isfinite(ceiling.best):
        if ceiling.best <= H2_RANGE[1]:
            said.append(f"{target}'s own vector reaches only {_pct(ceiling.best)}: length is not steerable this way on "
                        f"{target} at these strengths, so this direction cannot show transfer either way.")
        elif top.best >= ceiling.best - _se(top.best, ceiling.best, n):
            said.append("The adapter reaches the native ceiling within one standard error.")
        else:
            said.append(f"The adapter recovers {top.best / ceiling.best:.0%} of the native ceiling.")
    return "**Against the controls.** " + " ".join(said)


def direction_table(views: list[EntryView], source: str, target: str) -> str:
    strengths = sorted({c for v in views for c in v.success})
    header = ["method", "entry", *[f"success@{c:g}" for c in strengths], "best", "fit R²", "cos(mapped, native)"]
    rows = []
    for kind in ORDER:
        view = row_for(views, source, target, kind)
        if view is None:
            continue
        label = "native (actdiff on target)" if kind == "native" else kind
        rows.append([label, f"`{view.name}`", *[view.success.get(c, float("nan")) for c in strengths], view.best,
                     _number(view.summary.get("fit_r2")), _number(view.summary.get("native_cosine"))])
    return markdown_table(header, rows)


def render(views: list[EntryView]) -> str:
    n = max((v.n_prompts for v in views), default=0)
    lines = ["## Cross-model transfer: hypotheses", "",
             f"Success: the share of the {n} eval prompts whose answer is shorter at +c and longer at -c than at 0 "
             "(words; ties fail); verdicts use the best strength tried. A share p over n prompts has a standard "
             f"error of sqrt(p(1-p)/n){f' (up to {50 / math.sqrt(n):.0f} points here)' if n else ''}."]
    for source, target in directions(views):
        lines += ["", f"### {source} → {target}", "", direction_table(views, source, target), "",
                  markdown_table(["hypothesis", "measured", "threshold", "verdict"], verdicts(views, source, target))]
        said = reading(views, source, target)
        lines += ["", said] if said else []
    if not directions(views):
        lines += ["", "No transfer entries in this run."]
    return "\n".join(lines) + "\n"


def hypotheses_table(results_json_path: Path | str) -> str:
    """Markdown: per direction, every method's success beside the random control and the native
    ceiling, then H1/H2/H3 with measured values and verdicts."""
    return render(entry_views(read_json(Path(results_json_path), "results")))


def _short(model: str) -> str:
    return Path(model).name.split("-instruct")[0]


def transfer_matrix(views: list[EntryView], path: Path) -> bool:
    """Heat map: rows source → target, columns methods, cells the best success."""
    pairs = directions(views)
    if not pairs:
        return False
    grid = [[(v.best if (v := row_for(views, s, t, k)) else float("nan")) for k in ORDER] for s, t in pairs]
    fig, ax = new_figure(width=7.0, height=1.2 + 0.7 * len(pairs))
    image = ax.imshow(grid, vmin=0.0, vmax=1.0, cmap="viridis", aspect="auto")
    ax.set_xticks(range(len(ORDER)), ORDER, rotation=25, ha="right")
    ax.set_yticks(range(len(pairs)), [f"{_short(s)} → {_short(t)}" for s, t in pairs])
    for i, row in enumerate(grid):
        for j, value in enumerate(row):
            ax.text(j, i, "-" if math.isnan(value) else f"{value:.2f}", ha="center", va="center",
                    color="white" if not math.isnan(value) and value < 0.5 else "black")
    ax.set_title("Transfer success (best strength): source → target x method")
    fig.colorbar(image, ax=ax, label="share of prompts")
    save_figure(fig, path)
    return True


def success_curves(views: list[EntryView], path: Path) -> bool:
    """One panel per direction: success against strength, one line per method."""
    pairs = directions(views)
    if not pairs:
        return False
    fig, axes = new_figure(ncols=len(pairs), width=4.5, height=3.6)
    axes = [axes] if len(pairs) == 1 else list(axes)
    # Distinct colour and marker per method, and each method's points nudged sideways by a few
    # percent of the strength: with 12 prompts many methods tie, and tied lines hid each other.
    styles = {"direct": ("C1", ":", "v"), "random": ("0.5", "--", "x"), "ridge": ("C2", "-", "s"),
              "procrustes": ("C3", "-", "D"), "affine": ("C4", "-", "^"), "native": ("k", "-", "o")}
    for ax, (source, target) in zip(axes, pairs):
        tried: set[float] = set()
        for k, kind in enumerate(ORDER):
            view = row_for(views, source, target, kind)
            if view is None or not view.success:
                continue
            tried.update(view.success)
            colour, line, marker = styles.get(kind, (f"C{k}", "-", "o"))
            xs = sorted(view.success)
            nudge = 1 + 0.015 * (k - (len(ORDER) - 1) / 2)
            ax.plot([x * nudge for x in xs], [view.success[x] for x in xs], marker=marker, color=colour,
                    linestyle=line, label=kind)
        ticks = sorted(tried)
        ax.set_xticks(ticks, [f"{c:g}" for c in ticks])  # ticks only at the strengths tried (points are nudged)
        if len(ticks) == 1:
            ax.set_xlim(ticks[0] * 0.9, ticks[0] * 1.1)
        ax.set_ylim(-0.02, 1.02)
        ax.set_xlabel("strength |c|")
        ax.set_ylabel("success (both signs)")
        ax.set_title(f"{_short(source)} → {_short(target)}")
        ax.legend(fontsize=7)
    save_figure(fig, path)
    return True


def write_summary(results_json_path: Path | str, out_dir: Path | str | None = None) -> Path:
    """hypotheses.md plus figures/transfer_matrix.png and figures/transfer_success.png, in
    ``out_dir`` (default: the run folder holding results.json). Returns the markdown's path."""
    results_path = Path(results_json_path)
    out = Path(out_dir) if out_dir is not None else results_path.parent
    views = entry_views(read_json(results_path, "results"))
    text = render(views)
    for stem, draw, caption in (("transfer_matrix", transfer_matrix, "Transfer matrix"),
                                ("transfer_success", success_curves, "Success against strength")):
        if draw(views, out / "figures" / f"{stem}.png"):
            text += f"\n![{caption}](figures/{stem}.png)\n"
    atomic_write_text(out / "hypotheses.md", text)
    return out / "hypotheses.md"


class TransferReport:
    """The transfer hypotheses as a study-level report (``[study] reports = ["transfer"]``)."""

    name = "transfer"
    description = "H1 / H2 / H3 per direction, the transfer matrix and success-vs-strength curves"

    def section(self, results: Any, layout: RunLayout) -> Section | None:
        views = entry_views(results.to_json())
        if not views:
            return None
        text, drawn = render(views), []
        for stem, draw, caption in (("transfer_matrix", transfer_matrix, "Transfer matrix: best success per source -> target and method"),
                                    ("transfer_success", success_curves, "Length-direction success against strength")):
            if draw(views, layout.figure(stem)):
                drawn.append(Figure(layout.relative(layout.figure(stem)), caption))
        exported = export_vectors(results, layout)
        if exported:
            text += (f"\n\nEvery vector as a llama.cpp control vector (strength {EXPORT_STRENGTH} baked in; `--control-vector FILE` "
                     "in llama.cpp, or `steerlab import gguf FILE --model NAME`): " + ", ".join(f"`{p}`" for p in exported) + "\n")
        return Section(markdown=text, figures=drawn, data={"exports": exported})


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
