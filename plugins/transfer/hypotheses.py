"""The study-level summary of a transfer study, from a finished results.json (no model, no metric).

Every entry's success is recomputed from its records, per prompt (core's ``moves_both_ways``:
the answer is shorter at +c and longer at -c than at 0), so ``actdiff`` entries (the native
vectors) and ``transfer`` entries are measured by the same rule. A direction is a (source, target)
pair named by the transfer entries; beside its adapters stand the random control and the native
ceiling (the actdiff entries on the target), and H1 reads the actdiff entries on the source.

Choices read the dev half of the prompts, verdicts the test half (``evidence``): each entry's
strength, the layer pair where a kind has several per-block entries (actdiff natives per block, or
transfers at several blocks), and the linear adapter that stands for "an adapter" are all chosen
on dev; the test half is read at the chosen setting only. Every hypothesis is a paired difference
against the random direction (the same drawn test prompts for both, core's bootstrap), steering
the same model at the same block where the run has one, and its verdict is read from that
interval alone (``steerlab.api.verdict``): better (the interval lies above 0), worse (below) or
not distinguishable (it holds 0). No point threshold decides anything.

* H1: the vector works on its own model: the native vector on the source, minus a random direction there;
* H2: direct transfer (no map) works: direct minus the random direction on the target;
* H3: a linear adapter works: the adapter chosen on dev minus the random direction on the target
  (its gain over direct transfer, paired too, is stated beside it).

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

from steerlab.api import (Artifact, ConfigError, Estimate, Figure, RunLayout, Section, atomic_write_text, direction_sign,
                          export_control_vector, markdown_table, read_json, verdict)

from steerlab_plugins.transfer.evidence import LINEAR, ORDER, EntryView, Halves, Measured, best_on_dev, measure, paired
from steerlab_plugins.transfer.figures import success_curves, transfer_matrix

TITLES = {"H1": "H1 the vector works on its own model", "H2": "H2 direct transfer works",
          "H3": "H3 a linear adapter (chosen on dev) works"}


def _blocks(entry: dict[str, Any]) -> tuple[int | None, int | None]:
    summary, data = entry.get("summary", {}), entry.get("analysis", {}).get("data", {})
    if entry.get("method") == "actdiff":
        layer = data.get("layer")
        return (layer, layer) if isinstance(layer, int) else (None, None)
    pair = tuple(summary.get(k) for k in ("source_layer", "target_layer"))
    return tuple(int(b) if isinstance(b, (int, float)) and math.isfinite(b) else None for b in pair)  # type: ignore[return-value]


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
        views.append(EntryView(name, kind, source, target, rows, direction_sign(direction), entry.get("summary", {}),
                               _blocks(entry), data.get("layer_choice", {}) or {}))
    return views


def study_seeds(results: dict[str, Any]) -> list[int]:
    study = results.get("study", {})
    return list(study.get("seeds") or [study.get("seed", 0)])


def _number(value: Any) -> float:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else float("nan")


def directions(views: list[EntryView]) -> list[tuple[str, str]]:
    """(source, target) of every transfer, in the order the study lists them."""
    return list(dict.fromkeys((v.source, v.target) for v in views if v.kind != "native"))


def rows_for(views: list[EntryView], source: str, target: str, kind: str) -> list[EntryView]:
    """Every entry of ``kind`` in this direction (several when a kind is run at several blocks);
    ``native``: every actdiff entry on ``target``."""
    if kind == "native":
        return [v for v in views if v.kind == "native" and v.target == target]
    return [v for v in views if v.kind == kind and v.source == source and v.target == target]


def randoms_on(views: list[EntryView], model: str) -> list[EntryView]:
    """Random directions steering ``model`` (any source: the control does not read the source)."""
    return [v for v in views if v.kind == "random" and v.target == model]


@dataclass
class Direction:
    """One (source, target) read through the split: per kind, the entry (layer pair) and strength
    chosen on dev; the linear adapter chosen on dev; the random controls steering each model."""

    source: str
    target: str
    halves: Halves
    entries: dict[str, Measured]  # kind -> the entry chosen on dev ("own": the native vector on the source)
    candidates: dict[str, list[Measured]]  # kind -> every entry of that kind (the layer pairs dev chose among)
    randoms: dict[str, list[Measured]]  # model -> random directions steering it
    adapter: Measured | None  # the linear adapter with the best dev success

    @classmethod
    def of(cls, views: list[EntryView], source: str, target: str, halves: Halves) -> "Direction":
        found = {k: rows_for(views, source, target, k) for k in ORDER}
        found["own"] = rows_for(views, source, source, "native")
        candidates = {k: [measure(v, halves) for v in vs] for k, vs in found.items() if vs}
        entries = {k: best_on_dev(ms) or ms[0] for k, ms in candidates.items()}  # the first listed when dev chose none
        randoms = {m: [measure(v, halves) for v in randoms_on(views, m)] for m in {source, target}}
        return cls(source, target, halves, entries, candidates, randoms, best_on_dev([entries[k] for k in LINEAR if k in entries]))

    def difference(self, a: Measured | None, b: Measured | None) -> Estimate | None:
        return paired(a, b, self.halves) if a is not None and b is not None else None

    def control_for(self, m: Measured | None) -> Measured | None:
        """The random direction steering ``m``'s model at ``m``'s block (any block when none is there)."""
        if m is None:
            return None
        pool = [r for r in self.randoms.get(m.view.target, []) if r.view is not m.view]
        same = [r for r in pool if r.view.blocks[1] == m.view.blocks[1]]
        return (same or pool or [None])[0]


def _diff(name: str, e: Estimate | None) -> str:
    return f"{name} {e.text()}" if e is not None else f"{name}: not measured"


def _at(m: Measured) -> str:
    where = f"block {m.view.pair}"
    return f"`{m.view.name}` ({where}) at ±{m.strength:g}" if m.strength is not None else f"`{m.view.name}` ({where}, no strength chosen)"


def read_against_random(key: str, d: Direction, m: Measured | None, missing: str) -> list[str]:
    """[hypothesis, chosen on dev, measured on test, minus random (paired, test), verdict]: the
    verdict is better / worse / not distinguishable from the interval of the paired difference."""
    if m is None:
        return [TITLES[key], missing, "", "", "not measured"]
    rand = d.control_for(m)
    if rand is None:
        return [TITLES[key], _at(m), m.test.text_n(), f"no random direction steers {m.view.target}", "not measured"]
    versus = against_random(d, m)
    said = verdict(versus.low, versus.high, True) if versus is not None else "not measured"
    control = f"minus `{rand.view.name}`" + (f" (±{rand.strength:g})" if rand.strength is not None else "")
    return [TITLES[key], f"{_at(m)}; dev {m.dev.text()}", m.test.text_n(), _diff(control, versus), said]


def against_random(d: Direction, m: Measured | None) -> Estimate | None:
    """``m`` minus the random direction steering its model at its block: paired, on the test prompts."""
    return d.difference(m, d.control_for(m))


def tested(d: Direction) -> dict[str, Measured | None]:
    """The entry each hypothesis stands on: H1 the source's own vector, H2 direct transfer, H3 the
    linear adapter chosen on dev."""
    return {"H1": d.entries.get("own"), "H2": d.entries.get("direct"), "H3": d.adapter}


def h1(d: Direction) -> list[str]:
    return read_against_random("H1", d, tested(d)["H1"], f"no actdiff entry on {d.source}")


def h2(d: Direction) -> list[str]:
    return read_against_random("H2", d, tested(d)["H2"], "no direct entry")


def h3(d: Direction) -> list[str]:
    return read_against_random("H3", d, tested(d)["H3"], "no linear adapter entry (or no dev prompt to choose one)")


def verdicts(d: Direction) -> list[list[str]]:
    """[hypothesis, chosen on dev, measured on test, paired difference against random, verdict] per hypothesis."""
    return [h1(d), h2(d), h3(d)]


def _read(name: str, e: Estimate) -> str:
    """``ridge minus direct +0.083 [-0.2, 0.3] (not distinguishable)``: the verdict of a higher-is-better share."""
    return f"{name} {e.text()} ({verdict(e.low, e.high, True)})"


def reading(d: Direction) -> str:
    """Sentences on what the hypotheses table does not hold: the chosen adapter against direct
    transfer and against the target's own vector, each a paired difference on the test prompts."""
    top, ceiling, direct = d.adapter, d.entries.get("native"), d.entries.get("direct")
    said = []
    over_direct = d.difference(top, direct)
    if over_direct is not None:
        said.append(_read(f"The chosen adapter ({top.view.kind}) minus direct transfer", over_direct) + ".")
    native_random = d.difference(ceiling, d.control_for(ceiling))
    if native_random is not None and verdict(native_random.low, native_random.high, True) != "better":
        said.append(_read(f"{d.target}'s own vector (chosen on dev, block {ceiling.view.pair}) minus random", native_random)
                    + f": length is not shown steerable this way on {d.target} at these blocks and strengths, so this "
                    "direction cannot show transfer either way.")
    gap = d.difference(top, ceiling)
    if gap is not None:
        said.append(_read(f"The chosen adapter minus {d.target}'s own vector (the ceiling)", gap) + ".")
    return ("**Beside the hypotheses** (paired differences on the test prompts, 95% intervals). " + " ".join(said)) if said else ""


