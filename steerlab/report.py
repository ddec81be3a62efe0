"""Results -> ``report.md`` + ``figures/*.png`` (matplotlib, Agg) + a terminal summary table."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from steerlab.artifact import atomic_write_text  # noqa: E402

# Columns shown first in tables, when present; other scores follow alphabetically.
PREFERRED = ["words", "tokens", "stopped", "perplexity", "similarity", "kl"]
SAMPLE_CHARS = 600


def new_figure(ncols: int = 1, width: float = 6.0, height: float = 4.0):
    fig, axes = plt.subplots(1, ncols, figsize=(width * ncols, height), squeeze=False)
    return (fig, axes[0][0]) if ncols == 1 else (fig, axes[0])


def save_figure(fig, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def score_columns(rows: list[dict[str, Any]]) -> list[str]:
    keys = {k for r in rows for k, v in r.items() if k not in ("control", "label", "n") and isinstance(v, float)}
    return [k for k in PREFERRED if k in keys] + sorted(keys - set(PREFERRED))


def fmt(value: Any) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        return f"{value:.3f}" if abs(value) < 100 else f"{value:.1f}"
    return str(value)


def markdown_table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def control_table(by_control: list[dict[str, Any]]) -> str:
    columns = score_columns(by_control)
    return markdown_table(["control", "n", *columns], [[r["label"], r["n"], *[r.get(c, float("nan")) for c in columns]] for r in by_control])


def plot_sweep(name: str, control_label: str, by_control: list[dict[str, Any]], path: Path) -> bool:
    """One panel per score against a numeric control; False when controls are not numbers."""
    if not by_control or not all(isinstance(r["control"], (int, float)) for r in by_control):
        return False
    columns = [c for c in score_columns(by_control) if c not in ("tokens",)]
    ncols = min(4, len(columns))
    nrows = -(-len(columns) // ncols)
    fig, grid = plt.subplots(nrows, ncols, figsize=(3.2 * ncols, 2.8 * nrows), squeeze=False)
    axes = grid.flatten()
    for ax in axes[len(columns):]:
        ax.set_axis_off()
    xs = [r["control"] for r in by_control]
    for ax, column in zip(axes, columns):
        ax.plot(xs, [r.get(column, float("nan")) for r in by_control], "o-")
        ax.axvline(0.0, color="grey", lw=0.8, ls=":")
        ax.set_title(column)
        ax.set_xlabel(control_label)
    fig.suptitle(f"{name}: mean score per control")
    save_figure(fig, path)
    return True


def samples_section(records: list[dict[str, Any]], n_prompts: int = 2) -> str:
    prompts = list(dict.fromkeys(r["prompt"] for r in records))[:n_prompts]
    parts = []
    for prompt in prompts:
        parts.append(f"**Prompt:** {prompt}\n")
        for r in (r for r in records if r["prompt"] == prompt):
            text = r["output"].replace("\n", " ")
            text = text if len(text) <= SAMPLE_CHARS else text[:SAMPLE_CHARS] + " [...]"
            parts.append(f"- control `{r['control']}` ({int(r['scores'].get('words', len(r['output'].split())))} words): {text}")
        parts.append("")
    return "\n".join(parts)


def write_report(run_dir: Path, results: dict[str, Any]) -> Path:
    study = results["study"]
    out = [f"# Study `{study['name']}`", "", study.get("description", ""), ""]
    out.append(f"Model `{study['model']}`, seed {study['seed']}, {study['n_eval_prompts']} eval prompts, "
               f"token cap {study['max_new_tokens']}{' (quick run)' if study.get('quick') else ''}.\n")
    if judge := results.get("judge"):
        out.append(f"**Judge**: MiniLM + logistic regression, held-out accuracy {judge['accuracy']:.3f} "
                   f"(chance {judge['chance']:.3f}, {judge['n_test']} test / {judge['n_train']} train texts, "
                   f"classes {', '.join(judge['classes'])}).\n")
    if comparison := results.get("comparison"):
        out += comparison_section(results, comparison)
    for name, method in results["methods"].items():
        out += [f"## Method `{name}` ({method.get('method', name)})", ""]
        if method.get("analysis_markdown"):
            out += [method["analysis_markdown"], ""]
        out += [control_table(method.get("by_control", [])), ""]
        extra = {k: v for k, v in method["summary"].items() if "@" not in k}
        if extra:
            out += [markdown_table(["measure", "value"], [[k, v] for k, v in sorted(extra.items())]), ""]
        out += [f"![{caption}]({path})\n\n*{caption}*\n" for path, caption in method.get("figures", [])]
        out += ["### Sample answers", "", samples_section(method["records"]), ""]
    path = run_dir / "report.md"
    atomic_write_text(path, "\n".join(out))
    return path


FRONT_KEYS = ["hypervolume", "front_size", "spacing", "lambda_alignment"]


def comparison_section(results: dict[str, Any], comparison: dict[str, Any]) -> list[str]:
    axes = ", ".join(f"`{a}`" for a in comparison["axes"])
    rows = [[name, *[m["summary"].get(k, float("nan")) for k in FRONT_KEYS]] for name, m in results["methods"].items()]
    out = ["## Comparison", "", f"Each control of each method is one point: its mean {axes} over the eval prompts.", "",
           markdown_table(["method", *FRONT_KEYS], rows), ""]
    anchor = comparison["anchor"]
    versus = [[other, v["coverage_of_other"], v["coverage_by_other"], v["hypervolume_ratio"]] for other, v in comparison["versus"].items()]
    if versus:
        out += [f"`{anchor}` against each other method: share of the other's points that `{anchor}` weakly dominates, "
                f"share of `{anchor}`'s points the other dominates, and the hypervolume ratio.", "",
                markdown_table(["other", f"{anchor} covers other", f"other covers {anchor}", "HV ratio"], versus), ""]
    if comparison.get("corners"):
        out += ["Does lambda move the judged styles? For each style: its mean score when lambda puts all weight on it "
                "against the mean at the other corners (gap > 0: turning the dimension on raises its score).", ""]
        rows = [[name, _short_axis(r["axis"]), r["at_own_corner"], r["at_other_corners"], r["gap"]]
                for name, corner in comparison["corners"].items() for r in corner]
        out += [markdown_table(["method", "style", "own corner", "other corners", "gap"], rows), ""]
    out += [f"![{caption}]({path})\n\n*{caption}*\n" for path, caption in comparison["figures"]]
    return out


def _short_axis(axis: str) -> str:
    return axis.split(".")[-1]


def terminal_summary(results: dict[str, Any]) -> str:
    """A plain-text table of every method's per-control means, for the end of ``steerlab run``."""
    lines = []
    for name, method in results["methods"].items():
        rows = method.get("by_control", [])
        columns = score_columns(rows)[:7]
        header = ["control", *columns]
        table = [header] + [[r["label"], *[fmt(r.get(c, float("nan"))) for c in columns]] for r in rows]
        widths = [max(len(str(row[i])) for row in table) for i in range(len(header))]
        lines.append(f"== {name}")
        lines += ["  ".join(str(v).rjust(w) for v, w in zip(row, widths)) for row in table]
        lines += [f"   {k} = {fmt(v)}" for k, v in sorted(method["summary"].items()) if "@" not in k]
    return "\n".join(lines)
