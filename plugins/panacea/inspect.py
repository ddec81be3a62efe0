"""Which layers carry the preference? Per-layer singular-value contributions of a Panacea adapter.

Each adapted Linear's update is a sum of rank-1 terms sigma_i u_i v_i^T; the size of a term is
|sigma_i| * ||u_i|| * ||v_i||. The first k terms are shared by every preference; the last m are
s_l * lambda_i. Summing each group per (block, module) gives two heatmaps and a table.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from steerlab.api import Artifact, Figure, Lab, Section, atomic_write_text, help_field, markdown_table, new_figure, save_figure

from steerlab_plugins.panacea.layers import PanaceaAdapter

_SITE = re.compile(r"^blocks\.(\d+)\.(.+)$")


@torch.no_grad()
def contribution_grid(adapter: PanaceaAdapter, preference: list[float]) -> tuple[list[int], list[str], np.ndarray, np.ndarray]:
    """(blocks, modules, shared[b, j], preference_part[b, j]) at ``preference``."""
    adapter.set_preference(preference)
    cells: dict[tuple[int, str], tuple[float, float]] = {}
    for site, layer in zip(adapter.sites, adapter.layers):
        match = _SITE.match(site)
        if not match:
            continue
        terms = layer.contributions().float()
        cells[(int(match.group(1)), match.group(2))] = (float(terms[: layer.rank].sum()), float(terms[layer.rank :].sum()))
    blocks = sorted({b for b, _ in cells})
    modules = sorted({m for _, m in cells})
    shared = np.full((len(blocks), len(modules)), np.nan)
    pref = np.full_like(shared, np.nan)
    for (b, m), (s, p) in cells.items():
        shared[blocks.index(b), modules.index(m)], pref[blocks.index(b), modules.index(m)] = s, p
    return blocks, modules, shared, pref


def plot_heatmaps(blocks: list[int], modules: list[str], shared: np.ndarray, pref: np.ndarray, preference: list[float], path: Path) -> None:
    fig, axes = new_figure(ncols=2, width=5.0, height=max(4.0, 0.18 * len(blocks) + 1.5))
    for ax, data, title in ((axes[0], shared, "shared terms (sum over k)"), (axes[1], pref, f"preference terms at lambda={preference}")):
        image = ax.imshow(data, aspect="auto", cmap="viridis")
        ax.set_xticks(range(len(modules)), modules, rotation=60, fontsize=7)
        ax.set_yticks(range(len(blocks)), [str(b) for b in blocks], fontsize=6)
        ax.set_ylabel("block")
        ax.set_title(title, fontsize=9)
        fig.colorbar(image, ax=ax, fraction=0.046)
    save_figure(fig, path)


def svd_table(blocks: list[int], shared: np.ndarray, pref: np.ndarray) -> str:
    rows = []
    for i, block in enumerate(blocks):
        s, p = float(np.nansum(shared[i])), float(np.nansum(pref[i]))
        rows.append([block, f"{s:.3f}", f"{p:.3f}", f"{p / (s + p) if s + p > 0 else float('nan'):.3f}"])
    return markdown_table(["block", "shared", "preference", "preference share"], rows)


def inspect_svd(adapter: PanaceaAdapter, preference: list[float], out_dir: Path, stem: str = "svd") -> tuple[str, Path, dict[str, float]]:
    """Write the heatmap PNG and a Markdown table; return (markdown, png path, summary)."""
    blocks, modules, shared, pref = contribution_grid(adapter, preference)
    png = out_dir / f"{stem}.png"
    plot_heatmaps(blocks, modules, shared, pref, preference, png)
    per_block_pref = np.nansum(pref, axis=1)
    top = [blocks[i] for i in np.argsort(-per_block_pref)[:5]]
    share = float(np.nansum(pref) / max(np.nansum(pref) + np.nansum(shared), 1e-12))
    text = (f"Preference part of the update at lambda={preference}: {100 * share:.1f}% of the summed rank-1 term sizes; "
            f"blocks carrying most of it: {', '.join(map(str, top))}.\n\n{svd_table(blocks, shared, pref)}\n")
    atomic_write_text(out_dir / f"{stem}.md", text)
    return text, png, {"preference_share": share}


def plot_training(log: list[dict[str, Any]], dimensions: list[str], path: Path) -> None:
    fig, ax = new_figure()
    steps = [row["step"] for row in log]
    window = max(1, len(log) // 20)
    for dim in dimensions:
        values = np.array([row[f"loss.{dim}"] for row in log])
        smooth = np.convolve(values, np.ones(window) / window, mode="valid")
        ax.plot(steps[window - 1 :], smooth, label=dim)
    ax.set_xlabel("step")
    ax.set_ylabel(f"SFT loss (moving mean of {window})")
    ax.set_title("Panacea training: per-dimension loss")
    ax.legend()
    save_figure(fig, path)


def svd_analysis(adapter: PanaceaAdapter, artifact: Artifact, lab: Lab, out_dir: Path) -> Section:
    m = len(artifact.meta["dimensions"])
    centre = [round(1 / m, 4)] * m
    text, png, summary = inspect_svd(adapter, centre, out_dir)
    curve = out_dir / "training.png"
    plot_training(artifact.meta["train_log"], artifact.meta["dimensions"], curve)
    return Section(
        summary=summary,
        figures=[Figure(lab.layout.relative(png), "Singular-value contributions per block and module (shared vs preference)"),
                 Figure(lab.layout.relative(curve), "Per-dimension SFT loss during training")],
        markdown="### Which layers carry the preference\n\n" + text,
    )


@dataclass(frozen=True)
class SvdOptions:
    control: str | None = help_field(None, "preference to inspect, e.g. helpful=0.2,humorous=0.5,philosophical=0.3 (default: the centre)")


class SvdInspector:
    """``steerlab inspect svd RUN_DIR [--control ...]``: heatmap PNG + table of contributions."""

    name = "svd"
    description = "Panacea: singular-value contributions per block and module, shared vs preference part"
    Options = SvdOptions

    def applies_to(self, entry: Any, artifact: Artifact) -> bool:
        return entry.method == "panacea"

    def inspect(self, run: Any, options: SvdOptions) -> Section:
        space = run.entry.space
        preference = list(run.control(options.control)) if options.control else list(space.centre())
        adapter = run.method.adapter(run.lab, run.artifact)
        text, png, summary = inspect_svd(adapter, preference, run.lab.layout.inspect, f"svd_{run.entry.name}")
        return Section(summary=summary, markdown=text + f"\nwritten: {png} and {png.with_suffix('.md')}",
                       figures=[Figure(run.lab.layout.relative(png), "singular-value contributions")])
