"""Run a study: check everything, load the model, then for each method train -> evaluate ->
analyze, then the metrics' sections, the comparison and the report.

Order matters for bad input: the study, its data files and every method and metric setting are
validated, the model is loaded and each method checks its settings against it, and only then is
the run folder created, so a failing run leaves nothing behind. Each stage writes its output
atomically; a resumed run (``--resume``) skips every stage whose output is already there, after
checking that the study file and every data file are byte-for-byte the ones the run began with.
"""

from __future__ import annotations

import dataclasses
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from steerlab.analysis.compare import compare
from steerlab.analysis.concepts import ChosenOnDev, compare_concepts, study_scales
from steerlab.analysis.evidence import control_intervals
from steerlab.analysis.judges import judges_section
from steerlab.artifact import Artifact, ArtifactHeader
from steerlab.config import as_dict
from steerlab.data.files import file_digest
from steerlab.errors import ConfigError
from steerlab.lab import Lab
from steerlab.layout import RunLayout
from steerlab.metrics.base import context as metric_context
from steerlab.metrics.base import registered as registered_metric
from steerlab.model.architectures import use_architecture
from steerlab.model.zoo import LoadedModel, describe, load_model
from steerlab.plugin import build_registry
from steerlab.registry import Registry
from steerlab.results import Figure, MethodResult, Record, RunResults, SchemaError, Section, SweepPoint, SweepResult, mean_finite
from steerlab.run import report
from steerlab.run.reuse import reused_artifact
from steerlab.storage import read_json_object, write_json
from steerlab.study.loader import load_study, read_toml
from steerlab.study.schema import MethodEntry, Study


@dataclass
class RunRequest:
    """What the user asked for on the command line (kept in ``run.json`` for ``--resume``)."""

    study_path: str
    overrides: list[str] = field(default_factory=list)
    quick: bool = False
    plugin_files: list[str] = field(default_factory=list)
    data_sha256: dict[str, str] = field(default_factory=dict)  # every data file the study reads, at the start
    seeds: list[int] = field(default_factory=list)  # the training seeds the run began with (empty: written before seeds)

    def absolute(self) -> "RunRequest":
        """Paths made absolute, so a resume from any folder finds them."""
        return dataclasses.replace(self, study_path=str(Path(self.study_path).resolve()),
                                   plugin_files=[str(Path(p).resolve()) for p in self.plugin_files])


@dataclass
class Session:
    """A validated study with its models loaded, ready to run into ``layout``."""

    study: Study
    registry: Registry
    models: dict[str, LoadedModel]  # the study's model first, then any a method entry names
    layout: RunLayout
    request: RunRequest


def plan(request: RunRequest, extra_plugins: list[str] = ()) -> tuple[Study, Registry]:  # type: ignore[assignment]
    """Everything that can be validated before the (slow) model load."""
    study_path = Path(request.study_path)
    plugin_files = [Path(p) for p in [*request.plugin_files, *extra_plugins]] + _study_plugins(study_path)
    registry = build_registry(plugin_files)
    return load_study(study_path, registry, request.overrides, request.quick), registry


def start(request: RunRequest, out: Path, show_progress: bool = True, only: Sequence[str] = (),
          prepare: Callable[[Study, Path], None] | None = None) -> Session:
    """Validate, load the model, check every method against it, then create the run folder.
    ``prepare(study, out)``: the executor's own checks (its workers see ``out``), last before it."""
    request = request.absolute()
    study, registry = plan(request)
    check_only(study, only)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out}: exists and is not a folder")
    models = load_study_models(study, registry)
    preflight(study, registry, models)
    if prepare is not None:
        prepare(study, out)
    layout = RunLayout.create(out, study.meta.name)
    shutil.copyfile(study.path, layout.study)
    request = dataclasses.replace(request, data_sha256={str(p): file_digest(p) for p in study.data_files()},
                                  seeds=study.meta.seed_list)
    write_json(layout.request, asdict(request))
    return Session(study, registry, models, layout, request)