def _cell(e: Estimate | None) -> str:
    return e.text() if e is not None and math.isfinite(e.value) else "n/a"


def direction_table(views: list[EntryView], d: Direction) -> str:
    """Every entry of the direction: its dev success per strength (what chose), and its test
    success at the chosen strength only; the entry dev chose per kind is marked."""
    strengths = sorted({c for v in views for c in v.strengths})
    header = ["method", "entry", "block", "strength (chosen on dev)", "success on test (at the choice)",
              "n test (prompts x seeds)", *[f"dev@{c:g}" for c in strengths]]
    rows = []
    pool = {**d.candidates, "random": list({id(r.view): r for ms in d.randoms.values() for r in ms}.values())}
    for kind in ("own", *ORDER):
        for m in pool.get(kind, []):
            label = {"native": f"native on {d.target}", "own": f"native on {d.source} (H1)",
                     "random": f"random on {m.view.target}"}.get(kind, kind)
            mark = " (chosen on dev)" if d.entries.get(kind) is m and len(pool.get(kind, [])) > 1 else ""
            rows.append([label + mark, f"`{m.view.name}`", m.view.pair, "n/a" if m.strength is None else f"±{m.strength:g}",
                         _cell(m.test), f"{m.test.n_prompts}x{m.test.n_seeds}", *[_cell(m.per_strength.get(c)) for c in strengths]])
    return markdown_table(header, rows)


