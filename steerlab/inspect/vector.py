"""``steerlab inspect vector RUN_DIR``: what a residual-stream vector does.

Works on any artifact that declares a residual-stream vector (``Artifact.vectors``): actdiff's,
a transferred one, one imported from a llama.cpp control-vector file, or a plugin's own.


* Logit lens: the vector pushed through the model's final norm and unembedding; the tokens it
  promotes and suppresses most. TransformerLens' ``TransformerBridge`` does this, its one role in
  steerlab: it wraps the loaded HF model (no download) and switches it to eager attention, which
  is why this runs in its own command, not inside a study.
* Per-layer cosine between the vector and each block's mean residual stream on the eval
  prompts: where in depth the direction is already present in ordinary activations (read with
  core's activation reader, on the same site names steering uses).
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from steerlab.artifact import Artifact
from steerlab.config import help_field
from steerlab.figures import markdown_table, new_figure, save_figure
from steerlab.model.activations import activation_batches
from steerlab.model.zoo import LoadedModel
from steerlab.results import Figure, Section
from steerlab.storage import atomic_write_text

MAX_PROMPTS = 16


def boot_bridge(hf_model, tokenizer):
    """Wrap an already-loaded model; no hub access.

    TransformerLens re-loads the tokenizer by name to add a BOS token unless its init kwargs say
    one is added already; we give it a copy that says so, since every text we pass is already
    formatted (chat template included) and is run with ``prepend_bos=False``.
    """
    from transformer_lens.model_bridge import TransformerBridge

    name = getattr(hf_model.config, "_name_or_path", "") or type(hf_model).__name__
    tokenizer = copy.deepcopy(tokenizer)
    tokenizer.init_kwargs = {**tokenizer.init_kwargs, "name_or_path": name, "add_bos_token": True}
    return TransformerBridge.boot_transformers(name, hf_model=hf_model, tokenizer=tokenizer)


@torch.no_grad()
def logit_lens(bridge, vector: torch.Tensor, top: int) -> tuple[list[tuple[str, float]], list[tuple[str, float]]]:
    """Top promoted and suppressed tokens of ``vector`` read through ln_final + unembed."""
    resid = vector.to(bridge.W_U.device, bridge.W_U.dtype)[None, None, :]  # (1, 1, d_model)
    logits = bridge.unembed(bridge.ln_final(resid))[0, 0].float()  # (vocab,)
    logits = logits - logits.mean()
    up, down = torch.topk(logits, top), torch.topk(-logits, top)
    name = lambda i: repr(bridge.tokenizer.decode([int(i)]))  # noqa: E731
    return [(name(i), float(v)) for v, i in zip(*up)], [(name(i), float(-v)) for v, i in zip(*down)]


@torch.no_grad()
def layer_cosines(model: LoadedModel, texts: list[str], vector: torch.Tensor, batch_size: int = 8) -> list[float]:
    """cos(vector, mean resid_post of block i) for every block, over every token of the (formatted)
    texts but each one's first, read with core's activation reader."""
    sites = [f"blocks.{i}.resid_post" for i in range(model.n_layers)]
    rows = model.tokenizer(texts, add_special_tokens=False)["input_ids"]
    sums: dict[str, torch.Tensor] = {}
    count = 0
    for batch in activation_batches(model, rows, sites, batch_size):
        keep = batch.mask.clone()  # (batch, width)
        keep[torch.arange(len(keep)), keep.int().argmax(dim=1)] = False  # left padding: each row's first real token
        for site in sites:
            sums[site] = sums.get(site, 0) + batch.acts[site][keep].sum(0)  # (d_model,)
        count += int(keep.sum())
    v = vector.float().to(sums[sites[0]].device)
    return [float(torch.cosine_similarity(sums[site] / count, v, dim=0)) for site in sites]


@dataclass(frozen=True)
class VectorOptions:
    top: int = help_field(15, "tokens to list each way in the logit lens")
    index: int = help_field(0, "which declared vector, when an artifact declares several")

    def __post_init__(self) -> None:
        if not 1 <= self.top <= 200:
            raise ValueError(f"--top must be between 1 and 200 (got {self.top})")
        if self.index < 0:
            raise ValueError(f"--index must be >= 0 (got {self.index})")


class VectorInspector:
    name = "vector"
    description = "logit lens (TransformerLens) + per-block cosine of any declared residual-stream vector"
    Options = VectorOptions

    def applies_to(self, entry: Any, artifact: Artifact) -> bool:
        return bool(artifact.vectors)

    def inspect(self, run: Any, options: VectorOptions) -> Section:
        if options.index >= len(run.artifact.vectors):
            from steerlab.errors import ConfigError

            raise ConfigError(f"--index {options.index}: method '{run.entry.name}' declares {len(run.artifact.vectors)} vector(s)")
        decl, vector = run.artifact.vector(options.index)
        texts = [run.lab.model.format_prompt(p) for p in run.lab.eval_prompts()[:MAX_PROMPTS]]
        cosines = layer_cosines(run.lab.model, texts, vector)  # before the bridge switches the model to eager attention
        bridge = boot_bridge(run.lab.model.hf, run.lab.model.tokenizer)
        promoted, suppressed = logit_lens(bridge, vector, options.top)
        block = _block_of(decl.site)
        png = run.lab.layout.inspect / f"vector_{run.entry.name}.png"
        plot(cosines, promoted, suppressed, block, png)
        text = render(run.entry.name, decl.site, run.artifact.meta.get("describe", ""), promoted, suppressed, cosines, png.name)
        atomic_write_text(png.with_suffix(".md"), text)
        return Section(markdown=text + f"\nwritten: {png} and {png.with_suffix('.md')}",
                       figures=[Figure(run.lab.layout.relative(png), "logit lens and per-block cosine")])


def _block_of(site: str) -> int:
    match = re.match(r"^blocks\.(\d+)\.", site)
    return int(match.group(1)) if match else -1


def render(name: str, site: str, what: str, promoted, suppressed, cosines: list[float], png_name: str) -> str:
    rows = [[i + 1, p[0], f"{p[1]:+.2f}", s[0], f"{s[1]:+.2f}"] for i, (p, s) in enumerate(zip(promoted, suppressed))]
    lens = markdown_table(["rank", "promoted", "logit", "suppressed", "logit"], rows)
    cos = markdown_table(["block", "cos(vector, mean resid_post)"], [[i, f"{c:+.3f}"] for i, c in enumerate(cosines)])
    title = f"# Vector `{name}` at `{site}`" + (f" ({what})" if what else "")
    return f"{title}\n\n## Logit lens\n\n{lens}\n\n## Cosine with each block's mean residual\n\n{cos}\n\n![vector]({png_name})\n"


def plot(cosines: list[float], promoted, suppressed, layer: int, path: Path) -> None:
    fig, (left, right) = new_figure(ncols=2, width=5.5, height=4.2)
    left.bar(range(len(cosines)), cosines, color=["C3" if i == layer else "C0" for i in range(len(cosines))])
    left.set_xlabel("block")
    left.set_ylabel("cosine with mean resid_post")
    left.set_title(f"Vector vs residual mean (red: block {layer})" if layer >= 0 else "Vector vs residual mean")
    labels = [t for t, _ in promoted[:10]] + [t for t, _ in suppressed[:10]]
    values = [v for _, v in promoted[:10]] + [v for _, v in suppressed[:10]]
    right.barh(range(len(values))[::-1], values, color=["C2"] * 10 + ["C1"] * 10)
    right.set_yticks(range(len(values))[::-1], labels, fontsize=7)
    right.set_title("Logit lens: promoted (green) / suppressed (orange)")
    save_figure(fig, path)
