"""Which layers carry the preference? The Panacea adapter's update per layer, made comparable.

Each adapted Linear's update splits into a shared part (the first k singular values) and a
preference part (s_l * lambda). Raw sizes mostly mirror module shapes (the wide MLP projections
look brightest whatever they learned), so every measure here is relative to the module's own
base weight norm ||W0||_F, and the third view answers the question directly: how much the update
changes between preference corners, ||dW(e_i) - dW(e_j)|| / ||W0||.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from steerlab.api import (Artifact, Figure, Lab, Section, atomic_write_text, heldout_table, help_field, markdown_table, new_figure,
                          plot_training_logs, save_figure)

from steerlab_plugins.panacea.layers import PanaceaAdapter

_SITE = re.compile(r"^blocks\.(\d+)\.(.+)$")


def update_norm(u: torch.Tensor, sigma: torch.Tensor, v: torch.Tensor) -> float:
    """||U diag(sigma) V^T||_F without forming the (out, in) matrix: sum((S U^T U S) * (V^T V))."""
    us = u * sigma
    return float(((us.T @ us) * (v.T @ v)).sum().clamp(min=0).sqrt())


@torch.no_grad()
def contribution_grid(adapter: PanaceaAdapter, preference: list[float], weight_norms: dict[str, float]) -> tuple[list[int], list[str], dict[str, np.ndarray]]:
    """Per (block, module), each relative to the module's own ||W0||_F:

    * ``shared``: the preference-independent update ||U_k diag(sigma) V_k^T||;
    * ``preference``: the preference part at ``preference``, ||s_l U_p diag(lambda) V_p^T||;
    * ``corners``: how much the update changes between preference corners, the mean over pairs
      of ||dW(e_i) - dW(e_j)|| (the shared part cancels): which layers carry the preference.
    """
    adapter.set_preference(preference)
    m = adapter.preference.shape[-1]
    cells: dict[tuple[int, str], tuple[float, float, float]] = {}
    for site, layer in zip(adapter.sites, adapter.layers):
        match = _SITE.match(site)
        if not match:
            continue
        k, rp, w0 = layer.rank, layer.pref_rank, max(weight_norms[site], 1e-12)
        u, v, sigma_full = layer.U.float(), layer.V.float(), layer.sigma_full()[0].float()
        shared = update_norm(u[:, :k], sigma_full[:k], v[:, :k])
        pref = update_norm(u[:, k:], sigma_full[k:], v[:, k:])
        block = lambda i: slice(k + i * rp, k + (i + 1) * rp)  # noqa: E731
        pairs = [(i, j) for i in range(m) for j in range(i + 1, m)]
        spread = np.mean([update_norm(torch.cat([u[:, block(i)], u[:, block(j)]], 1), layer.scale.float() * torch.cat([torch.ones(rp, device=u.device), -torch.ones(rp, device=u.device)]),
                                      torch.cat([v[:, block(i)], v[:, block(j)]], 1)) for i, j in pairs])
        cells[(int(match.group(1)), match.group(2))] = (shared / w0, pref / w0, float(spread) / w0)
    blocks = sorted({b for b, _ in cells})
    modules = sorted({m_ for _, m_ in cells})
    grids = {name: np.full((len(blocks), len(modules)), np.nan) for name in ("shared", "preference", "corners")}
    for (b, mod), values in cells.items():
        for name, value in zip(grids, values):
            grids[name][blocks.index(b), modules.index(mod)] = value
    return blocks, modules, grids


TITLES = {"shared": "shared update / ||W0||", "preference": "preference update / ||W0|| at lambda",
          "corners": "||dW(e_i) - dW(e_j)|| / ||W0|| (mean over corner pairs)"}


def plot_heatmaps(blocks: list[int], modules: list[str], grids: dict[str, np.ndarray], preference: list[float], path: Path) -> None:
    fig, axes = new_figure(ncols=len(grids), width=4.6, height=max(4.0, 0.18 * len(blocks) + 1.5))
    for ax, (name, data) in zip(axes, grids.items()):
        image = ax.imshow(data, aspect="auto", cmap="viridis")
        ax.set_xticks(range(len(modules)), modules, rotation=60, fontsize=7)
        ax.set_yticks(range(len(blocks)), [str(b) for b in blocks], fontsize=6)
        ax.set_ylabel("block")
        ax.set_title(TITLES[name] + (f"\n{[round(p, 2) for p in preference]}" if name == "preference" else ""), fontsize=8)
        fig.colorbar(image, ax=ax, fraction=0.046)
    save_figure(fig, path)


def svd_table(blocks: list[int], grids: dict[str, np.ndarray]) -> str:
    rows = [[block, *[float(np.nanmean(grids[name][i])) for name in grids]] for i, block in enumerate(blocks)]
    return markdown_table(["block", *(f"{name} (mean over modules)" for name in grids)], rows)


def inspect_svd(adapter: PanaceaAdapter, preference: list[float], weight_norms: dict[str, float], out_dir: Path,
                stem: str = "svd") -> tuple[str, Path, dict[str, float]]:
    """Write the heatmap PNG and a Markdown table; return (markdown, png path, summary)."""
    blocks, modules, grids = contribution_grid(adapter, preference, weight_norms)
    png = out_dir / f"{stem}.png"
    plot_heatmaps(blocks, modules, grids, preference, png)
    per_block = np.nanmean(grids["corners"], axis=1)
    top = [blocks[i] for i in np.argsort(-per_block)[:5]]
    shared, pref = float(np.nanmean(grids["shared"])), float(np.nanmean(grids["preference"]))
    share = pref / max(shared + pref, 1e-12)
    spread_ratio = float(per_block.max() / max(np.median(per_block), 1e-12))
    text = (f"Relative to each module's own weight norm, the shared update averages {shared:.4f} and the preference part "
            f"at lambda={[round(p, 2) for p in preference]} {pref:.4f} (preference share {100 * share:.1f}%). Between preference "
            f"corners the update changes most in blocks {', '.join(map(str, top))} (the busiest block changes {spread_ratio:.1f}x "
            f"the median block).\n\n{svd_table(blocks, grids)}\n")
    atomic_write_text(out_dir / f"{stem}.md", text)
    return text, png, {"preference_share": share, "corner_spread_mean": float(np.nanmean(grids["corners"])),
                       "corner_spread_peak_ratio": spread_ratio}


def weight_norms(engine: Any, sites: list[str]) -> dict[str, float]:
    """||W0||_F of every adapted module (the base weights the update is measured against)."""
    return {site: float(engine.site(site).module.weight.float().norm()) for site in sites}


def svd_analysis(adapter: PanaceaAdapter, artifact: Artifact, lab: Lab, out_dir: Path) -> Section:
    m = len(artifact.meta["dimensions"])
    centre = [round(1 / m, 4)] * m
    text, png, summary = inspect_svd(adapter, centre, weight_norms(lab.engine, artifact.sites), out_dir)
    logs, dims = [artifact.meta["train_log"]], artifact.meta["dimensions"]
    curve = plot_training_logs(logs, dims, out_dir / "training.png", "Panacea training: loss per style at its sampled lambda")
    held = heldout_table(logs, dims)
    return Section(
        summary=summary,
        figures=[Figure(lab.layout.relative(png), "Singular-value contributions per block and module (shared vs preference)"),
                 Figure(lab.layout.relative(curve), "Per-style SFT loss during training, held-out loss at each style's corner")],
        markdown="### Which layers carry the preference\n\n" + text + (f"\n\n### Held-out loss per style (at its corner)\n\n{held}" if held else ""),
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
        norms = weight_norms(run.lab.engine, run.artifact.sites)
        text, png, summary = inspect_svd(adapter, preference, norms, run.lab.layout.inspect, f"svd_{run.entry.name}")
        return Section(summary=summary, markdown=text + f"\nwritten: {png} and {png.with_suffix('.md')}",
                       figures=[Figure(run.lab.layout.relative(png), "singular-value contributions")])