def same_study(copy: Path, study_path: Path) -> bool:
    """Whether the study file still says what the run's copy says. Compared as parsed TOML, so a
    comment (a header gaining the measured timing once the run is done) does not block ``--resume``;
    any key or value that changed does (a file that no longer parses is named by ``read_toml``)."""
    return copy.read_bytes() == study_path.read_bytes() or read_toml(copy) == read_toml(study_path)


def reopen(run_dir: Path, extra_plugins: list[str] = (), check_data: bool = True) -> tuple[Study, Registry, RunLayout, RunRequest]:  # type: ignore[assignment]
    """A run's study and registry as the run began, after checking nothing changed under it."""
    layout = RunLayout.open(run_dir)
    data = read_json_object(layout.request, "run request", ("study_path",))
    try:
        request = RunRequest(**data)
    except TypeError as exc:
        raise ConfigError(f"{layout.request}: malformed run request ({exc})") from None
    study_path = Path(request.study_path)
    if not study_path.is_file():
        raise ConfigError(f"{layout.request}: the run's study file {study_path} no longer exists")
    if not layout.study.is_file() or not same_study(layout.study, study_path):
        raise ConfigError(f"{study_path}: changed since run {layout.root} began; start a new run instead of --resume")
    study, registry = plan(request, extra_plugins)
    if request.seeds and request.seeds != study.meta.seed_list:
        raise ConfigError(f"{study_path}: seeds {study.meta.seed_list} differ from the seeds {request.seeds} run {layout.root} "
                          "began with; start a new run instead of --resume")
    if check_data:
        for path, digest in request.data_sha256.items():
            if not Path(path).is_file() or file_digest(Path(path)) != digest:
                raise ConfigError(f"{path}: data file changed since run {layout.root} began (sha256 {digest} recorded); "
                                  "start a new run instead of --resume")
    return study, registry, layout, request


def resume(run_dir: Path) -> Session:
    study, registry, layout, request = reopen(run_dir)
    models = load_study_models(study, registry)
    preflight(study, registry, models)
    return Session(study, registry, models, layout, request)


def load_study_model(study: Study, registry: Registry, name: str | None = None) -> LoadedModel:
    """A model of the study on its device and dtype; the study's own model read with its
    ``[architecture]`` override, if it has one (a method table's other model is read by itself)."""
    name = name or study.meta.model
    try:
        model = load_model(name, registry.models, study.meta.device, study.meta.dtype)
    except ConfigError as exc:  # the study file and the key that named it, before the loader's reason
        tables = ["[study]"] if name == study.meta.model else [f"[methods.{e.name}]" for e in study.methods if e.model == name]
        raise ConfigError(f"{study.path}: {' / '.join(tables) or '[study]'} key 'model': {exc}") from None
    if study.architecture is not None and name == study.meta.model:
        use_architecture(model.hf, study.architecture, f"{study.path}: [architecture]")
    return model


def load_study_models(study: Study, registry: Registry) -> dict[str, LoadedModel]:
    return {name: load_study_model(study, registry, name) for name in study.models}


def preflight(study: Study, registry: Registry, models: dict[str, LoadedModel]) -> None:
    """Each method's own checks against its loaded model (sites, budgets), and each metric's own
    (an endpoint that must answer), before any run folder."""
    labs = {n: Lab(study=study, model=m, registry=registry, layout=RunLayout(Path("(not started)")), show_progress=False)
            for n, m in models.items()}
    if study.compare.concepts:
        study_scales(study)  # the fixed scales: present, well formed and calibrated under this study's model
    for entry in study.methods:
        try:
            registry.methods[entry.method].check(labs[entry.model], entry.config)
        except ValueError as exc:
            raise ConfigError(f"{study.path}: [methods.{entry.name}]: {exc}") from None
    for metric in study.metrics:
        check = getattr(registry.metrics[metric.registered], "check", None)  # optional: most metrics need nothing outside
        try:
            if check is not None:
                check(metric.config)
        except ValueError as exc:
            raise ConfigError(f"{study.path}: [metrics.{metric.name}]: {exc}") from None


def _study_plugins(study_path: Path) -> list[Path]:
    """Local plugin files named in the study (read before validation: they may add methods)."""
    names = read_toml(study_path).get("study", {}).get("plugins", [])
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise ConfigError(f"{study_path}: [study] key 'plugins' expected a list of file paths")
    return [study_path.parent / n for n in names]


