"""The Panacea SVD-LoRA adapter: one shared preference vector written into singular values.

For each targeted Linear with weight W (out x in):

    y = W x + U diag(sigma_full) V^T x,   sigma_full = [sigma_1..sigma_k, s_l * lambda_1..lambda_m]

With ``pref_rank`` r_p > 1, each lambda_i scales a block of r_p singular values (lambda written
r_p times), so every preference dimension gets a rank-r_p update per layer instead of rank 1.

U (out x (k+m)) starts at zero (so the adapter starts exactly at the base model, as LoRA's B
does), V (in x (k+m)) is random, sigma_1..k and the per-layer scale s_l are learnable. All layers
read one lambda tensor, (rows, m): one preference per batch row (a single row broadcasts), so a
sweep can put several preferences in one batch; switching preference is a tensor write, never a
re-hook.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any
from contextlib import ExitStack, contextmanager

import torch
from torch import nn

from steerlab.api import HookEngine, projection_features, tokens_by_row


class SharedState(nn.Module):
    """What every layer reads: the one lambda buffer ``value`` (rows, m), and every layer's learnable
    singular values ``sigma`` (L, k) and scale ``scale`` (L,) stacked in two parameters. Layers hold
    this module (not the tensors), so ``.to(device)`` moves what every layer sees.

    Why stacked: building all layers' singular values is then one op per forward with no stack, the
    optimiser steps two tensors instead of 420 tiny ones, and backward sums no per-layer slices (on
    a GPU, where a 135M model's training step is bound by kernel launches, each op is a launch).

    A frozen adapter also keeps here every layer's full singular values for the current lambda,
    ``frozen`` (layers, rows, width), computed in one batched op per switch, and a ``version``
    that layers compare against to refresh what they derive from it lazily, on their next forward
    (so a switch costs a few tensor ops, not one per module)."""

    def __init__(self, n_prefs: int, n_layers: int, rank: int, sigma_init: float = 1.0, scale_init: float = 1.0) -> None:
        super().__init__()
        self.register_buffer("value", torch.full((1, n_prefs), 1.0 / n_prefs))
        self.sigma = nn.Parameter(torch.full((n_layers, rank), float(sigma_init)))
        self.scale = nn.Parameter(torch.full((n_layers,), float(scale_init)))
        self.frozen: torch.Tensor | None = None
        self.version = 0
        # While a trainable adapter is attached: every layer's singular values for the current
        # forward, one (rows, width) view per layer (``unbind``: its backward is one stack, where
        # indexing would add a zero-filled (L, rows, width) gradient per layer), built with
        # autograd once per forward of the model.
        self.batched: tuple[torch.Tensor, ...] | None = None


def full_singular_values(sigma: torch.Tensor, scale: torch.Tensor, preference: torch.Tensor, pref_rank: int) -> torch.Tensor:
    """Every layer's [sigma_1..sigma_k, s_l * lambda (each repeated r_p times)] in one batched op:
    sigma (L, k), scale (L,), preference (rows, m) -> (L, rows, k + m * r_p)."""
    pref = preference.to(sigma.dtype).repeat_interleave(pref_rank, dim=-1)  # (rows, m * r_p)
    return torch.cat([sigma[:, None, :].expand(-1, pref.shape[0], -1), scale[:, None, None] * pref[None]], dim=-1)


class PanaceaLayer(nn.Module):
    def __init__(self, in_features: int, out_features: int, rank: int, shared: SharedState, generator: torch.Generator | None = None,
                 pref_rank: int = 1, index: int = 0) -> None:
        super().__init__()
        m = shared.value.shape[-1]
        self.rank, self.pref_rank = rank, pref_rank
        self._shared = [shared]  # a list, so the holder is not registered (and saved) once per layer
        width = rank + m * pref_rank
        self.U = nn.Parameter(torch.zeros(out_features, width))
        self.V = nn.Parameter(torch.randn(in_features, width, generator=generator) / math.sqrt(in_features))
        self.index = index  # this layer's row in the shared singular values (sigma, scale, frozen, batched)
        self._folded: tuple[int, torch.Tensor, torch.Tensor] | None = None  # (version, V * sigma, U^T) for a one-row lambda

    @property
    def sigma(self) -> torch.Tensor:  # (k,): a view of this layer's row of the shared parameter
        return self._shared[0].sigma[self.index]

    @property
    def scale(self) -> torch.Tensor:  # (): a view of this layer's entry of the shared parameter
        return self._shared[0].scale[self.index]

    @property
    def preference(self) -> torch.Tensor:  # (rows, m)
        return self._shared[0].value

    def sigma_full(self) -> torch.Tensor:  # (rows, k + m * r_p)
        pref = self.preference.to(self.sigma.dtype).repeat_interleave(self.pref_rank, dim=-1)
        return torch.cat([self.sigma.expand(pref.shape[0], -1), self.scale * pref], dim=-1)

    def delta(self, x: torch.Tensor) -> torch.Tensor:  # x: (batch, pos, in) -> (batch, pos, out)
        """U diag(sigma_full) V^T x, differentiable: the training path."""
        batched = self._shared[0].batched
        sigma = (batched[self.index] if batched is not None else self.sigma_full())[:, None, :]  # (rows, 1, width), rows = batch or 1
        # A bf16 model with an fp32 adapter (training on a GPU): the adapter's math in fp32, as PEFT's LoRA does;
        # one cast in and one out (no-ops at equal dtypes) instead of three parameter casts per forward.
        rows = tokens_by_row(x, sigma.shape[0]).to(self.U.dtype)
        return (((rows @ self.V) * sigma) @ self.U.T).to(x.dtype).reshape(*x.shape[:-1], -1)

    def add_into(self, x: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        """``out + delta(x)``; for a frozen adapter outside autograd, accumulated into ``out`` in
        place with two ops per call (one lambda: sigma folded into V once per switch; one lambda
        per row: three), since at batch 1 on CPU the adapter's cost is its op count and Python."""
        folded = self._folded
        if (folded is not None and folded[0] == self._shared[0].version and x.dtype == folded[1].dtype
                and out.is_contiguous() and not torch.is_grad_enabled()):
            flat = out.view(-1, out.shape[-1])
            flat.addmm_(torch.mm(x.reshape(-1, x.shape[-1]), folded[1]), folded[2])
            return out
        return self._add_into_checked(x, out)

    def _add_into_checked(self, x: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        shared = self._shared[0]
        frozen = shared.frozen
        if frozen is None or torch.is_grad_enabled() or x.dtype != self.U.dtype or not out.is_contiguous():
            return out + self.delta(x)
        if frozen.shape[1] == 1:  # one lambda for every row: (version, V * sigma, U^T contiguous), kept until the next switch
            self._folded = (shared.version, self.V * frozen[self.index, 0], self.U.T.contiguous())
            return self.add_into(x, out)  # the fold is current now: the fast path takes it
        h = (tokens_by_row(x, frozen.shape[1]) @ self.V).mul_(frozen[self.index][:, None, :])  # one lambda per batch row
        out.view(-1, out.shape[-1]).addmm_(h.reshape(-1, h.shape[-1]), self.U.T)
        return out

    def delta_weight(self) -> torch.Tensor:  # (out, in), at a single preference
        return (self.U * self._single(self.sigma_full())) @ self.V.T

    def contributions(self) -> torch.Tensor:
        """|sigma_i| * ||u_i|| * ||v_i|| for each rank-1 term at a single preference: (k + m,),
        shared terms first."""
        return self._single(self.sigma_full()).abs() * self.U.norm(dim=0) * self.V.norm(dim=0)

    @staticmethod
    def _single(sigma: torch.Tensor) -> torch.Tensor:
        if sigma.shape[0] != 1:
            raise ValueError("this needs a single preference (one row), not a per-row batch")
        return sigma[0]


class PanaceaAdapter(nn.Module):
    """All Panacea layers of one model, keyed by site name, and the shared preference vector."""

    def __init__(self, shapes: dict[str, tuple[int, int]], rank: int, n_prefs: int, seed: int = 0, pref_rank: int = 1,
                 sigma_init: float = 1.0, scale_init: float = 1.0) -> None:
        super().__init__()
        self.shared = SharedState(n_prefs, len(shapes), rank, sigma_init, scale_init)
        generator = torch.Generator().manual_seed(seed)
        self.sites, self.rank, self.pref_rank = list(shapes), rank, pref_rank
        self._is_frozen: bool | None = None  # no parameter trains: cached until requires_grad_ or .to()
        self.layers = nn.ModuleList(PanaceaLayer(i, o, rank, self.shared, generator, pref_rank, index)
                                    for index, (i, o) in enumerate(shapes.values()))

    @property
    def preference(self) -> torch.Tensor:
        return self.shared.value

    @classmethod
    def for_engine(cls, engine: HookEngine, sites: list[str], rank: int, n_prefs: int, seed: int = 0, **init: Any) -> "PanaceaAdapter":
        shapes = {name: projection_features(engine.site(name).module) for name in sites}  # (in, out): Linear or Conv1D
        return cls(shapes, rank, n_prefs, seed, **init)

    def set_preference(self, preference: torch.Tensor | list[float]) -> None:
        """Write lambda, (m,) or one row per batch row (rows, m): every layer sees it on its next
        forward (no re-hooking; a new row count replaces the buffer, still no re-hook). A frozen
        adapter also recomputes every layer's singular values here, in one batched op."""
        value = torch.as_tensor(preference, dtype=self.preference.dtype).reshape(-1, self.preference.shape[-1])
        with torch.no_grad():
            if value.shape == self.preference.shape:
                self.preference.copy_(value)  # on any device
            else:
                self.shared.value = value.to(self.preference.device)
        self._refresh()

    def _refresh(self) -> None:
        """Recompute the shared frozen singular values (a frozen adapter) or drop them (a
        trainable one, whose sigma and s_l change every step)."""
        shared = self.shared
        shared.version += 1
        if not self._frozen():
            shared.frozen = None
            return
        with torch.no_grad():
            shared.frozen = full_singular_values(shared.sigma, shared.scale, self.preference, self.pref_rank).to(self.layers[0].U.dtype)

    def _frozen(self) -> bool:
        """Whether no parameter trains (kept until ``requires_grad_`` or ``.to()``: scanning the
        parameters at every switch would cost more than the switch)."""
        if self._is_frozen is None:
            self._is_frozen = not any(p.requires_grad for p in self.parameters())
        return self._is_frozen

    def _drop_batched(self) -> None:
        """After each forward (its autograd graph keeps what backward needs): a direct call of a
        layer outside a forward never sees singular values from before a step or a switch."""
        self.shared.batched = None

    def stack_singular_values(self) -> None:
        """Before each forward of a trainable adapter: every layer's singular values in one batched
        op with autograd (``full_singular_values`` of the stacked sigma and s_l, one view per layer),
        so a training step runs a handful of kernels for them instead of a few per layer forward and
        backward (benchmarks/RESULTS.md counts the operators)."""
        shared = self.shared
        shared.batched = full_singular_values(shared.sigma, shared.scale, self.preference, self.pref_rank).unbind(0)

    def _apply(self, fn: Any, *args: Any, **kwargs: Any) -> "PanaceaAdapter":
        """``.to()``, ``.half()``...: the frozen singular values follow the parameters."""
        result = super()._apply(fn, *args, **kwargs)
        self._is_frozen = None
        self.shared.version += 1
        if self.shared.frozen is not None:
            self._refresh()
        return result

    def requires_grad_(self, requires_grad: bool = True) -> "PanaceaAdapter":
        """Freeze or unfreeze through here (not parameter by parameter): a switch relies on the
        frozen state it caches."""
        super().requires_grad_(requires_grad)
        self._is_frozen = None
        self.shared.frozen = None  # until the next set_preference: nothing derived from the old state is used
        self.shared.version += 1
        return self

    @contextmanager
    def attached(self, engine: HookEngine) -> Iterator[None]:
        """The adapter's deltas added to their Linear modules' outputs. A trainable adapter also
        rebuilds every layer's singular values once per forward of the whole model (hooks on the
        model: built before, dropped after), so they always reflect this step's parameters and
        lambda, and each backward has its own graph."""
        with ExitStack() as stack:
            if not self._frozen():
                stack.callback(self._drop_batched)
                stack.enter_context(engine.observe_inputs(lambda _inputs: self.stack_singular_values(), after=self._drop_batched))
            stack.enter_context(engine.update_outputs({site: layer.add_into for site, layer in zip(self.sites, self.layers)}))
            yield

    @contextmanager
    def merged(self, engine: HookEngine, preference: list[float]) -> Iterator[None]:
        """Fold the adapter at ``preference`` into the weights (zero overhead); restored exactly on exit."""
        self.set_preference(preference)
        with torch.no_grad():
            deltas = {site: layer.delta_weight() for site, layer in zip(self.sites, self.layers)}  # (out, in) each
        with engine.add_to_weights(deltas):
            yield

    def state(self) -> dict[str, torch.Tensor]:
        out = {}
        for site, layer in zip(self.sites, self.layers):
            for name in ("U", "V", "sigma", "scale"):  # sigma and s_l cloned: a saved tensor shares no storage
                out[f"{site}.{name}"] = getattr(layer, name).detach().clone() if name in ("sigma", "scale") else getattr(layer, name).detach()
        return out

    @classmethod
    def from_state(cls, tensors: dict[str, torch.Tensor], sites: list[str], rank: int, n_prefs: int, pref_rank: int = 1) -> "PanaceaAdapter":
        shapes = {s: (tensors[f"{s}.V"].shape[0], tensors[f"{s}.U"].shape[0]) for s in sites}
        adapter = cls(shapes, rank, n_prefs, pref_rank=pref_rank)
        with torch.no_grad():
            for site, layer in zip(sites, adapter.layers):
                for name in ("U", "V", "sigma", "scale"):
                    getattr(layer, name).copy_(tensors[f"{site}.{name}"])
        return adapter.requires_grad_(False)

    @classmethod
    def from_artifact(cls, artifact: Any, engine: HookEngine) -> "PanaceaAdapter":
        """Rebuild a trained adapter, checking every tensor's shape against the model's modules."""
        rank, m, pref_rank = int(artifact.meta["rank"]), len(artifact.meta["dimensions"]), int(artifact.meta.get("pref_rank", 1))
        for site in artifact.sites:
            fan_in, fan_out = projection_features(engine.site(site).module)
            artifact.expect(f"{site}.U", (fan_out, rank + m * pref_rank), "panacea artifact")
            artifact.expect(f"{site}.V", (fan_in, rank + m * pref_rank), "panacea artifact")
            artifact.expect(f"{site}.sigma", (rank,), "panacea artifact")
            artifact.expect(f"{site}.scale", (), "panacea artifact")
        return cls.from_state(artifact.tensors, artifact.sites, rank, m, pref_rank)
