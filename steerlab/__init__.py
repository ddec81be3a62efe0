"""steerlab: a plugin-based mechanistic steering lab for language models.

``steerlab.wrap(hf_model, tokenizer)`` prepares a model you loaded yourself for the lab (imported
on first use: ``import steerlab`` stays free of torch and transformers).
"""

from typing import Any

__version__ = "0.1.0"
__all__ = ["wrap", "__version__"]


def __getattr__(name: str) -> Any:
    if name == "wrap":
        from steerlab.model.zoo import wrap

        return wrap
    raise AttributeError(f"module 'steerlab' has no attribute {name!r}")