def fit_table(d: Direction) -> str:
    """Properties of each fitted map (held-out fit texts, not eval prompts): one number per artifact, no interval."""
    rows = [[k, f"`{m.view.name}`", _number(m.view.summary.get("fit_r2")), _number(m.view.summary.get("native_cosine"))]
            for k, ms in d.candidates.items() if k in ORDER and k != "native" for m in ms]
    return markdown_table(["method", "entry", "fit R² (held-out fit texts)", "cos(mapped, native)"], rows) if rows else ""


def layer_choices(d: Direction) -> str:
    """Which per-block entries chose each transfer's blocks on dev (recorded when the entry trained)."""
    lines = []
    for kind, ms in d.candidates.items():
        for m in ms:
            for side, pick in m.view.layer_choice.items():
                tried = ", ".join(f"`{k}` {'n/a' if v is None else f'{v:.2f}'}" for k, v in pick.get("dev_success", {}).items())
                lines.append(f"- `{m.view.name}`: {side} block {pick.get('layer')} from `{pick.get('entry')}` (dev success: {tried})")
    return "\n".join(dict.fromkeys(lines))


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
        return {f"{d.source} -> {d.target}": {row[0].split()[0]: row[4] for row in verdicts(d)} for d in self.directions}

    def differences(self) -> dict[str, dict[str, dict[str, object] | None]]:
        """``{"source -> target": {"H1": estimate JSON or None, ...}}``: each hypothesis's paired test
        difference against the random direction, for results.json (the README's table reads it)."""
        out: dict[str, dict[str, dict[str, object] | None]] = {}
        for d in self.directions:
            found = {key: against_random(d, m) for key, m in tested(d).items()}
            out[f"{d.source} -> {d.target}"] = {key: e.to_json() if e is not None else None for key, e in found.items()}
        return out


def render(summary: Summary) -> str:
    split = summary.halves.split
    lines = ["## Cross-model transfer: hypotheses", "",
             "Success: the share of prompts whose answer is shorter at +c and longer at -c than at 0 (words; ties fail). "
             f"Each entry's strength, the block (layer pair) among per-block entries and the linear adapter H3 stands on are "
             f"{split.describe()}. The test half is read at the chosen setting only; every share is a test share with its 95% "
             "interval (paired bootstrap over seeds, then prompts) and n (prompts x seeds). Each hypothesis is the paired "
             "difference against a random direction steering the same model at the same block, and its verdict is read from "
             "that interval alone: better (above 0), worse (below 0) or not distinguishable (it holds 0)."]
    if not split.usable:
        lines += ["", f"This run's prompts do not fill both halves ({len(split.dev)} dev, {len(split.test)} test): "
                  "nothing can be chosen on one and reported on the other, so the verdicts are not measured."]
    for d in summary.directions:
        lines += ["", f"### {d.source} → {d.target}", "",
                  markdown_table(["hypothesis", "chosen on dev", "success on test", "minus random (paired, test)", "verdict"], verdicts(d)),
                  "", "Every entry (dev success per strength: what chose; test only at the choice):", "", direction_table(summary.views, d)]
        said = reading(d)
        lines += ["", said] if said else []
        chosen = layer_choices(d)
        lines += ["", "Blocks chosen on dev when the entries trained:", "", chosen] if chosen else []
        fit = fit_table(d)
        lines += ["", "Each fitted map (one number per artifact, on its held-out fit texts: no prompt interval):", "", fit] if fit else []
    if not summary.directions:
        lines += ["", "No transfer entries in this run."]
    return "\n".join(lines) + "\n"


def hypotheses_table(results_json_path: Path | str) -> str:
    """Markdown: per direction, H1/H2/H3 against the random control with intervals and verdicts,
    then every entry (chosen on dev, reported on test)."""
    return render(Summary.of(read_json(Path(results_json_path), "results")))


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
                                    ("transfer_success", success_curves, "Length-direction success against strength on the dev prompts (what chose); stars: the test success at the chosen strength")):
            if draw(summary, layout.figure(stem)):
                drawn.append(Figure(layout.relative(layout.figure(stem)), caption))
        exported = export_vectors(results, layout)
        if exported:
            text += (f"\n\nEvery vector as a llama.cpp control vector (strength {EXPORT_STRENGTH} baked in; `--control-vector FILE` "
                     "in llama.cpp, or `steerlab import gguf FILE --model NAME`): " + ", ".join(f"`{p}`" for p in exported) + "\n")
        return Section(markdown=text, figures=drawn, data={"exports": exported, "verdicts": summary.verdicts(),
                                                                 "against_random": summary.differences()})


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