def trained_artifact(lab: Lab, entry: MethodEntry) -> Artifact:
    """The entry's artifact: loaded (and checked) when the run has it, else taken from the run its
    table names in ``reuse_from`` when trained there exactly as here (steerlab.run.reuse), else
    trained; saved in this run either way."""
    method, folder = lab.registry.methods[entry.method], lab.layout.method(entry.name)
    if Artifact.exists(folder):
        artifact = Artifact.load(folder)
        artifact.check_made_for(entry.method, describe(lab.model), folder / "artifact.json")
        return artifact
    artifact = reused_artifact(lab, entry)
    if artifact is None:
        lab.seeded(f"train:{entry.name}")
        start = time.perf_counter()
        artifact = method.train(lab, entry.config)
        artifact.header = ArtifactHeader(entry.method, describe(lab.model), as_dict(entry.config),
                                         train_seconds=time.perf_counter() - start, train_seed=lab.seed)
        artifact.check_tensors(f"method '{entry.name}' after training")
    artifact.save(folder)
    return artifact


@dataclass(frozen=True)
class Piece:
    """One unit of a run's work: a method entry at one training seed (train, sweep, analyze).
    ``own_folder``: the entry is repeated over several seeds, so its files sit under ``seed-K``."""

    entry: MethodEntry
    seed: int
    own_folder: bool

    @property
    def label(self) -> str:
        """``NAME@SEED``, as ``--only`` takes it."""
        return f"{self.entry.name}@{self.seed}"

    def finished(self, layout: RunLayout) -> bool:
        """Whether the run folder holds every file of this piece (its sweep, analysis and cost)."""
        at = layout.for_seed(self.seed if self.own_folder else None)
        name = self.entry.name
        return all(p.exists() for p in (at.result(name), at.analysis(name), at.cost(name)))


def repeats_per_seed(study: Study, registry: Registry, entry: MethodEntry) -> bool:
    """Whether ``entry`` runs once per training seed: its method trains, or decoding samples."""
    return registry.methods[entry.method].trains or study.generation.do_sample


def pieces(study: Study, registry: Registry) -> list[Piece]:
    """Every (entry, seed) of the study, in order. A method that trains (or any method, when
    decoding samples) runs once per seed; the others once, at the first seed."""
    seeds, out = study.meta.seed_list, []
    for entry in study.methods:
        repeats = repeats_per_seed(study, registry, entry)
        out += [Piece(entry, seed, repeats and len(seeds) > 1) for seed in (seeds if repeats else seeds[:1])]
    return out


def seed_layout(study: Study, registry: Registry, layout: RunLayout, seed: int | None, flag: str = "--seed") -> RunLayout:
    """A finished run's layout at one training seed (None: the study's first), for the tools
    that open one artifact (generate, inspect, export, the Python API): each trained entry's
    files of that seed, the untrained entries' shared ones."""
    seeds = study.meta.seed_list
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed not in seeds):
        raise ConfigError(f"{flag} {seed!r}: expected one of the run's training seeds {seeds}")
    if len(seeds) == 1:
        return layout
    shared = frozenset(e.name for e in study.methods if not repeats_per_seed(study, registry, e))
    return layout.for_seed(seeds[0] if seed is None else seed, shared)


@dataclass
class PieceResult:
    seed: int
    result: SweepResult
    analysis: Section
    cost: dict[str, float]


