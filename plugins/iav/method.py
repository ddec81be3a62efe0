"""IAV: inherent alignment vectors. One frozen backbone, the base logits z_base and an alignment
head's a_t; decoding uses z_base + alpha * a_t, alpha turned at inference without retraining."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path

import torch

from steerlab.api import (PreferenceData, Artifact, ArtifactCache, BaseMethod, ControlSpace, Lab, MethodEntry, Scalar, Section, SweepResult, optimise,
                          row_logprobs, target_logits)

from steerlab_plugins.iav.config import ALPHA_GRID, IAVConfig
from steerlab_plugins.iav.head import IAVHead, scaled_delta
from steerlab_plugins.iav.losses import dpo, iav_loss


def unembedding(lab: Lab) -> torch.Tensor:
    """The model's own frozen unembedding, (vocab, d_model): the weight of the ``logits`` site."""
    return lab.engine.site("logits").module.weight


@contextmanager
def recording(lab: Lab, head: IAVHead) -> Iterator[dict[str, torch.Tensor]]:
    """Attach the head at alpha 1 for training and record, on every forward, the base logits
    z_base (the LM head's own output, read before the head's delta is added: hooks run in the
    order attached) and a_t. One backbone pass gives both sides of the DPO log-ratio."""
    seen: dict[str, torch.Tensor] = {}
    unembed = unembedding(lab)

    def record_base(logits: torch.Tensor) -> None:
        seen["base"] = logits.detach()

    def add_head(hidden: torch.Tensor) -> torch.Tensor:
        seen["a_t"] = head(hidden, unembed)
        return seen["a_t"]

    with lab.engine.edit({"logits": record_base}), lab.engine.add_deltas({"logits": add_head}):
        yield seen


def steered_and_base(lab: Lab, seen: dict[str, torch.Tensor], rows: list) -> tuple[torch.Tensor, ...]:
    """One forward under ``recording``: steered logits, base logits, a_t (rows, T, vocab), targets, mask."""
    steered, targets, mask = target_logits(lab.model, rows)
    base, a_t = seen["base"][:, :-1].float(), seen["a_t"][:, :-1].float()  # aligned as target_logits cuts
    return steered, base, a_t, targets, mask


def iav_margins(lab: Lab, seen: dict[str, torch.Tensor], rows: list) -> torch.Tensor:
    """The DPO margin per pair, (pairs,): how much more a_t raises the chosen answer's log-prob
    than the rejected one's (the head's own ranking of the pair; > 0 ranks it right)."""
    steered, base, _, targets, mask = steered_and_base(lab, seen, rows)
    maskf = mask.float()
    return dpo(row_logprobs(steered, targets, maskf) - row_logprobs(base, targets, maskf), 1.0)[1]


class IAVMethod(BaseMethod):
    """An alignment head on the final hidden state through the frozen unembedding, trained by
    DPO against the base model plus KL and L2 terms; alpha scales it per row at decoding time."""

    name = "iav"
    description = "inherent alignment vectors: z_base + alpha * a_t from a low-rank head on the final hidden state"
    Config = IAVConfig

    def __init__(self) -> None:
        self._heads: ArtifactCache[IAVHead] = ArtifactCache()

    def control_space(self, config: IAVConfig) -> ControlSpace:
        return Scalar("alpha", grid=ALPHA_GRID, minimum=0.0)

    def check(self, lab: Lab, config: IAVConfig) -> None:
        if getattr(lab.engine.site("logits").module, "weight", None) is None:
            raise ValueError(f"model {lab.model.name!r}: its LM head has no weight matrix to reuse as the unembedding")
        PreferenceData.load(lab.model, Path(config.pairs), config.heldout_fraction, config.max_tokens, 0)

    def train(self, lab: Lab, config: IAVConfig) -> Artifact:
        seed = lab.seed + config.seed
        generator = torch.Generator().manual_seed(seed)
        head = IAVHead(lab.model.d_model, config.heads, config.head_width, generator).to(lab.model.device)
        data = PreferenceData.load(lab.model, Path(config.pairs), config.heldout_fraction, config.max_tokens, seed)
        with recording(lab, head) as seen:

            def step_loss(step: int) -> tuple[torch.Tensor, dict[str, float]]:
                loss = iav_loss(*steered_and_base(lab, seen, data.train.batch(config.pairs_per_step)),
                                config.beta, config.lambda_kl, config.lambda_l2)
                return loss.total, loss.info()

            validation = data.validation(lambda rows: iav_margins(lab, seen, rows), config.eval_every)
            log = optimise(list(head.parameters()), step_loss, config.steps, config.lr, lab.progress, "iav train", validation=validation)
        meta = {"heads": config.heads, "head_width": config.head_width, "train_log": log, "head_norms": head.head_norms(),
                **data.meta(config.pairs_per_step, config.steps)}
        return Artifact(head.state(), meta, sites=["logits"])

    def head(self, lab: Lab, artifact: Artifact) -> IAVHead:
        """The artifact's head, rebuilt once and reused (steer is entered once per batch)."""
        return self._heads.get(artifact, lambda: IAVHead.from_artifact(artifact, lab.model.d_model).to(lab.model.device))

    def steer(self, lab: Lab, artifact: Artifact, controls: torch.Tensor) -> AbstractContextManager[None]:
        if not bool(controls.any()):
            return nullcontext()  # alpha 0 everywhere: nothing attached, exactly the base model
        delta = scaled_delta(self.head(lab, artifact), unembedding(lab), controls)
        return lab.engine.add_deltas({"logits": delta})

    def analyze(self, lab: Lab, entry: MethodEntry, artifact: Artifact, result: SweepResult, folder: Path) -> Section:
        from steerlab_plugins.iav.analysis import analyze

        return analyze(lab, artifact, result, folder)
