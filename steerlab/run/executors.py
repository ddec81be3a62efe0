"""Where a run's pieces execute: in this process (``local``, the default) or as Ray tasks (``ray``).

A piece is one (method entry, training seed): train, sweep, analyze (``runner.pieces``). Both
executors take a started (or resumed) session and return its results. A Ray task runs exactly
what ``steerlab run --resume RUN --only NAME@SEED`` runs in a process of its own: it reopens the
run folder, loads the model and runs that one piece, so the numbers are those of one process by
construction; the driver then finishes the run (metric sections, comparison, report) exactly as
``--resume`` does. The run folder must therefore be on storage every worker sees: ``prepare``
has a worker on every node write a probe file there that the driver must read back, before the
run folder is created. Ray is optional (``pip install 'steerlab[ray]'``) and imported only here.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from steerlab.errors import ConfigError, RunIncomplete

if TYPE_CHECKING:
    from steerlab.results import RunResults
    from steerlab.run.runner import Piece, Session
    from steerlab.study.schema import Study

EXECUTORS = ("local", "ray")
INSTALL_RAY = "pip install 'steerlab[ray]' (or bash scripts/install.sh dev)"
PROBE_TIMEOUT_S = 120.0  # a worker per node starts (imports Ray) and writes one file
CONNECT_TIMEOUT_S = 5.0  # Ray itself retries an unreachable address for minutes


class Executor(Protocol):
    """Runs a session's pieces; interchangeable (``open_executor``), the CLI knows no other."""

    def prepare(self, study: Study, folder: Path) -> None:
        """Refuse (``ConfigError``) what this executor cannot run, before any run folder exists:
        ``folder`` is where the run folder goes (a new run) or the run folder (a resumed one)."""

    def run(self, session: Session, show_progress: bool, only: Sequence[str]) -> RunResults | None:
        """Every unfinished piece (those ``only`` selects), then the results (None with ``only``)."""

    def close(self) -> None:
        """Release what ``open_executor`` acquired (a Ray instance this process started)."""


@contextmanager
def open_executor(name: str, ray_address: str | None = None) -> Iterator[Executor]:
    """The executor ``--executor NAME`` names, closed on exit (also after Ctrl-C)."""
    if name not in EXECUTORS:
        raise ConfigError(f"--executor {name}: expected one of {', '.join(EXECUTORS)}")
    if ray_address is not None and name != "ray":
        raise ConfigError(f"--ray-address {ray_address}: only with --executor ray")
    executor: Executor = LocalExecutor() if name == "local" else RayExecutor.connect(ray_address)
    try:
        yield executor
    finally:
        executor.close()


class LocalExecutor:
    """Every piece in this process, one after another (what ``steerlab run`` always did)."""

    def prepare(self, study: Study, folder: Path) -> None:
        return None

    def run(self, session: Session, show_progress: bool, only: Sequence[str]) -> RunResults | None:
        from steerlab.run import runner

        return runner.execute(session, show_progress, only)

    def close(self) -> None:
        return None


def import_ray() -> Any:
    """The ``ray`` module, or the one line that says how to install it."""
    try:
        import ray
    except ImportError:
        raise ConfigError(f"--executor ray: Ray is not installed; install it with {INSTALL_RAY}") from None
    return ray


def check_reachable(address: str) -> None:
    """One line, at once, for an address where nothing listens (``ray.init`` would retry for
    minutes): ``HOST:PORT`` or ``ray://HOST:PORT``; ``auto`` is Ray's own look-up."""
    if address == "auto":
        return
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError(f"--ray-address {address}: expected auto, HOST:PORT or ray://HOST:PORT")
    try:
        socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as exc:
        raise ConfigError(f"--ray-address {address}: no Ray cluster answers there ({exc.strerror or exc}); "
                          "start one with 'ray start --head' or give its address") from None


def task_resources(study: Study, cluster: dict[str, float]) -> dict[str, float]:
    """What each task asks Ray for (``[executor]``; by default one GPU when the cluster has GPUs
    and the study may use them, else CPUs only), refused when no node of the cluster has that much."""
    cuda = study.meta.device != "cpu" and cluster.get("GPU", 0.0) > 0
    need = {"GPU": study.executor.gpus(cuda), "CPU": study.executor.cpus_per_task}
    for kind, amount in need.items():
        if amount > cluster.get(kind, 0.0):
            raise ConfigError(f"{study.path}: [executor] key '{kind.lower()}s_per_task' is {amount:g}, but the Ray "
                              f"cluster has {cluster.get(kind, 0.0):g} {kind}s in all")
    return {"num_gpus": need["GPU"], "num_cpus": need["CPU"]}


