"""HookEngine: the one place in steerlab that touches forward hooks.

Interventions are attached as context managers that remove exactly the handles they added, in
``finally``, also after an exception, and never anyone else's hooks (TransformerLens #156/#1323).
Two interventions on one site compose in attachment order. A hook sees every forward call,
so under ``generate()`` with a KV cache it acts on each decode step's single new position as
well as on the prompt (steering-vectors #60).

Three kinds of intervention:

* ``Edit``: ``fn(activation) -> activation | None`` on a site's activation (its output, or its
  input for ``resid_pre``). Return a new tensor or edit in place and return None.
* ``Delta``: ``fn(input) -> delta`` added to a module's output (LoRA-style weight-space methods
  that need the module's input).
* ``Update``: ``fn(input, output) -> output`` for a module whose output is a fresh tensor (a
  Linear): the function may add into ``output`` in place. A fused ``Delta`` for the hot path: one
  accumulate instead of a delta tensor and an add, which is what a per-token, per-module adapter
  pays for on a small model (Panacea's 210 modules on SmolLM2). Not a hook: the module's forward
  is wrapped on the instance (``UpdateChain``, PEFT-style, without replacing the module), because
  a forward hook sends every call of its module down ``Module.__call__``'s slow path (~14 us a call
  on the project's CPU, 210 times per decoded token). Updates run inside the forward, so before
  any forward hook on the same module.

``replace_weights`` swaps weights for a scope instead (an adapter merged for serving).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.utils.hooks import RemovableHandle

from steerlab.model import sites as site_names

Edit = Callable[[torch.Tensor], "torch.Tensor | None"]
Delta = Callable[[torch.Tensor], torch.Tensor]
Update = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _first(value: Any) -> torch.Tensor:
    """The hidden states of a module's output: the output itself, or the first item of the tuple
    (most blocks) or list (OpenAI GPT's and RWKV's blocks) it returns."""
    return value[0] if isinstance(value, (tuple, list)) else value


def _replace_first(value: Any, tensor: torch.Tensor) -> Any:
    """``value`` with its hidden states replaced, in the container it came in."""
    if isinstance(value, list):
        return [tensor, *value[1:]]
    return (tensor, *value[1:]) if isinstance(value, tuple) else tensor


class UpdateChain:
    """A module's forward, wrapped on the instance: the class's forward, then each attached update,
    in attachment order. Installed by the first update on a module and removed with the last, so
    a module without updates is exactly as before (``"forward" not in vars(module)``).

    Why not a forward hook: any hook sends every call of its module down ``Module.__call__``'s slow
    path, which on a 2-core CPU costs about as much as one of the adapter's two small matmuls, per
    adapted module per decoded token. An instance ``forward`` keeps the fast path.

    While it holds updates, the chain is also named by the module attribute ``MARK``, which
    ``has_hooks`` below reads (a compiled step or a shared scoring prefix
    must not silently skip an update). Not "any instance forward": nnsight leaves a pass-through
    ``forward`` on every module it has traced, which would switch those paths off for good."""

    MARK = "steerlab_update_chain"

    def __init__(self, module: nn.Module) -> None:
        self.module = module
        self.inner = module.forward  # the class's forward, or whoever wrapped the instance before us
        self.own_forward = "forward" in vars(module)
        self.entries: tuple[UpdateHandle, ...] = ()
        self.updates: tuple[Update, ...] = ()  # the entries' functions, read on every call

    @classmethod
    def on(cls, module: nn.Module) -> "UpdateChain":
        """The module's chain, installed if it has none yet."""
        current = vars(module).get(cls.MARK)  # set while the chain holds updates, so it is the one to extend
        if current is not None:
            return current
        chain = cls(module)
        module.forward = chain  # an instance attribute: nn.Module.__call__ calls self.forward
        return chain

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        output = self.inner(*args, **kwargs)
        x = args[0] if args else next(iter(kwargs.values()))
        for fn in self.updates:
            output = _replace_first(output, fn(x, _first(output)))
        return output

    def add(self, fn: Update) -> "UpdateHandle":
        handle = UpdateHandle(self, fn)
        self._set((*self.entries, handle))
        return handle

    def discard(self, handle: "UpdateHandle") -> None:
        """Drop one attached update; the last one out restores the module's forward."""
        self._set(tuple(h for h in self.entries if h is not handle))
        if self.entries or vars(self.module).get("forward") is not self:
            return  # still in use, or wrapped again by someone else since: stay as a pass-through
        if self.own_forward:
            self.module.forward = self.inner
        else:
            del self.module.forward

    def _set(self, entries: tuple["UpdateHandle", ...]) -> None:
        self.entries, self.updates = entries, tuple(h.fn for h in entries)
        if entries:
            setattr(self.module, self.MARK, self)
        else:
            vars(self.module).pop(self.MARK, None)


