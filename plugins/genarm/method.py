"""GenARM (Xu et al.): an autoregressive reward model pi_r (a PEFT LoRA on a copy of the base),
trained on preference pairs with no reference model, and decoding from pi_base * pi_r^alpha at
temperature 1 + alpha. alpha is chosen per batch row at decoding time."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from steerlab.api import (PairSampler, lora_config, lora_factors, read_pairs, row_logprobs, Artifact, ArtifactCache, BaseMethod, ControlSpace, Lab, LoadedModel, MethodEntry, Scalar, Section, SweepResult,
                          file_digest, match_sites, optimise, target_logits)

from steerlab_plugins.genarm.config import ALPHA_GRID, GenARMConfig
from steerlab_plugins.genarm.reward import RewardStream, combine, copy_of_base, merged_reward_model


def reward_loss(model: LoadedModel, batch: list, beta: float) -> tuple[torch.Tensor, dict[str, float]]:
    """-log sigmoid(beta * (sum log pi_r(y_w|x) - sum log pi_r(y_l|x))), mean over pairs."""
    logits, targets, mask = target_logits(model, batch)
    chosen, rejected = row_logprobs(logits, targets, mask.float()).chunk(2)
    margin = chosen - rejected  # (pairs,)
    loss = -F.logsigmoid(beta * margin).mean()
    return loss, {"margin": margin.detach().mean(), "accuracy": (margin.detach() > 0).float().mean()}  # tensors: no host sync per step


@contextmanager
def in_step(lab: Lab, reward: nn.Module, alpha: torch.Tensor) -> Iterator[None]:
    """The reward model runs before every base forward; its log-probs are mixed into the logits."""
    stream = RewardStream(reward)
    with lab.engine.observe_inputs(stream.observe), lab.engine.edit({"logits": combine(stream, alpha)}):
        yield


class GenARMMethod(BaseMethod):
    """Autoregressive reward model (LoRA on a copy) guiding the frozen base token by token."""

    name = "genarm"
    description = "GenARM: (log pi_base + alpha * log pi_r) / (1 + alpha), pi_r a LoRA reward model run in step"
    Config = GenARMConfig

    def __init__(self) -> None:
        self._reward_models: ArtifactCache[nn.Module] = ArtifactCache()  # the last artifact's, dropped before the next is built

    def control_space(self, config: GenARMConfig) -> ControlSpace:
        return Scalar("alpha", grid=ALPHA_GRID, minimum=0.0)

    def check(self, lab: Lab, config: GenARMConfig) -> None:
        match_sites(lab.model.hf, config.targets)
        PairSampler(lab.model, read_pairs(Path(config.pairs)), config.max_tokens, 0)

    def train(self, lab: Lab, config: GenARMConfig) -> Artifact:
        from peft import get_peft_model

        sites = match_sites(lab.model.hf, config.targets)
        module_to_site = {s.module_path: s.name for s in sites}
        sampler = PairSampler(lab.model, read_pairs(Path(config.pairs)), config.max_tokens, lab.seed)
        lab.seeded("genarm:lora")
        peft_model = get_peft_model(copy_of_base(lab.model), lora_config(sites, config.rank, config.lora_alpha))  # the base itself is never modified
        reward = LoadedModel(f"{lab.model.name}+genarm", peft_model, lab.model.tokenizer)
        params = [p for p in peft_model.parameters() if p.requires_grad]
        log = optimise(params, lambda step: reward_loss(reward, sampler.batch(config.pairs_per_step), config.beta),
                       config.steps, config.lr, lab.progress, "genarm train")
        meta = {"rank": config.rank, "lora_alpha": config.lora_alpha, "train_log": log,
                "tokens_per_step": sampler.tokens_per_batch(config.pairs_per_step), "pairs_sha256": file_digest(Path(config.pairs)),
                "train_tokens": sampler.tokens_per_batch(config.pairs_per_step) * config.steps,
                # decoding holds a whole second model (the reward model, a merged copy of the base)
                "inference_extra_bytes": sum(p.numel() * p.element_size() for p in lab.model.hf.parameters())}
        tensors = {f"{site}.{k}": t for site, ab in lora_factors(peft_model, module_to_site).items() for k, t in zip("AB", ab)}
        return Artifact(tensors, meta, sites=[s.name for s in sites])

    def reward_model(self, lab: Lab, artifact: Artifact) -> nn.Module:
        """The artifact's reward model, rebuilt once and reused (steer is entered once per batch)."""
        return self._reward_models.get(artifact, lambda: merged_reward_model(lab.model, artifact))

    def steer(self, lab: Lab, artifact: Artifact, controls: torch.Tensor) -> AbstractContextManager[None]:
        if not bool(controls.any()):
            return nullcontext()  # alpha 0 everywhere: no reward forward at all, exactly the base model
        return in_step(lab, self.reward_model(lab, artifact), controls)

    def analyze(self, lab: Lab, entry: MethodEntry, artifact: Artifact, result: SweepResult, folder: Path) -> Section:
        from steerlab_plugins.genarm.analysis import analyze

        return analyze(lab, artifact, result, folder)