def run_piece_task(run_dir: str, label: str, threads: int) -> dict[str, Any]:
    """One piece, inside a Ray worker: ``steerlab run --resume RUN_DIR --only LABEL``."""
    import torch

    from steerlab.run import runner

    torch.set_num_threads(threads)
    start = time.perf_counter()
    runner.execute(runner.resume(Path(run_dir)), show_progress=False, only=[label])
    return {"seconds": time.perf_counter() - start, "host": socket.gethostname()}


def warm_up() -> None:
    """Import what a piece needs (torch, transformers, the plugins: tens of seconds on a busy CPU),
    in each worker while the driver still loads its model; the worker is then reused by pieces."""
    from steerlab.plugin import build_registry
    from steerlab.run import runner  # noqa: F401

    build_registry()


def write_probe(folder: str, name: str) -> str:
    """On one node: write a file into ``folder`` (which must exist there) naming this host."""
    host = socket.gethostname()
    (Path(folder) / name).write_text(host)
    return host


def report_line(line: str) -> None:
    """A line above the driver's progress bar (a finished or failed task)."""
    from tqdm.auto import tqdm

    tqdm.write(line, file=sys.stderr)


def probe_seen(path: Path, host: str) -> bool:
    """Whether the probe a worker on ``host`` wrote is here, in this process's view of the folder."""
    return path.is_file() and path.read_text() == host