class UpdateHandle:
    """What ``HookEngine`` keeps for one attached update, removed like a hook's handle (attaching
    one function twice gives two entries, each removed by its own handle)."""

    def __init__(self, chain: UpdateChain, fn: Update) -> None:
        self.chain, self.fn = chain, fn

    def remove(self) -> None:
        self.chain.discard(self)


def has_hooks(module: nn.Module) -> bool:
    """Whether any submodule has a forward hook or pre-hook, or engine updates (steering attached:
    the engine's updates wrap forwards on the instance, ``UpdateChain``, which marks the module).

    Why it matters: with a static cache on CUDA, transformers compiles the decode step once and
    reuses it, and torch.compile does not guard on module hooks (``skip_nnmodule_hook_guards``):
    hooks attached after the compile are silently skipped at every decode step (only the eager
    prefill is steered), and hooks present at the compile are replayed afterwards. A hooked call
    therefore decodes eagerly (and a shared scoring prefix is not used)."""
    return any(m._forward_hooks or m._forward_pre_hooks or UpdateChain.MARK in vars(m) for m in module.modules())


@dataclass(frozen=True)
class Attachment:
    """One intervention on one site, as attached."""

    site: str
    fn: Callable[..., Any]
    delta: bool = False
    update: bool = False


class HookEngine:
    """Attaches interventions to named sites of one model."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self._sites: dict[str, site_names.Site] = {}
        self._live: set[RemovableHandle | UpdateHandle] = set()

    def site(self, name: str) -> site_names.Site:
        if name not in self._sites:
            self._sites[name] = site_names.resolve(self.model, name)
        return self._sites[name]

    @property
    def n_attached(self) -> int:
        """How many interventions (hooks and wrapped updates) this engine has attached and not yet removed."""
        return len(self._live)

    def _register(self, attachment: Attachment) -> RemovableHandle | UpdateHandle:
        site = self.site(attachment.site)
        fn = attachment.fn
        if attachment.update:
            return UpdateChain.on(site.module).add(fn)
        if attachment.delta:
            def delta_hook(_m: nn.Module, args: tuple, output: Any) -> Any:
                return _replace_first(output, _first(output) + fn(args[0]))

            return site.module.register_forward_hook(delta_hook)
        if site.reads_input:
            def pre_hook(_m: nn.Module, args: tuple, kwargs: dict[str, Any]) -> Any:
                if not args:  # a block called with hidden_states=... (no family in the table does, today)
                    new = fn(kwargs["hidden_states"])
                    return None if new is None else (args, {**kwargs, "hidden_states": new})
                new = fn(args[0])
                return None if new is None else ((new, *args[1:]), kwargs)

            return site.module.register_forward_pre_hook(pre_hook, with_kwargs=True)

        def post_hook(_m: nn.Module, _args: tuple, output: Any) -> Any:
            new = fn(_first(output))
            return None if new is None else _replace_first(output, new)

        return site.module.register_forward_hook(post_hook)

    @contextmanager
    def attach(self, attachments: list[Attachment]) -> Iterator[None]:
        """Attach all, yield, then remove exactly those hooks (also after an exception)."""
        for attachment in attachments:  # resolve every site first: a bad name attaches nothing
            self.site(attachment.site)
        handles: list[RemovableHandle | UpdateHandle] = []
        try:
            for attachment in attachments:
                handle = self._register(attachment)
                handles.append(handle)
                self._live.add(handle)
            yield
        finally:
            for handle in reversed(handles):
                handle.remove()
                self._live.discard(handle)

    @contextmanager
    def replace_weights(self, weights: Mapping[str, torch.Tensor]) -> Iterator[None]:
        """Swap each named module's weight for a new tensor; the original storage is put back
        on exit, so the restore is bit-for-bit (merging LoRA-style adapters for serving)."""
        modules = {name: self.site(name).module for name in weights}
        originals = {name: module.weight.data for name, module in modules.items()}
        try:
            for name, module in modules.items():
                module.weight.data = weights[name].to(dtype=module.weight.dtype, device=module.weight.device)
            yield
        finally:
            for name, module in modules.items():
                module.weight.data = originals[name]

    @contextmanager
    def add_to_weights(self, deltas: Mapping[str, torch.Tensor]) -> Iterator[None]:
        """Add each (out, in) update to its named projection's weight for a scope (a LoRA-style
        adapter merged for serving), in the layout the module stores it (transposed for GPT-2's
        ``Conv1D``); the original weights are put back bit for bit on exit."""
        modules = {name: self.site(name).module for name in deltas}
        with torch.no_grad():
            new = {name: module.weight + site_names.stored_delta(module, deltas[name]).to(module.weight.device, module.weight.dtype)
                   for name, module in modules.items()}
        with self.replace_weights(new):
            yield

    @contextmanager
    def observe_inputs(self, fn: Callable[[dict[str, Any]], None], after: Callable[[], None] | None = None) -> Iterator[None]:
        """Call ``fn(kwargs)`` before every forward of the whole model, with the keyword inputs
        it receives (``input_ids``, ``attention_mask``, ``position_ids``, ``cache_position``,
        the KV cache as ``cache`` or ``past_key_values`` by transformers version...). For a method that runs a second model in step with the first
        (GenARM's reward model keeps its own KV cache this way), or that prepares per-forward state
        (Panacea's batched singular values while training), dropped by ``after()`` once the
        forward returns. Read-only: ``fn``'s return is ignored."""
        def pre_hook(_m: nn.Module, _args: tuple, kwargs: dict[str, Any]) -> None:
            fn(kwargs)

        handles = [self.model.register_forward_pre_hook(pre_hook, with_kwargs=True)]
        if after is not None:
            handles.append(self.model.register_forward_hook(lambda _m, _args, _output: after()))
        self._live.update(handles)
        try:
            yield
        finally:
            for handle in handles:
                handle.remove()
                self._live.discard(handle)

    def edit(self, edits: Mapping[str, Edit]) -> Any:
        """Context manager: apply ``fn`` to each named site's activation."""
        return self.attach([Attachment(name, fn) for name, fn in edits.items()])

    def add_vectors(self, vectors: list[Any], tensors: Mapping[str, torch.Tensor], coefficients: torch.Tensor) -> Any:
        """Context manager: each declared residual vector (``ResidualVector``) added times one
        coefficient per batch row. All coefficients 0 attaches nothing: exactly the unsteered model."""
        if not bool(torch.as_tensor(coefficients).any()):
            return nullcontext()
        return self.edit(vector_edits(vectors, tensors, coefficients))

    def add_deltas(self, deltas: Mapping[str, Delta]) -> Any:
        """Context manager: add ``fn(module input)`` to each named module's output."""
        return self.attach([Attachment(name, fn, delta=True) for name, fn in deltas.items()])

    def update_outputs(self, updates: Mapping[str, Update]) -> Any:
        """Context manager: replace each named module's output with ``fn(module input, output)``
        (``fn`` may accumulate into the output in place)."""
        return self.attach([Attachment(name, fn, update=True) for name, fn in updates.items()])


def tokens_by_row(x: torch.Tensor, rows: int) -> torch.Tensor:
    """A module input ``x`` as ``(rows, tokens, features)``, for a ``Delta`` or ``Update`` that
    applies one control per batch row. Most families hand a projection ``(batch, pos, features)``
    (returned as it is); a few flatten the tokens first (OPT's ``fc1`` and ``fc2`` see
    ``(batch * pos, features)``). Flattened tokens are batch-major, so ``rows`` splits them
    evenly; give a result computed on the view back with ``result.reshape(*x.shape[:-1], -1)``."""
    if x.dim() != 2:
        return x
    if x.shape[0] % rows:
        raise ValueError(f"{x.shape[0]} flattened tokens do not split into {rows} batch rows")
    return x.view(rows, -1, x.shape[-1])


def add_vector(vector: torch.Tensor, coefficients: torch.Tensor | float = 1.0) -> Edit:
    """An edit that adds ``coefficients[b] * vector`` to batch row b at every position (prompt
    and generated tokens alike). ``coefficients``: a number, or one per row, ``(rows,)``; a
    single row broadcasts to the whole batch."""
    coeff = torch.as_tensor(coefficients, dtype=torch.float32).reshape(-1, 1, 1)  # (rows, 1, 1)
    scaled = coeff * vector.to(coeff.device, torch.float32)  # (rows, 1, d_model)
    placed: dict[tuple[torch.device, torch.dtype], torch.Tensor] = {}  # moved once, not once per decode step

    def edit(activation: torch.Tensor) -> torch.Tensor:  # (batch, pos, d_model)
        key = (activation.device, activation.dtype)
        if key not in placed:  # a host-to-device copy per forward stalled GPU decoding (+52% at batch 64)
            placed[key] = scaled.to(dtype=activation.dtype, device=activation.device)
        return activation + placed[key]

    return edit


def vector_edits(vectors: list[Any], tensors: Mapping[str, torch.Tensor], coefficients: torch.Tensor) -> dict[str, Edit]:
    """Edits that add each declared residual vector (``ResidualVector``: site, tensor, per_unit)
    times one coefficient per batch row; vectors on one site are summed."""
    by_site: dict[str, torch.Tensor] = {}
    for decl in vectors:
        scaled = decl.per_unit * tensors[decl.tensor].float()
        by_site[decl.site] = by_site[decl.site] + scaled if decl.site in by_site else scaled
    return {site: add_vector(vector, coefficients) for site, vector in by_site.items()}
