"""steerlab: a plugin-based mechanistic steering lab for language models."""

__version__ = "0.1.0"
