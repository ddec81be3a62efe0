"""Transfer success: does each prompt's answer length move the expected way under both signs?

The share of prompts where it does is core's ``symmetric_success`` (actdiff's source validation
counts the same event, and the study-level summary, ``hypotheses``, recomputes it from any
entry's records in a finished results.json, actdiff's included).
"""

from __future__ import annotations

import math
from typing import Any

from steerlab.api import Artifact, MethodEntry, Section, SweepResult, chosen_strength, in_dev_half, symmetric_success

def chosen_on_dev(rows: list[tuple[str, float, float]], direction: str) -> tuple[float | None, float]:
    """(the strength chosen on the dev prompts, the success on the test prompts there): the
    entry's one headline number, chosen and reported on different prompts (NaN when a half is empty)."""
    c = chosen_strength([r for r in rows if in_dev_half(r[0])], direction)
    test = symmetric_success([r for r in rows if not in_dev_half(r[0])], direction) if c is not None else {}
    return c, test.get(c, float("nan")) if c is not None else float("nan")


def narrative(meta: dict[str, Any], success: dict[float, float], words: dict[float, float]) -> str:
    fit = meta.get("fit", {})
    lines = [f"Vector from `{meta['source_model']}` block {meta['source_layer']} mapped into `{meta['target_model']}` "
             f"block {meta['target_layer']} by **{meta['adapter']}** (pooling: {meta['pooling']})."]
    if math.isfinite(fit.get("r2", float("nan"))):
        lines.append(f"Adapter fit on held-out fit texts: R^2 {fit['r2']:.3f}, cosine {fit['cosine']:.3f} "
                     f"(centred {fit['cosine_centered']:.3f}).")
    for side, pick in meta.get("layer_choice", {}).items():
        tried = ", ".join(f"`{k}` {'nan' if v is None else f'{v:.2f}'}" for k, v in pick["dev_success"].items())
        lines.append(f"The {side} block {pick['layer']} was chosen on the dev prompts: `{pick['entry']}` had the best dev success ({tried}).")
    lines.append(f"Cosine between the mapped vector and the target's own (native) vector: {meta['native_cosine']:+.3f}.")
    if success:
        lines.append("Length-direction success over every prompt answered at ±c (share of prompts shorter at +c and longer at -c "
                     "than at 0; a description, not a choice: the study report chooses on dev and reports on test): "
                     + ", ".join(f"±{c:g}: {v:.2f}" for c, v in sorted(success.items())) + ".")
    if words:
        lines.append("Mean words: " + ", ".join(f"{c:+g}: {w:.0f}" for c, w in sorted(words.items())) + ".")
    return "\n".join(lines)


def analyze(entry: MethodEntry, artifact: Artifact, result: SweepResult) -> Section:
    config, meta = entry.config, artifact.meta
    section = Section()
    success: dict[float, float] = {}
    if config.validate_metric:
        rows = [(r.prompt, float(r.control), r.scores.get(config.validate_metric, float("nan"))) for r in result.records]
        success = symmetric_success(rows, config.validate_direction)
        section.summary.update({f"success@{c:g}": v for c, v in success.items()})
        chosen, tested = chosen_on_dev(rows, config.validate_direction)
        section.summary["success"] = tested  # at the strength chosen on the dev prompts, on the test prompts
        section.summary["strength_chosen_on_dev"] = float("nan") if chosen is None else chosen
    section.summary.update({f"fit_{k}": float(v) for k, v in meta.get("fit", {}).items()})
    section.summary.update({k: float(meta[k]) for k in ("native_cosine", "typical_norm", "vector_norm", "source_layer", "target_layer")})
    section.summary["per_unit"] = artifact.vectors[0].per_unit
    words = {float(p.control): p.scores["words"] for p in result.points if "words" in p.scores}
    section.data = {k: meta[k] for k in ("source_model", "target_model", "adapter", "pooling")}
    section.data["adapter_info"] = meta.get("adapter_info", {})
    section.data["layer_choice"] = meta.get("layer_choice", {})  # which per-block entry chose each block on dev
    section.markdown = narrative(meta, success, words)
    return section
