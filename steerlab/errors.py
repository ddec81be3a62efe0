"""The one error type users see: bad input, said in one line, exit code 2 from the CLI; and the
one warning (a broken installed plugin, left out), also one line."""

from __future__ import annotations


class ConfigError(ValueError):
    """Bad user input (a study file, a flag, a missing file, an unknown name).

    Subclasses ValueError so config dataclasses can raise it from ``__post_init__``; the CLI
    prints ``str(err)`` on one line and exits 2. The message names the file, the key and what
    was expected wherever those are known.
    """


class BrokenPluginWarning(UserWarning):
    """An installed plugin could not be imported and was left out; the message is one line naming
    the entry point, its distribution, the import error and ``pip uninstall DIST``."""


class RunIncomplete(RuntimeError):
    """Some pieces of a run failed (a distributed run's tasks, each tried twice): not bad input.
    The other pieces' stages are kept; the CLI prints the one-line message and exits 1, and
    ``steerlab run --resume RUN`` completes the run."""
