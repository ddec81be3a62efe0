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

from steerlab.api import (PreferenceData, lora_config, lora_factors, row_logprobs, Artifact, ArtifactCache, BaseMethod, ControlSpace, Lab, LoadedModel,
                          MethodEntry, Scalar, Section, SweepResult, match_sites, optimise, target_logits)

from steerlab_plugins.genarm.config import ALPHA_GRID, GenARMConfig
from steerlab_plugins.genarm.reward import RewardStream, combine, copy_of_base, merged_reward_model


def reward_margins(model: LoadedModel, batch: list, margin: str = "sum") -> torch.Tensor:
    """log pi_r(y_w|x) - log pi_r(y_l|x) per pair, (pairs,): summed over each answer's tokens
    (``sum``, the paper's), or their mean (``mean``: two answers of different lengths start near
    0 apart, not at the length gap times the mean log-prob)."""
    logits, targets, mask = target_logits(model, batch)
    maskf = mask.float()
    scores = row_logprobs(logits, targets, maskf)  # (rows,)
    if margin == "mean":
        scores = scores / maskf.sum(1).clamp(min=1)
    chosen, rejected = scores.chunk(2)
    return chosen - rejected


def reward_loss(model: LoadedModel, batch: list, beta: float, margin: str = "sum") -> tuple[torch.Tensor, dict[str, float]]:
    """-log sigmoid(beta * margin), mean over pairs (``reward_margins``)."""
    margin = reward_margins(model, batch, margin)  # (pairs,)
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
        PreferenceData.load(lab.model, Path(config.pairs), config.heldout_fraction, config.max_tokens, 0)

    def train(self, lab: Lab, config: GenARMConfig) -> Artifact:
        from peft import get_peft_model

        sites = match_sites(lab.model.hf, config.targets)
        module_to_site = {s.module_path: s.name for s in sites}
        data = PreferenceData.load(lab.model, Path(config.pairs), config.heldout_fraction, config.max_tokens, lab.seed)
        lab.seeded("genarm:lora")
        peft_model = get_peft_model(copy_of_base(lab.model), lora_config(sites, config.rank, config.lora_alpha))  # the base itself is never modified
        reward = LoadedModel(f"{lab.model.name}+genarm", peft_model, lab.model.tokenizer)
        params = [p for p in peft_model.parameters() if p.requires_grad]
        validation = data.validation(lambda rows: reward_margins(reward, rows, config.margin), config.eval_every)
        log = optimise(params, lambda step: reward_loss(reward, data.train.batch(config.pairs_per_step), config.beta, config.margin),
                       config.steps, config.lr, lab.progress, "genarm train", validation=validation)
        meta = {"rank": config.rank, "lora_alpha": config.lora_alpha, "train_log": log, "margin": config.margin,
                "require_heldout_accuracy": config.require_heldout_accuracy, **data.meta(config.pairs_per_step, config.steps),
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