def run_piece(lab: Lab, entry: MethodEntry) -> PieceResult:
    """Train (or load), sweep and analyze one entry at the lab's training seed; each stage is
    skipped when its file exists. A finished piece whose artifact was not kept (a run folder
    carried without its tensors) is read back from its JSON files alone; an artifact that is
    there is always loaded and checked. Every record is stamped with the seed."""
    method, layout = lab.registry.methods[entry.method], lab.layout
    finished = all(p.exists() for p in (layout.result(entry.name), layout.analysis(entry.name), layout.cost(entry.name)))
    kept = Artifact.exists(layout.method(entry.name))  # checked whenever it is there, even for a finished piece
    artifact = trained_artifact(lab, entry) if kept or not finished else None
    if not layout.cost(entry.name).exists():
        write_json(layout.cost(entry.name), cost(artifact))
    path = layout.result(entry.name)
    fresh = not path.exists()
    result = method.evaluate(lab, entry, artifact) if fresh else _load(path, "method result", SweepResult.from_json)
    for record in result.records:
        record.seed = lab.seed  # also for files written before records carried their seed
    if fresh:
        write_json(path, result.to_json())
    path = layout.analysis(entry.name)
    if path.exists():
        analysis = _load(path, "analysis", Section.from_json)
    else:
        lab.seeded(f"analyze:{entry.name}")
        analysis = method.analyze(lab, entry, artifact, result, layout.method(entry.name))
        write_json(path, asdict(analysis))
    spent = _load(layout.cost(entry.name), "training cost", lambda data, where: {k: float("nan") if v is None else float(v) for k, v in data.items()})
    return PieceResult(lab.seed, result, analysis, {**spent, **result.timing})


def method_result(lab: Lab, entry: MethodEntry, done: list[PieceResult]) -> MethodResult:
    """An entry's pieces (one per seed) as one method result: every record of every seed, a point
    per control over all of them, each analysis number averaged over seeds, the first seed's
    figures and text (each seed's sit in its own folder), each cost averaged per seed."""
    records = [r for piece in done for r in piece.result.records]
    points = _points(entry, records) if len(done) > 1 else done[0].result.points
    first = done[0].analysis
    analysis = first if len(done) == 1 else dataclasses.replace(
        first, summary=_mean_dicts([p.analysis.summary for p in done]),
        markdown=f"*Figures and text of seed {done[0].seed}; numbers averaged over seeds {[p.seed for p in done]}.*\n\n{first.markdown}")
    result = SweepResult(points, records)
    method = MethodResult(entry.name, entry.method, entry.space.describe(), {**result.summary(), **analysis.summary},
                          points, records, analysis, _mean_dicts([p.cost for p in done]), seeds=[p.seed for p in done])
    method.intervals.update(control_intervals(method))
    sweep_png = lab.layout.figure(f"{entry.name}_sweep")
    if entry.space.plot_sweep(f"{entry.name}: mean score per {entry.space.label} (95% intervals)", _plot_points(entry, result), sweep_png,
                              _point_intervals(entry, result, method.intervals)):
        analysis.figures.insert(0, Figure(lab.layout.relative(sweep_png), f"{entry.name}: mean scores against {entry.space.label}, "
                                                                           "with 95% intervals over prompts and seeds"))
    return method


def _points(entry: MethodEntry, records: list[Record]) -> list[SweepPoint]:
    """A point per control of ``entry`` that has records, over every prompt and seed."""
    out = []
    for control in entry.controls:
        label = entry.space.key(control)
        rows = [r for r in records if r.label == label]
        if rows:
            out.append(SweepPoint.from_records(entry.space.to_json(control), label, rows))
    return out


def _mean_dicts(rows: list[dict[str, float]]) -> dict[str, float]:
    keys = list(dict.fromkeys(k for row in rows for k in row))
    return {k: mean_finite([row.get(k, float("nan")) for row in rows]) for k in keys}


def cost(artifact: Artifact) -> dict[str, float]:
    """What a method costs besides decoding: training time and tokens, and memory it adds at
    inference (its tensors, plus what it declares it holds besides, e.g. GenARM's model copy)."""
    stored = sum(t.numel() * t.element_size() for t in artifact.tensors.values())
    return {"train_seconds": artifact.header.train_seconds if artifact.header else float("nan"),
            "train_tokens": float(artifact.meta.get("train_tokens", float("nan"))),
            "grad_tokens": float(artifact.meta.get("grad_tokens", float("nan"))),  # answer tokens that got gradient, to the kept step
            "extra_memory_mb": (stored + float(artifact.meta.get("inference_extra_bytes", 0))) / 2**20}