@dataclass
class RayExecutor:
    """Each piece a Ray task (retried once), the [compare] reference's pieces first; the driver
    shows a line per finished task and a bar, then finishes the run as ``--resume`` does."""

    ray: Any
    disconnect: bool  # this process connected (or started a local instance): ray.shutdown() on close
    resources: dict[str, float] = field(default_factory=dict)  # per task, from prepare
    address: str | None = None  # --ray-address (None: a local instance)
    _starting: threading.Thread | None = None  # ray.init, while the driver loads its model
    _failure: BaseException | None = None  # what ray.init raised there
    _started: threading.Event = field(default_factory=threading.Event)
    _closed: threading.Event = field(default_factory=threading.Event)

    @classmethod
    def connect(cls, address: str | None) -> "RayExecutor":
        """Join the cluster at ``address`` (``auto``: the running one), or start a local instance
        on this machine's cores, in the background: Ray's start (seconds: GCS, raylet, agents,
        workers) overlaps the driver's own imports and model load, and ``prepare`` waits for it.
        A Ray this process already joined (a notebook, tests) is used as it is."""
        ray = import_ray()
        if address is not None:
            check_reachable(address)
        if ray.is_initialized():
            executor = cls(ray, disconnect=False)
            executor.warm_up()
            return executor
        executor = cls(ray, disconnect=True, address=address)
        executor._starting = threading.Thread(target=executor._start, name="steerlab-ray-init", daemon=True)
        executor._starting.start()
        return executor

    def _start(self) -> None:
        """The background thread: start Ray, then stay alive until ``close``. Ray's own processes
        (GCS, raylet) die with the *thread* that started them (Linux's parent-death signal is per
        thread), so this thread must outlive every use of them."""
        local = {"num_cpus": len(os.sched_getaffinity(0))} if self.address is None else {}
        try:
            self.ray.init(address=self.address, include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR, **local)
            self.warm_up()
        except BaseException as exc:  # handed to the main thread by ready()
            self._failure = exc
        self._started.set()
        self._closed.wait()

    def ready(self) -> None:
        """Wait for the background start; its failure as one line (bad input: the address)."""
        if self._starting is not None:
            self._started.wait()
        failure, self._failure = self._failure, None
        if isinstance(failure, (ConnectionError, RuntimeError, ValueError)):
            what = "--executor ray: cannot start a local Ray instance" if self.address is None else \
                f"--ray-address {self.address}: cannot join a Ray cluster there"
            raise ConfigError(f"{what} ({str(failure).splitlines()[0]})")
        if failure is not None:
            raise failure

    def warm_up(self) -> None:
        """A worker per CPU of the cluster starts importing now (not awaited)."""
        task = self.ray.remote(num_cpus=1, max_retries=0)(warm_up)
        for _ in range(int(self.ray.cluster_resources().get("CPU", 0))):
            task.remote()

    def prepare(self, study: Study, folder: Path) -> None:
        self.ready()
        self.resources = task_resources(study, self.ray.cluster_resources())
        created = _make_folder(folder)
        try:
            self._check_shared(folder.resolve())
        except BaseException:
            for path in created:  # only folders made here, empty again: nothing is left behind
                path.rmdir()
            raise

    def _check_shared(self, folder: Path) -> None:
        """A worker on every node writes a probe file into ``folder``; the driver must read each."""
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        token, nodes = uuid.uuid4().hex[:12], [n for n in self.ray.nodes() if n.get("Alive")]
        probe = self.ray.remote(write_probe)
        names = [f".steerlab-probe-{token}-{i}" for i in range(len(nodes))]
        refs = [probe.options(num_cpus=0, max_retries=0, scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False))
                .remote(str(folder), name) for n, name in zip(nodes, names)]
        try:
            for node, ref, name in zip(nodes, refs, names):
                host = self._probe_host(ref, node, folder)
                if not probe_seen(folder / name, host):
                    raise ConfigError(f"{folder}: a Ray worker on {host} wrote a file there that this machine does not see; "
                                      "put the run folder on storage every node mounts at the same path (docs/scaling.md)")
        finally:
            for name in names:
                (folder / name).unlink(missing_ok=True)

    def _probe_host(self, ref: Any, node: dict[str, Any], folder: Path) -> str:
        where = node.get("NodeManagerAddress", node["NodeID"])
        try:
            return self.ray.get(ref, timeout=PROBE_TIMEOUT_S)
        except self.ray.exceptions.GetTimeoutError:
            raise ConfigError(f"{folder}: no Ray worker on node {where} answered within {PROBE_TIMEOUT_S:g} s") from None
        except self.ray.exceptions.RayError as exc:
            raise ConfigError(f"{folder}: a Ray worker on node {where} cannot write there ({_one_line(exc)}); put the run "
                              "folder on storage every node mounts at the same path (docs/scaling.md)") from None

    def run(self, session: Session, show_progress: bool, only: Sequence[str]) -> RunResults | None:
        from tqdm.auto import tqdm

        from steerlab.run import runner

        layout = session.layout
        waves = runner.piece_waves(session.study, session.registry, layout, only)
        # resources given to ray.remote itself: a GPU task then gets a fresh worker (max_calls=1), never one whose
        # CUDA context belongs to another task's GPU
        task = self.ray.remote(**self.resources, max_retries=1, retry_exceptions=True)(run_piece_task)
        threads = max(1, int(self.resources.get("num_cpus", 1)))
        failed: list[str] = []
        with tqdm(total=sum(map(len, waves)), desc="pieces (ray)", disable=not show_progress, dynamic_ncols=True) as bar:
            for i, wave in enumerate(waves):
                failed += self._run_wave(task, wave, str(layout.root), threads, bar)
                if failed:
                    skipped = [p.label for later in waves[i + 1:] for p in later]
                    raise RunIncomplete(_incomplete(failed, skipped, layout.root))
        return None if only else runner.execute(session, show_progress)

    def _run_wave(self, task: Any, wave: list[Piece], run_dir: str, threads: int, bar: Any) -> list[str]:
        """Submit every piece of ``wave``, report each as it ends; Ctrl-C cancels the rest."""
        labels = {task.remote(run_dir, p.label, threads): p.label for p in wave}
        pending, failed = list(labels), []
        try:
            while pending:
                ready, pending = self.ray.wait(pending, num_returns=1)
                for ref in ready:
                    line, ok = self._outcome(ref, labels[ref])
                    bar.update()
                    report_line(line)
                    failed += [] if ok else [labels[ref]]
        except KeyboardInterrupt:
            for ref in pending:  # a KeyboardInterrupt in each task too (never retried); every file is written
                self.ray.cancel(ref)  # atomically, so --resume finds whole stages and redoes the rest
            raise
        return failed

    def _outcome(self, ref: Any, label: str) -> tuple[str, bool]:
        try:
            done = self.ray.get(ref)
        except self.ray.exceptions.RayError as exc:
            return f"steerlab: {label} failed, also when tried again: {_one_line(exc)}", False
        return f"steerlab: finished {label} in {done['seconds']:.1f} s on {done['host']}", True

    def close(self) -> None:
        if self._starting is not None:
            self._started.wait()  # a start still under way (Ctrl-C, a bad study): shut down what it started
        if self.disconnect:
            self.ray.shutdown()
        self._closed.set()
        if self._starting is not None:
            self._starting.join()


def _one_line(exc: BaseException) -> str:
    """A task's error as one line: the exception raised inside it, not Ray's wrapper and traceback."""
    cause = getattr(exc, "cause", None) or exc
    text = str(cause).strip().splitlines()
    return f"{type(cause).__name__}: {text[0]}" if text else type(cause).__name__


def _incomplete(failed: list[str], skipped: list[str], root: Path) -> str:
    waiting = f"; not started, waiting on them: {', '.join(skipped)}" if skipped else ""
    return (f"{len(failed)} piece(s) failed: {', '.join(failed)}{waiting}; the other pieces' stages are kept: finish with "
            f"steerlab run --resume {root} (with or without --executor ray)")


def _make_folder(folder: Path) -> list[Path]:
    """Create ``folder`` and its missing parents; the ones created, deepest first."""
    missing = [p for p in (folder, *folder.parents) if not p.exists()]
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"--out {folder}: cannot create a folder there ({exc.strerror})") from None
    return missing
