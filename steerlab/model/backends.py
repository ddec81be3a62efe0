"""The generation-backend seam: every answer steerlab generates goes through one backend.

A backend turns formatted prompts into ``Generation`` records, one batch at a time, with rows in
order (so per-row controls line up). The built-in ``hf`` backend is Hugging Face ``generate`` on
the loaded model, where the engine's hooks act. A serving-engine backend (vLLM, SGLang) would
register here through ``steerlab_backends`` and receive the same rows; how steering would travel
with a request there is written up in ``docs/scaling.md``. Methods never name a backend.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from steerlab.model.generation import Generation, GenerationSettings, generate_batch
from steerlab.model.zoo import LoadedModel


@runtime_checkable
class GenerationBackend(Protocol):
    name: str
    description: str

    def generate(self, model: LoadedModel, texts: list[str], settings: GenerationSettings) -> list[Generation]: ...


class HFGenerate:
    """Hugging Face ``generate`` on the loaded model (dynamic KV cache, left padding)."""

    name = "hf"
    description = "Hugging Face generate on the loaded model; steering through the HookEngine's hooks"

    def generate(self, model: LoadedModel, texts: list[str], settings: GenerationSettings) -> list[Generation]:
        return generate_batch(model, texts, settings)
