"""Where each architecture keeps its decoder blocks, their attention, MLP and projections: data.

Three sources, in this order (TransformerLens' per-architecture adapters, PEFT's target-module
mapping, steering-vectors' layer guessing with a user override):

1. an override the user gives (a study's ``[architecture]`` table, or
   ``steerlab.wrap(..., architecture=...)``): for a model nothing below reads right;
2. ``FAMILIES``, one row per ``config.model_type``: the paths of the families the lab is tested on;
3. structural detection for anything shaped like them: the longest block list under a common name,
   and inside a block the attention, MLP and projections under the names peers use (``ALIASES``).

A row, like an override, may leave a part out: what it does not say is detected. Paths are
*suffixes*: ``blocks = "layers"`` finds ``model.layers`` in a causal LM, ``model.language_model.layers``
in Gemma 3's multimodal wrapper and ``layers`` in a bare decoder; ``final_norm`` is looked up
beside the block list, and each site path inside one block.

Canonical part names (``blocks.{i}.<part>`` as a site): ``attn`` and ``mlp`` are the modules whose
outputs are ``attn_out`` / ``mlp_out``; projections are ``attn.{q,k,v,o}_proj``,
``attn.qkv_proj`` (a fused query-key-value: GPT-2's ``c_attn``, GPT-NeoX's ``query_key_value``,
Phi-3's ``qkv_proj``), ``mlp.{gate,up,down}_proj`` and ``mlp.gate_up_proj`` (Phi-3's fused gate and
up). Every projection name ends in ``_proj``, so ``blocks.*.attn.*_proj`` reaches a fused module as
a whole on the models that have one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from steerlab.config import help_field
from steerlab.errors import ConfigError

ATTN_PROJECTIONS = ("q_proj", "k_proj", "v_proj", "qkv_proj", "o_proj")
MLP_PROJECTIONS = ("gate_proj", "up_proj", "gate_up_proj", "down_proj")
PARTS = ("attn", "mlp", *(f"attn.{p}" for p in ATTN_PROJECTIONS), *(f"mlp.{p}" for p in MLP_PROJECTIONS))
OVERRIDE_HINT = ("set it in the study's [architecture] table (blocks = \"dotted.path\", final_norm = \"...\", "
                 "sites = {\"attn\" = \"...\", \"attn.q_proj\" = \"...\"}) or pass architecture= to steerlab.wrap")
_ATTR = "_steerlab_layout"  # the resolved layout, cached on the model (a deep copy keeps it)


@dataclass(frozen=True)
class Architecture:
    """Where one model family keeps its parts. Every key is optional: what is left out is detected."""

    blocks: str = help_field("", "the decoder blocks' ModuleList, a dotted path or its end (e.g. 'transformer.h', 'layers')")
    final_norm: str = help_field("", "the final norm before the unembedding, beside the block list (e.g. 'ln_f', 'norm')")
    sites: dict[str, str] = help_field({}, f"canonical part -> module path inside one block, parts: {', '.join(PARTS)}")

    def __post_init__(self) -> None:
        unknown = sorted(set(self.sites) - set(PARTS))
        if unknown:
            raise ValueError(f"key 'sites': unknown part {unknown[0]!r} (expected: {', '.join(PARTS)})")
        bad = [k for k, v in self.sites.items() if not isinstance(v, str) or not _dotted(v)]
        if bad or not all(_dotted(p) for p in (self.blocks, self.final_norm) if p):
            raise ValueError("keys 'blocks', 'final_norm' and each of 'sites' must be dotted module paths like 'attn.c_attn'")


def _dotted(path: str) -> bool:
    return bool(path) and all(part.isidentifier() or part.isdigit() for part in path.split("."))


def _llama_sites(attn: str = "self_attn", mlp: str = "mlp") -> dict[str, str]:
    projections = {f"attn.{p}": f"{attn}.{p}" for p in ("q_proj", "k_proj", "v_proj", "o_proj")}
    return {"attn": attn, "mlp": mlp, **projections, **{f"mlp.{p}": f"{mlp}.{p}" for p in ("gate_proj", "up_proj", "down_proj")}}


LLAMA = Architecture("layers", "norm", _llama_sites())
GPT2 = Architecture("h", "ln_f", {"attn": "attn", "mlp": "mlp", "attn.qkv_proj": "attn.c_attn", "attn.o_proj": "attn.c_proj",
                                  "mlp.up_proj": "mlp.c_fc", "mlp.down_proj": "mlp.c_proj"})
GPT_NEOX = Architecture("layers", "final_layer_norm", {"attn": "attention", "mlp": "mlp", "attn.qkv_proj": "attention.query_key_value",
                                                       "attn.o_proj": "attention.dense", "mlp.up_proj": "mlp.dense_h_to_4h",
                                                       "mlp.down_proj": "mlp.dense_4h_to_h"})
PHI3 = Architecture("layers", "norm", {"attn": "self_attn", "mlp": "mlp", "attn.qkv_proj": "self_attn.qkv_proj", "attn.o_proj": "self_attn.o_proj",
                                       "mlp.gate_up_proj": "mlp.gate_up_proj", "mlp.down_proj": "mlp.down_proj"})
FAMILIES: dict[str, Architecture] = {
    **dict.fromkeys(("llama", "mistral", "qwen2", "qwen3", "gemma", "gemma2", "gemma3", "gemma3_text", "olmo2"), LLAMA),
    "gpt2": GPT2, "gpt_neox": GPT_NEOX, "phi3": PHI3,
}

# Families whose Hugging Face forward does not honour the attention mask under left padding: a
# padded row's logits differ from the same row alone (measured on tiny random models: RWKV by 1.2,
# RecurrentGemma's recurrent layers by 0.01). Every batch the lab runs is left-padded, so a batched
# answer would differ from the same answer alone and per-row controls would leak; refused, not
# steered wrongly. (Mamba and Falcon-Mamba zero the padded positions and match exactly.)
PADDING_IGNORED = {"rwkv": "RWKV", "recurrent_gemma": "RecurrentGemma"}


def check_padding(model: nn.Module, name: str) -> None:
    """Refuse a family that ``PADDING_IGNORED`` lists, naming the model and why."""
    family = _model_type(model)
    if family in PADDING_IGNORED:
        raise ConfigError(f"model {name!r} ({PADDING_IGNORED[family]}): its forward pass does not honour the attention mask "
                          "under left padding, so a batched answer would differ from the same answer alone; steerlab "
                          "batches every prompt set left-padded and cannot steer this family faithfully")


# Detection: names peers use for the same part (the first that exists wins).
BLOCK_LISTS = ("layers", "h", "blocks", "layer")
FINAL_NORMS = ("norm", "ln_f", "final_layer_norm", "norm_f", "final_norm", "final_layernorm",
               "embedding_norm")  # LFM2's final norm, applied after its blocks despite the name; last, so any other name wins
ALIASES: dict[str, tuple[str, ...]] = {
    "attn": ("self_attn", "attn", "attention", "self_attention"),
    "mlp": ("mlp", "feed_forward", "ffn"),
    "attn.q_proj": ("q_proj",), "attn.k_proj": ("k_proj",), "attn.v_proj": ("v_proj",),
    "attn.qkv_proj": ("qkv_proj", "query_key_value", "c_attn", "Wqkv", "W_pack"),
    "attn.o_proj": ("o_proj", "dense", "c_proj", "out_proj"),
    "mlp.gate_proj": ("gate_proj", "w1"), "mlp.gate_up_proj": ("gate_up_proj",),  # w1 / w3 / w2: Meta's original names (LFM2)
    "mlp.up_proj": ("up_proj", "dense_h_to_4h", "c_fc", "fc1", "fc_in", "w3"),
    "mlp.down_proj": ("down_proj", "dense_4h_to_h", "c_proj", "fc2", "fc_out", "w2"),
}


@dataclass(frozen=True)
class Layout:
    """An architecture resolved on one model: full paths, only the parts this model has."""

    blocks: str  # e.g. "transformer.h"
    n_blocks: int
    final_norm: str | None  # e.g. "transformer.ln_f"
    parts: Mapping[str, str] = field(default_factory=dict)  # canonical part -> path inside a block
    source: str = "detected"  # "override", "family 'gpt2'" or "detected"


def layout_of(model: nn.Module) -> Layout:
    """The model's layout: resolved once (override, family row, detection) and kept on the model."""
    found = vars(model).get(_ATTR)
    if found is None:
        family = FAMILIES.get(_model_type(model))
        found = resolve_layout(model, family or Architecture(), f"family {_model_type(model)!r}" if family else "detected")
        setattr(model, _ATTR, found)
    return found


