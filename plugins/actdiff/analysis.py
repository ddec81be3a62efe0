"""actdiff's extras: source validation (does each prompt move the expected way for both signs?)
and a layer sweep (the same relative strength applied at other blocks)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from steerlab.api import (Artifact, Figure, Lab, MethodEntry, Record, Section, SweepPoint, SweepResult, new_figure,
                          read_json, save_figure, symmetric_success, word_count, write_json)

if TYPE_CHECKING:
    from steerlab_plugins.actdiff.config import ActDiffConfig
    from steerlab_plugins.actdiff.method import ActDiffMethod


def source_validation(records: list[Record], metric: str, direction: str) -> dict[str, float]:
    """For each symmetric pair of controls +c/-c: the share of prompts whose ``metric`` moves the
    expected way from control 0 under *both* signs (ties count as failures; core's ``symmetric_success``)."""
    rows = [(r.prompt, float(r.control), r.scores[metric]) for r in records if metric in r.scores]
    return {f"source_validation@{c:g}": share for c, share in symmetric_success(rows, direction).items()}


def layer_sweep(method: ActDiffMethod, lab: Lab, entry: MethodEntry, artifact: Artifact, folder: Path) -> list[dict[str, Any]]:
    """Mean words at +c, 0 and -c for every layer in ``config.layer_sweep`` (checkpointed per
    layer; the three controls of a layer share batches)."""
    config: ActDiffConfig = entry.config
    checkpoint = folder / "layer_sweep.json"
    rows: list[dict[str, Any]] = read_json(checkpoint, "layer sweep") if checkpoint.exists() else []
    prompts = lab.eval_prompts()[: config.layer_sweep_prompts]
    settings = dataclasses.replace(lab.settings, max_new_tokens=config.layer_sweep_tokens)
    c = config.layer_sweep_control
    controls = [c, 0.0, -c]
    todo = [layer for layer in config.layer_sweep if layer not in {r["layer"] for r in rows}]
    for layer in lab.progress(todo, "layer sweep", len(todo)):
        lab.seeded(f"layer_sweep:{layer}")
        row_controls = [x for x in controls for _ in prompts]
        gens = lab.answer(method, method.at_layer(artifact, layer), entry.space, row_controls, prompts * len(controls),
                          settings, desc=f"layer {layer}")
        row: dict[str, Any] = {"layer": layer}
        for k, control in enumerate(controls):
            mine = gens[k * len(prompts):(k + 1) * len(prompts)]
            row[f"words@{control:+g}"] = float(np.mean([word_count(g.output) for g in mine]))
            row[f"stopped@{control:+g}"] = float(np.mean([g.stopped for g in mine]))
        rows.append(row)
        write_json(checkpoint, rows)
    return sorted(rows, key=lambda r: r["layer"])


def plot_layer_sweep(rows: list[dict[str, Any]], c: float, labels: tuple[str, str], path: Path) -> None:
    fig, ax = new_figure()
    layers = [r["layer"] for r in rows]
    for control, label, style in ((c, f"+{c:g} (towards {labels[0]})", "o-"), (0.0, "0 (unsteered)", "k--"), (-c, f"-{c:g} (towards {labels[1]})", "s-")):
        ax.plot(layers, [r[f"words@{control:+g}"] for r in rows], style, label=label)
    ax.set_xlabel("block steered")
    ax.set_ylabel("mean words per answer")
    ax.set_title("Layer sweep: the same relative strength at each block")
    ax.legend()
    save_figure(fig, path)


# Measured by the steerlab team with the peer libraries themselves on SmolLM2-135M-Instruct (2 CPU
# cores, greedy decoding): quoted beside our numbers, never used to compute anything.
PEER_FIGURE = ("steering-vectors 0.12, mean-difference vector at block 15, multiplier +1, 10 requests, "
               "80-token cap: ~60 -> ~14 words; repeng 0.4 (PCA, blocks 10-20) at +6: ~36 words")
FLUENT_PERPLEXITY_RATIO = 2.0
FLUENT_DISTINCT_RATIO = 0.75


def usable_range(points: list[SweepPoint]) -> tuple[float, float] | None:
    """The widest interval of controls around 0 that stays fluent: mean perplexity within
    ``FLUENT_PERPLEXITY_RATIO`` x the unsteered one and distinct-trigram share at least
    ``FLUENT_DISTINCT_RATIO`` x the unsteered one (None without fluency scores at 0)."""
    rows = {float(p.control): p.scores for p in points}
    if 0.0 not in rows or "perplexity" not in rows[0.0] or "distinct3" not in rows[0.0]:
        return None
    ppl_limit = FLUENT_PERPLEXITY_RATIO * rows[0.0]["perplexity"]
    distinct_floor = FLUENT_DISTINCT_RATIO * rows[0.0]["distinct3"]
    ok = lambda c: rows[c]["perplexity"] <= ppl_limit and rows[c]["distinct3"] >= distinct_floor  # noqa: E731
    low = high = 0.0
    for c in sorted((c for c in rows if c > 0)):
        if not ok(c):
            break
        high = c
    for c in sorted((c for c in rows if c < 0), reverse=True):
        if not ok(c):
            break
        low = c
    return low, high


def _change(value: float, reference: float) -> str:
    return f"{100 * (value / reference - 1):+.0f}%" if reference > 0 else "unsteered answers are empty"


def narrative(method: ActDiffMethod, artifact: Artifact, config: ActDiffConfig, points: list[SweepPoint], summary: dict[str, float]) -> str:
    """What the numbers say, written from the numbers."""
    rows = {float(p.control): p.scores for p in points}
    if 0.0 not in rows or "words" not in rows[0.0]:
        return ""
    base = rows[0.0]
    lines = [f"Unsteered: {base['words']:.0f} words per answer on average, {100 * base.get('stopped', float('nan')):.0f}% "
             f"ended before the token cap."]
    for c in sorted(c for c in rows if c != 0.0):
        r = rows[c]
        lines.append(f"- strength {c:+g} (raw multiplier {method.raw_equivalent(artifact, c):+.2f}, towards "
                     f"{config.positive_label if c > 0 else config.negative_label}): {r['words']:.0f} words "
                     f"({_change(r['words'], base['words'])}), {100 * r.get('stopped', float('nan')):.0f}% ended before the cap, "
                     f"perplexity {r.get('perplexity', float('nan')):.1f} (unsteered {base.get('perplexity', float('nan')):.1f}), "
                     f"distinct trigrams {r.get('distinct3', float('nan')):.2f} (unsteered {base.get('distinct3', float('nan')):.2f})")
    usable = usable_range(points)
    if usable:
        lines.append(f"\nUsable range (mean perplexity within {FLUENT_PERPLEXITY_RATIO:g}x and distinct-trigram share at "
                     f"least {FLUENT_DISTINCT_RATIO:g}x the unsteered): "
                     f"{usable[0]:+g} to {usable[1]:+g}.")
    validations = {k: v for k, v in summary.items() if k.startswith("source_validation")}
    if validations:
        lines.append("Source validation (share of prompts whose length moves the expected way under both signs): "
                     + ", ".join(f"±{k.split('@')[1]}: {v:.2f}" for k, v in sorted(validations.items())))
    lines.append(f"\nFor reference, peers on this model: {PEER_FIGURE}.")
    return "\n".join(lines)


def analyze(method: ActDiffMethod, lab: Lab, entry: MethodEntry, artifact: Artifact, result: SweepResult, folder: Path) -> Section:
    config: ActDiffConfig = entry.config
    section = Section()
    if config.validate_metric:
        section.summary.update(source_validation(result.records, config.validate_metric, config.validate_direction))
    layer = str(artifact.meta["layer"])
    section.summary["vector_norm"] = artifact.meta["vector_norm"][layer]
    section.summary["typical_residual_norm"] = artifact.meta["typical_norm"][layer]
    section.data["layer"] = int(artifact.meta["layer"])  # the block steered: a study summary chooses among per-block entries
    section.data["raw_equivalent"] = {p.label: method.raw_equivalent(artifact, float(p.control)) for p in result.points}
    section.markdown = narrative(method, artifact, config, result.points, section.summary)
    if config.layer_sweep:
        rows = layer_sweep(method, lab, entry, artifact, folder)
        figure = folder / "layer_sweep.png"
        plot_layer_sweep(rows, config.layer_sweep_control, (config.positive_label, config.negative_label), figure)
        section.figures.append(Figure(lab.layout.relative(figure), "Mean words per answer when the vector is applied at each block"))
        section.data["layer_sweep"] = rows
    return section