def _point_intervals(entry: MethodEntry, result: SweepResult, intervals: dict[str, list[float]]) -> list[dict[str, list[float]]]:
    """Per plotted point (``_plot_points``' order), each score's interval."""
    labels = [entry.space.key(c) for c in entry.controls if entry.space.key(c) in {p.label for p in result.points}]
    return [{k.split("@")[0]: v for k, v in intervals.items() if k.endswith(f"@{label}")} for label in labels]


def _plot_points(entry: MethodEntry, result: SweepResult) -> list[tuple[Any, dict[str, float]]]:
    by_label = {p.label: p for p in result.points}
    return [(c, by_label[entry.space.key(c)].scores) for c in entry.controls if entry.space.key(c) in by_label]


def _load(path: Path, what: str, parse: Any) -> Any:
    data = read_json_object(path, what)
    try:
        return parse(data, what)
    except SchemaError as exc:
        raise ConfigError(f"{path}: {exc} (delete it to redo this stage)") from None


def study_record(study: Study, lab: Lab, request: RunRequest) -> dict[str, Any]:
    return {
        "name": study.meta.name, "description": study.meta.description, "model": study.meta.model,
        "seed": study.meta.first_seed, "seeds": study.meta.seed_list, "quick": study.quick, "n_eval_prompts": len(lab.eval_prompts()),
        "max_new_tokens": study.generation.max_new_tokens, "batch_size": lab.settings.batch_size,
        "backend": study.generation.backend, "device": str(lab.model.device),
        "data_sha256": request.data_sha256, "metrics": study.metric_names,
        "methods": {m.name: m.method for m in study.methods}, "models": {m.name: m.model for m in study.methods},
    }


def compare_all(results: RunResults, study: Study, layout: RunLayout, registry: Registry) -> None:
    """The study-level comparisons (no model needed): Pareto fronts and the concept table."""
    judges = judges_section(results)  # first: the report's tables leave out the judges not shown above chance
    if judges is not None:
        results.reports["judges"] = judges
    if study.pareto.axes:
        results.comparison = compare(results, study, layout)
    if study.compare.concepts:
        results.concepts = compare_concepts(results, study, layout)
    for name in study.meta.reports:
        section = registry.reports[name].section(results, layout)
        if section is not None:
            results.reports[name] = section


def recompare(run_dir: Path, plugin_files: list[str] = ()) -> dict[str, Any] | None:  # type: ignore[assignment]
    """``steerlab compare RUN``: redo the comparisons of a finished run from its results.json."""
    study, registry, layout, _ = reopen(run_dir, plugin_files, check_data=False)
    if not layout.results.exists():
        raise ConfigError(f"{run_dir}: the run has no results.json yet (finish it with steerlab run --resume {run_dir})")
    results = RunResults.load(layout.results)
    if not study.pareto.axes and not study.compare.concepts and not study.meta.reports:
        raise ConfigError(f"{study.path}: no [compare] concepts, [pareto] axes or [study] reports: nothing to compare")
    compare_all(results, study, layout, registry)
    results.save(layout.results)
    report.write_report(layout, results)
    return results.concepts


def metric_section(lab: Lab, name: str) -> Section | None:
    """A metric's report section: read back when the run has it (the likelihood judge's takes
    minutes on a CPU), else computed and kept, like every other stage."""
    path = lab.layout.metric_section(name)
    if path.exists():
        data = read_json_object(path, "metric section")
        return None if data.get("none") else _load(path, "metric section", Section.from_json)
    start = time.perf_counter()
    section = registered_metric(lab, name).section(metric_context(lab, name))
    if section is not None:  # its wall time, for the report's cost table
        section = dataclasses.replace(section, data={**section.data, "seconds": time.perf_counter() - start})
    write_json(path, {"none": True} if section is None else asdict(section))
    return section


def check_only(study: Study, only: Sequence[str]) -> None:
    """``--only`` names method entries of the study (``NAME``: every seed of it; ``NAME@SEED``:
    one piece); a typo must not silently run nothing."""
    names = [m.name for m in study.methods]
    for item in only:
        name, _, seed = item.partition("@")
        if name not in names:
            raise ConfigError(f"--only {item}: {study.path} has no [methods.{name}]; expected one of {', '.join(names)}")
        if seed and (not seed.isdigit() or int(seed) not in study.meta.seed_list):
            raise ConfigError(f"--only {item}: expected NAME@SEED with SEED one of the study's seeds {study.meta.seed_list}")


