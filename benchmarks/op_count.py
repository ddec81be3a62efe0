"""Operators one training step dispatches, Panacea against a PEFT LoRA of equal rank, with the model
in bfloat16 and the adapter in float32 as on a GPU, counted on any machine.

Why: a 135M model's training step on a GPU is bound by kernel launches, and each non-view aten
operator is at least one launch, so the count predicts the GPU ratio where no GPU is lent. The
step is the real one (``group_losses``, backward, ``make_optimiser``'s AdamW, foreach as on a GPU);
inputs are short, since counts do not depend on length.

    python benchmarks/op_count.py
"""

from __future__ import annotations

import sys
import tempfile
from collections import Counter
from pathlib import Path

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from steerlab.api import DEFAULT_TARGETS, Lab, build_registry, group_losses, load_model, match_sites
from steerlab_plugins.panacea.layers import PanaceaAdapter

sys.path.insert(0, str(Path(__file__).parent))
from speed import M, RANK  # noqa: E402  (the same ranks as speed.py training)


class Count(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.ops: Counter[str] = Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if not getattr(func, "is_view", False):
            self.ops[func.overloadpacket.__name__] += 1
        return func(*args, **(kwargs or {}))


def main() -> None:
    registry = build_registry()
    model = load_model("smollm2-135m-instruct", registry.models, "cpu", "bfloat16")
    lab = Lab.for_model(model, registry, Path(tempfile.mkdtemp()))
    sites = match_sites(model.hf, DEFAULT_TARGETS)
    tok = model.tokenizer
    pairs = [(tok(model.format_prompt(p), add_special_tokens=False)["input_ids"][:12], tok(" blue sky")["input_ids"]) for p in "abcdef"]
    index = torch.tensor([0, 0, 1, 1, 2, 2])

    def stepper(params: list[torch.nn.Parameter], before=lambda: None):
        optimiser = torch.optim.AdamW(params, lr=1e-4, foreach=True)  # a GPU's AdamW path (fused where make_optimiser can)

        def step() -> None:
            before()
            group_losses(model, pairs, index, 3).sum().backward()
            optimiser.step()
            optimiser.zero_grad(set_to_none=True)
        return step

    adapter = PanaceaAdapter.for_engine(lab.engine, [s.name for s in sites], RANK, M)
    counts = {}
    with adapter.attached(lab.engine):
        step = stepper(list(adapter.parameters()), lambda: adapter.set_preference(torch.tensor([0.2, 0.3, 0.5])))
        step()
        with Count() as c:
            step()
        counts["Panacea"] = c.ops
    from peft import LoraConfig, get_peft_model

    peft = get_peft_model(model.hf, LoraConfig(r=RANK + M, lora_alpha=8, target_modules=[s.module_path for s in sites]))
    step = stepper([p for p in peft.parameters() if p.requires_grad])
    step()
    with Count() as c:
        step()
    counts[f"PEFT LoRA r{RANK + M}"] = c.ops
    for name, ops in counts.items():
        print(f"{name:14s} {sum(ops.values()):6d} non-view ops per step; most: {ops.most_common(6)}")


if __name__ == "__main__":
    main()
