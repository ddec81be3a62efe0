"""The generation-backend seam: every answer steerlab generates goes through one backend.

A backend turns formatted prompts into ``Generation`` records, one batch at a time, with rows in
order (so per-row controls line up). The built-in ``hf`` backend is Hugging Face ``generate`` on
the loaded model, where the engine's hooks act. A serving-engine backend (vLLM, SGLang) would
register here through ``steerlab_backends`` and receive the same rows; how steering would travel
with a request there is written up in ``docs/scaling.md``. Methods never name a backend.

``step`` (optional; ``steerlab serve`` needs it) watches every decoding step of the batch: it sees
each row's new token and may end rows early (``steerlab.model.generation.Step``). Lab calls pass it
only when someone watches, so a backend written before it existed still runs studies.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from steerlab.model.generation import Generation, GenerationSettings, Step, generate_batch
from steerlab.model.zoo import LoadedModel


@runtime_checkable
class GenerationBackend(Protocol):
    name: str
    description: str

    def generate(self, model: LoadedModel, texts: list[str], settings: GenerationSettings, step: Step | None = None) -> list[Generation]: ...


class HFGenerate:
    """Hugging Face ``generate`` on the loaded model (dynamic KV cache, left padding)."""

    name = "hf"
    description = "Hugging Face generate on the loaded model; steering through the HookEngine's hooks"

    def generate(self, model: LoadedModel, texts: list[str], settings: GenerationSettings, step: Step | None = None) -> list[Generation]:
        return generate_batch(model, texts, settings, step)