def _selected(piece: Piece, only: Sequence[str]) -> bool:
    """Whether ``--only`` asks for this piece (no ``--only``: every piece)."""
    if not only:
        return True
    for item in only:
        name, _, seed = item.partition("@")
        if name == piece.entry.name and (not seed or int(seed) == piece.seed):
            return True
    return False


def _chooses_test_controls(study: Study, entry: MethodEntry) -> bool:
    """Whether ``entry`` is the [compare] reference whose dev records pick the others' test controls."""
    return bool(study.compare.concepts and study.compare.test_chosen_only and entry.name == study.compare.reference)


def _needed_for_only(study: Study, todo: list[Piece], only: Sequence[str], layout: RunLayout) -> bool:
    """Whether ``--only`` must still load the entry of ``todo`` (its pieces, every seed): the
    concept reference, whose dev records choose the other entries' test controls, once every
    piece of it is finished (it is never trained here)."""
    entry = todo[0].entry
    if not _chooses_test_controls(study, entry):
        return False
    if all(p.finished(layout) for p in todo):
        return True
    raise ConfigError(f"--only {', '.join(only)}: the [compare] reference '{entry.name}' chooses their controls; "
                      f"run it first (--only {entry.name})")


def piece_waves(study: Study, registry: Registry, layout: RunLayout, only: Sequence[str] = ()) -> list[list[Piece]]:
    """The unfinished pieces (those ``only`` selects), in the order separate processes must run
    them: the [compare] reference's pieces first when its dev records choose the other entries'
    test controls, then every other piece, in any order or all at once."""
    check_only(study, only)
    every = pieces(study, registry)
    todo = [p for p in every if _selected(p, only) and not p.finished(layout)]
    first = [p for p in todo if _chooses_test_controls(study, p.entry)]
    rest = [p for p in todo if p not in first]
    reference = [p for p in every if _chooses_test_controls(study, p.entry)]
    if rest and not first and only and reference:
        _needed_for_only(study, reference, only, layout)  # one line when it is not finished
    return [wave for wave in (first, rest) if wave]


def execute(session: Session, show_progress: bool = True, only: Sequence[str] = ()) -> RunResults | None:
    """Run every stage not yet finished and write results.json + report.md.

    With ``only``, run just those method entries and stop before the study-level sections: several
    processes (or machines sharing a folder) can then each run some methods of one run folder at
    once, and a final ``--resume`` without ``only`` loads them all and writes the results. Every
    stage is seeded by its entry's name, so the numbers are those of one process running all."""
    study = session.study
    check_only(study, only)
    labs = {name: Lab(study=study, model=model, registry=session.registry, layout=session.layout, show_progress=show_progress)
            for name, model in session.models.items()}
    lab = labs[study.meta.model]
    methods: dict[str, MethodResult] = {}
    for entry in study.methods:
        todo = [p for p in pieces(study, session.registry) if p.entry.name == entry.name]
        if only and not any(_selected(p, only) for p in todo):
            if not _needed_for_only(study, todo, only, session.layout):
                continue  # else the concept reference, every seed of it: finished, read back
        elif only:
            todo = [p for p in todo if _selected(p, only)]
        done = [run_piece(labs[entry.model].at_seed(p.seed, p.own_folder), entry) for p in todo]
        methods[entry.name] = method_result(labs[entry.model], entry, done)
        if _chooses_test_controls(study, entry):
            for each in labs.values():  # from here on, strength entries are generated on the test split at their chosen control only
                each.control_chooser = ChosenOnDev(study.compare, methods[entry.name].records, study_scales(study))
    if only:
        return None
    sections = {name: section for name, section in ((e.name, metric_section(lab, e.name)) for e in study.metrics) if section is not None}
    results = RunResults(study_record(study, lab, session.request), methods, sections)
    compare_all(results, study, session.layout, session.registry)
    results.save(session.layout.results)
    report.write_report(session.layout, results)
    return results
