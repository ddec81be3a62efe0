"""Canonical hook-site names, resolved to real modules of a model.

Plugins speak only in site names (the TransformerLens habit); this module alone knows where a
given architecture keeps its blocks. Names:

    embed                       token embeddings (output)
    blocks.{i}.resid_pre        input of decoder block i (the residual stream before it)
    blocks.{i}.resid_post       output of decoder block i (the residual stream after it)
    blocks.{i}.attn_out         output of block i's attention module
    blocks.{i}.mlp_out          output of block i's MLP module
    blocks.{i}.attn.{q,k,v,o}_proj  the attention projections (Linear)
    blocks.{i}.mlp.{gate,up,down}_proj  the MLP projections (Linear)
    final_norm                  the final norm before the unembedding (output)
    logits                      the LM head's output

``resid_post`` of block i equals ``resid_pre`` of block i+1, and follows llama.cpp's control
vector convention (added to the block output after the FFN residual).
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass

from torch import nn

from steerlab.errors import ConfigError

ATTN_LINEARS = ("q_proj", "k_proj", "v_proj", "o_proj")
MLP_LINEARS = ("gate_proj", "up_proj", "down_proj")
_BLOCK_SITE = re.compile(r"^blocks\.(\d+)\.(.+)$")


@dataclass(frozen=True)
class Site:
    """A resolved site: the module to hook and whether its input or its output is the activation."""

    name: str
    module: nn.Module
    module_path: str  # dotted path inside the model, e.g. "model.layers.3.mlp"
    reads_input: bool = False


def decoder_layers(model: nn.Module) -> tuple[str, nn.ModuleList]:
    """The decoder block list: the longest ModuleList whose name ends in ``layers``.

    Covers Llama, Gemma 3 (text and multimodal wrappers), Mistral, Qwen and most HF decoders.
    """
    best: tuple[str, nn.ModuleList] | None = None
    for path, module in model.named_modules():
        if isinstance(module, nn.ModuleList) and path.split(".")[-1] == "layers":
            if best is None or len(module) > len(best[1]):
                best = (path, module)
    if best is None:
        raise ConfigError(f"cannot find decoder blocks in {type(model).__name__} (no '*.layers' ModuleList)")
    return best


def _child(root: nn.Module, root_path: str, attr: str) -> tuple[str, nn.Module] | None:
    module = getattr(root, attr, None)
    return (f"{root_path}.{attr}", module) if isinstance(module, nn.Module) else None


def _block_site(model: nn.Module, index: int, rest: str, name: str) -> Site | None:
    layers_path, layers = decoder_layers(model)
    if index >= len(layers):
        raise ConfigError(f"site '{name}': block {index} out of range (model has {len(layers)} blocks)")
    block, block_path = layers[index], f"{layers_path}.{index}"
    if rest in ("resid_pre", "resid_post"):
        return Site(name, block, block_path, reads_input=rest == "resid_pre")
    parts = rest.split(".")
    owner = {"attn_out": "self_attn", "mlp_out": "mlp", "attn": "self_attn", "mlp": "mlp"}.get(parts[0])
    found = _child(block, block_path, owner) if owner else None
    if found is None:
        return None
    if len(parts) == 1:
        return Site(name, found[1], found[0]) if rest in ("attn_out", "mlp_out") else None
    allowed = ATTN_LINEARS if parts[0] == "attn" else MLP_LINEARS
    leaf = _child(found[1], found[0], parts[1]) if len(parts) == 2 and parts[1] in allowed else None
    return Site(name, leaf[1], leaf[0]) if leaf else None


def _model_site(model: nn.Module, name: str) -> Site | None:
    if name == "logits":
        head = model.get_output_embeddings()
        return Site(name, head, _path_of(model, head)) if head is not None else None
    if name == "embed":
        emb = model.get_input_embeddings()
        return Site(name, emb, _path_of(model, emb))
    if name == "final_norm":
        layers_path, _ = decoder_layers(model)
        parent = model.get_submodule(layers_path.rsplit(".", 1)[0]) if "." in layers_path else model
        norm = getattr(parent, "norm", None)
        return Site(name, norm, _path_of(model, norm)) if isinstance(norm, nn.Module) else None
    return None


def _path_of(model: nn.Module, target: nn.Module) -> str:
    for path, module in model.named_modules():
        if module is target:
            return path
    raise ConfigError(f"module {type(target).__name__} is not part of the model")


def resolve(model: nn.Module, name: str) -> Site:
    """Turn a canonical site name into a ``Site``; unknown names list the valid ones."""
    match = _BLOCK_SITE.match(name)
    site = _block_site(model, int(match.group(1)), match.group(2), name) if match else _model_site(model, name)
    if site is None:
        raise ConfigError(f"unknown site '{name}' (valid sites: {', '.join(valid_site_patterns(model))})")
    return site


def valid_site_patterns(model: nn.Module) -> list[str]:
    """Human-readable list of the site names this model supports."""
    _, layers = decoder_layers(model)
    last = len(layers) - 1
    block = [f"blocks.{{0..{last}}}.{s}" for s in ("resid_pre", "resid_post", "attn_out", "mlp_out")]
    block += [f"blocks.{{0..{last}}}.attn.{p}" for p in ATTN_LINEARS]
    block += [f"blocks.{{0..{last}}}.mlp.{p}" for p in MLP_LINEARS]
    return ["embed", *block, "final_norm", "logits"]


def all_site_names(model: nn.Module) -> list[str]:
    """Every concrete site name of the model, in block order."""
    _, layers = decoder_layers(model)
    names = ["embed"]
    for i in range(len(layers)):
        names += [f"blocks.{i}.{s}" for s in ("resid_pre", "attn_out", "mlp_out", "resid_post")]
        names += [f"blocks.{i}.attn.{p}" for p in ATTN_LINEARS]
        names += [f"blocks.{i}.mlp.{p}" for p in MLP_LINEARS]
    return names + ["final_norm", "logits"]


def match_sites(model: nn.Module, patterns: list[str]) -> list[Site]:
    """Resolve glob patterns such as ``blocks.*.attn.*_proj`` to the sites that exist."""
    names = [n for n in all_site_names(model) if any(fnmatch.fnmatchcase(n, p) for p in patterns)]
    if not names:
        raise ConfigError(f"site patterns {patterns} match no site (valid: {', '.join(valid_site_patterns(model))})")
    return [resolve(model, n) for n in names]