def use_architecture(model: nn.Module, architecture: Architecture | Mapping[str, Any], where: str = "architecture override") -> Layout:
    """Read ``model`` with a user's override from now on; a path the model lacks is one clear error
    (``where``: what the message names, e.g. the study file's ``[architecture]`` table)."""
    if not isinstance(architecture, Architecture):
        try:
            architecture = Architecture(**dict(architecture))
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{where}: {exc}") from None
    layout = resolve_layout(model, architecture, "override", where)
    setattr(model, _ATTR, layout)
    return layout


def resolve_layout(model: nn.Module, arch: Architecture, source: str, where: str | None = None) -> Layout:
    """Turn an architecture (paths as suffixes, parts possibly missing) into a model's full layout.
    ``where`` (an override's location) makes every path it gives binding: one it lacks is an error."""
    blocks_path, blocks = _block_list(model, arch.blocks, where)
    parent = blocks_path.rsplit(".", 1)[0] if "." in blocks_path else ""
    final_norm = _beside(model, parent, (arch.final_norm,) if arch.final_norm else FINAL_NORMS)
    if where is not None and arch.final_norm and final_norm is None:
        raise ConfigError(f"{where}: key 'final_norm': no module {arch.final_norm!r} beside {blocks_path}")
    return Layout(blocks_path, len(blocks), final_norm, _parts(blocks[0], arch.sites, where), source)


