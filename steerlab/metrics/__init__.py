"""Metrics: the contract (``base``), the built-in metrics (``builtin``), the embedder and judge."""
