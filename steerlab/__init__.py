"""steerlab: a plugin-based mechanistic steering lab for language models.

The Python API (``docs/python-api.md``): ``open_run(path)`` opens a finished run folder (a ``Run``:
``.methods``, ``.generate``, ``.steering``), ``load_model(name_or_path)`` loads a model as a study
does, ``run_study(path, **overrides)`` runs a study, ``wrap(hf_model, tokenizer)`` prepares a model
you loaded yourself exactly as the zoo does. Plugins import ``steerlab.api`` instead.

The names are imported on first use, so ``import steerlab`` (and the CLI's start) stays light.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

_LAZY = {"open_run": "steerlab.notebook", "load_model": "steerlab.notebook", "run_study": "steerlab.notebook",
         "Run": "steerlab.notebook", "ConfigError": "steerlab.errors", "wrap": "steerlab.model.zoo"}
__all__ = [*_LAZY, "__version__"]


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'steerlab' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(_LAZY[name]), name)


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})