def _model_type(model: nn.Module) -> str:
    config = getattr(model, "config", None)
    return str(getattr(config, "model_type", "")) if config is not None else ""


def _block_list(model: nn.Module, wanted: str, where: str | None) -> tuple[str, nn.ModuleList]:
    """The block list: the ModuleList at ``wanted`` (a path or its end), else under a common name;
    among several, the one as long as the config's layer count, then the longest."""
    names = (wanted,) if wanted else BLOCK_LISTS
    found = [(p, m) for p, m in model.named_modules() if isinstance(m, nn.ModuleList) and len(m)
             and any(p == n or p.endswith(f".{n}") for n in names)]
    if not found and wanted:
        if where is None:  # a family row that does not fit this wrapper: detect
            return _block_list(model, "", None)
        raise ConfigError(f"{where}: key 'blocks': no ModuleList {wanted!r} in {type(model).__name__}")
    if not found:
        raise ConfigError(f"cannot find the decoder blocks of {type(model).__name__} (no ModuleList named "
                          f"{', '.join(BLOCK_LISTS)}): {OVERRIDE_HINT}")
    expected = _layer_count(model)
    return max(found, key=lambda pm: (len(pm[1]) == expected, len(pm[1])))


def _layer_count(model: nn.Module) -> int | None:
    config = getattr(model, "config", None)
    try:
        return int(config.get_text_config().num_hidden_layers)
    except (AttributeError, TypeError, ValueError):
        return None


def _beside(model: nn.Module, parent: str, names: tuple[str, ...]) -> str | None:
    for name in names:
        path = f"{parent}.{name}" if parent else name
        if _get(model, path) is not None:
            return path
    return None


def _get(root: nn.Module, path: str) -> nn.Module | None:
    node: Any = root
    for part in path.split("."):
        node = getattr(node, part, None)
        if node is None:
            return None
    return node if isinstance(node, nn.Module) else None


def _parts(block: nn.Module, given: Mapping[str, str], where: str | None) -> dict[str, str]:
    """Each canonical part's path inside a block: as given if the block has it, else under one of
    its aliases (a projection only inside the block's attention or MLP, and only weight-bearing)."""
    parts: dict[str, str] = {}
    for part in PARTS:
        if part in given and _get(block, given[part]) is not None:
            parts[part] = given[part]
        elif part in given and where is not None:
            raise ConfigError(f"{where}: key 'sites': {part!r} -> {given[part]!r} is no module of a block ({type(block).__name__})")
        elif (hit := _detect(block, part, parts)) is not None:
            parts[part] = hit
    return parts


def _detect(block: nn.Module, part: str, found: Mapping[str, str]) -> str | None:
    """A part under one of its aliases. The attention and MLP are children of the block; a projection
    is a child of its owner, or, for the attention only, deeper, shallowest first (GPT-Neo keeps its
    query at ``attn.attention.q_proj``). The MLP is not searched deeper: below it sit the experts of a
    mixture (``mlp.experts.0.down_proj``, ``mlp.shared_expert.down_proj``), and one expert is not the
    MLP's projection. A block with no MLP module keeps the MLP's projections as its own children
    (OPT's ``fc1``, ``fc2``), so there they are looked for in the block."""
    owner = part.partition(".")[0]
    if owner == part:
        return next((a for a in ALIASES[part] if _get(block, a) is not None and a not in found.values()), None)
    if owner in found:
        prefix, deep = f"{found[owner]}.", owner == "attn"
    elif owner == "mlp":
        prefix, deep = "", False
    else:
        return None
    candidates = [f"{prefix}{alias}" for alias in ALIASES[part]]
    if deep:
        inside = [name for name, _ in block.get_submodule(found[owner]).named_modules() if name]
        nested = sorted((name.count("."), ALIASES[part].index(name.rsplit(".", 1)[-1]), name) for name in inside
                        if "." in name and name.rsplit(".", 1)[-1] in ALIASES[part] and not any(p.isdigit() for p in name.split(".")))
        candidates += [f"{prefix}{name}" for _, _, name in nested]
    return next((c for c in candidates if _fits(part, _get(block, c)) and c not in found.values()), None)


def _fits(part: str, module: nn.Module | None) -> bool:
    """A detected attention or MLP is any module; a detected projection must hold a 2-D weight."""
    if module is None:
        return False
    return "." not in part or getattr(getattr(module, "weight", None), "ndim", 0) == 2
