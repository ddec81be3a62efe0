"""``steerlab run | plugins | generate | serve | inspect | data | export | import | compare | new-plugin``.

Bad input (``ConfigError``) prints one line naming the file, key and expectation, exit code 2.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path
from typing import Any

from steerlab.errors import BrokenPluginWarning, ConfigError, RunIncomplete
from steerlab.run.executors import EXECUTORS


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a bad flag is one line and exit 2 like every other bad input (no usage dump;
    ``-h`` still prints the full help)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        print(f"steerlab: error: {self.prog}: {message}", file=sys.stderr)
        raise SystemExit(2)


def _add_plugin_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--plugin", action="append", default=[], metavar="FILE", help="load a local plugin file (repeatable)")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="steerlab", description="A plugin-based mechanistic steering lab.")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run a TOML study")
    run.add_argument("study", nargs="?", help="path to the study TOML (omit with --resume)")
    run.add_argument("--quick", action="store_true", help="smoke run: fewer prompts, tokens and controls")
    run.add_argument("--out", default="runs", help="parent folder of the run folder (default runs/)")
    run.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE", help="override a study key, e.g. methods.actdiff.layer=12")
    run.add_argument("--resume", metavar="RUN_DIR", help="finish an interrupted run exactly as it began, skipping finished stages")
    run.add_argument("--no-progress", action="store_true", help="hide progress bars")
    run.add_argument("--only", action="append", default=[], metavar="METHOD[@SEED]",
                     help="run just this method entry, or one training seed of it (repeatable), and stop before the results; "
                          "run others in parallel with --resume RUN_DIR --only OTHER, then --resume RUN_DIR to finish")
    run.add_argument("--executor", choices=EXECUTORS, default="local",
                     help="where the (method entry, seed) pieces run: local (this process, default) or ray (one Ray task each, "
                          "then this process finishes the run; docs/scaling.md)")
    run.add_argument("--ray-address", metavar="ADDR", help="with --executor ray: auto (the running cluster) or HOST:PORT "
                                                          "(default: start a local Ray instance)")
    _add_plugin_flag(run)

    plugins = sub.add_parser("plugins", help="list methods, metrics, inspectors, datasets and models with their plugin")
    plugins.add_argument("--verbose", action="store_true", help="also list each method's and metric's settings")
    _add_plugin_flag(plugins)

    gen = sub.add_parser("generate", help="answer prompts with a trained method from a run")
    gen.add_argument("run_dir")
    gen.add_argument("prompts", nargs="+")
    gen.add_argument("--method", help="method entry in the run (default: the first)")
    gen.add_argument("--control", action="append", default=[], metavar="CONTROL",
                     help="the method's control, e.g. 0.4 or helpful=0.3,humorous=0.7 (repeatable: answers side by side)")
    gen.add_argument("--max-new-tokens", type=int, default=None)
    gen.add_argument("--seed", type=int, default=None, help="training seed of a run with several (default: the study's first)")
    _add_plugin_flag(gen)

    _add_serve_parser(sub)

    insp = sub.add_parser("inspect", help="look inside a trained artifact with an inspector (steerlab plugins lists them)",
                          description="steerlab inspect NAME RUN_DIR [--method M] [options of the inspector, e.g. --top 20]")
    insp.add_argument("what", help="inspector name: vector, svd, ...")
    insp.add_argument("run_dir")
    insp.add_argument("--method", help="method entry in the run (default: the first the inspector applies to)")
    insp.add_argument("--seed", type=int, default=None, help="training seed of a run with several (default: the study's first)")
    _add_plugin_flag(insp)

    data = sub.add_parser("data", help="build a registered dataset with a real model")
    data_sub = data.add_subparsers(dest="action", required=True)
    build = data_sub.add_parser("build")
    build.add_argument("name")
    build.add_argument("--out", required=True, help="folder to write the files into")
    build.add_argument("--model", default="smollm2-135m-instruct")
    build.add_argument("--quick", action="store_true", help="a few examples only (for a smoke test)")
    build.add_argument("--device", default=None, help="auto (default), cpu, cuda")
    build.add_argument("--dtype", default=None, help="auto (default), float32, bfloat16")
    build.add_argument("--batch-size", type=int, default=16)
    build.add_argument("--from", dest="source", default=None, metavar="FOLDER", help="data to reshape (for builders that derive from other data)")
    _add_plugin_flag(build)
    _add_gguf_parsers(sub)
    comp = sub.add_parser("compare", help="recompute a finished run's comparisons (the [compare] concepts table, the [pareto] fronts) from its results")
    comp.add_argument("run_dir")
    _add_plugin_flag(comp)
    new = sub.add_parser("new-plugin", help="write an installable plugin package (method, config, contract test, README)")
    new.add_argument("name", help="the method's name: a lower-case Python identifier")
    new.add_argument("--dir", required=True, help="folder to create (must not exist)")
    return parser


def _add_serve_parser(sub: Any) -> None:
    """``steerlab serve RUN``: an OpenAI-compatible server and a playground page (docs/serving.md)."""
    serve = sub.add_parser("serve", help="serve a run's methods: an OpenAI-compatible API with per-request steering, and a playground page")
    serve.add_argument("run_dir")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--api-key", default=None, metavar="KEY", help="require 'Authorization: Bearer KEY' on /v1 requests")
    serve.add_argument("--max-batch", type=int, default=32, metavar="N", help="most requests decoded in one batch (default 32)")
    serve.add_argument("--max-wait-ms", type=float, default=20.0, metavar="T",
                       help="how long the first waiting request waits for others to share its batch (default 20)")
    serve.add_argument("--max-tokens-limit", type=int, default=1024, metavar="L", help="largest max_tokens a request may ask (default 1024)")
    serve.add_argument("--max-queue", type=int, default=256, metavar="Q", help="requests waiting beyond this are refused with 429 (default 256)")
    _add_plugin_flag(serve)


def _add_gguf_parsers(sub: Any) -> None:
    """``steerlab export gguf`` and ``steerlab import gguf`` (llama.cpp control vectors)."""
    exports = sub.add_parser("export", help="write a run's trained vector in another tool's format")
    out = exports.add_subparsers(dest="format", required=True).add_parser("gguf", help="a llama.cpp control vector (.gguf) from a run's residual-stream vector")
    out.add_argument("run_dir")
    out.add_argument("--out", required=True, metavar="FILE.gguf")
    out.add_argument("--method", help="method entry in the run (default: the first that declares a vector)")
    out.add_argument("--strength", metavar="S", help="control baked into the file: direction = S * per_unit * vector "
                     "(default: the last control of the entry's sweep)")
    out.add_argument("--index", default="0", metavar="I|all", help="which declared vector (default 0); all: every one, summed per layer")
    _add_plugin_flag(out)
    imports = sub.add_parser("import", help="turn another tool's file into a steerlab run")
    into = imports.add_subparsers(dest="format", required=True).add_parser("gguf", help="a run folder with a 'vector' method from a llama.cpp control vector (.gguf)")
    into.add_argument("file", metavar="FILE.gguf")
    into.add_argument("--model", required=True, help="zoo name, local path or hub id of the model the vector is for")
    into.add_argument("--out", default="runs", help="parent folder of the run folder (default runs/)")


def _session(args: argparse.Namespace, executor: Any) -> Any:
    """The run to execute: a new one (checked by the executor before its folder exists) or ``--resume``."""
    from steerlab.run import runner

    if args.resume:
        given = [flag for flag, on in (("a study file", args.study), ("--set", args.overrides), ("--quick", args.quick),
                                        ("--plugin", args.plugin)) if on]
        if given:
            raise ConfigError(f"--resume {args.resume}: continues a run exactly as it began; {given[0]} cannot be given with it "
                              "(start a new run instead)")
        session = runner.resume(Path(args.resume))
        executor.prepare(session.study, session.layout.root)
        return session
    if not args.study:
        raise ConfigError("steerlab run: give a study file (or --resume RUN_DIR)")
    request = runner.RunRequest(args.study, args.overrides, args.quick, args.plugin)
    return runner.start(request, Path(args.out), only=args.only, prepare=executor.prepare)


def cmd_run(args: argparse.Namespace) -> int:
    from steerlab.run import executors, report

    with executors.open_executor(args.executor, args.ray_address) as executor:
        session = _session(args, executor)
        study = session.study
        print(f"steerlab: running study '{study.meta.name}' on {study.meta.model} -> {session.layout.root}", file=sys.stderr)
        results = executor.run(session, show_progress=not args.no_progress, only=args.only)
    if results is None:
        print(f"steerlab: ran {', '.join(args.only)}; run the other methods with --resume {session.layout.root} --only NAME, "
              f"then finish with --resume {session.layout.root}", file=sys.stderr)
        return 0
    print(report.terminal_summary(results))
    print(f"\nresults: {session.layout.results}\nreport:  {session.layout.report}")
    return 0


def cmd_plugins(args: argparse.Namespace) -> int:
    from steerlab.plugin import build_registry
    from steerlab.config import field_help

    registry = build_registry([Path(p) for p in args.plugin])
    rows = registry.rows()
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    print("  ".join(h.ljust(w) for h, w in zip(("KIND", "NAME", "PLUGIN"), widths)) + "  DESCRIPTION")
    for row in rows:
        print("  ".join(v.ljust(w) for v, w in zip(row[:3], widths)) + "  " + row[3])
        if row[0] == "broken":
            continue  # an entry point that failed to import: nothing registered to describe
        item = getattr(registry, row[0] + "s")[row[1]]
        settings = getattr(item, "Options", None) if row[0] == "inspector" else getattr(item, "Config", None)
        if args.verbose and settings is not None:
            for name, tp, default, help_text in field_help(settings):
                print(f"{'':8}{name} ({tp}, default {default!r}): {help_text}")
    return 0


def cmd_generate(args: argparse.Namespace) -> int:
    from steerlab.run.tools import generate_from_run

    for block in generate_from_run(Path(args.run_dir), args.prompts, args.control, args.method, args.max_new_tokens, args.plugin,
                                   args.seed):
        print(block)
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from steerlab.serve.service import ServeOptions

    try:
        options = ServeOptions(args.host, args.port, args.api_key, args.max_batch, args.max_wait_ms, args.max_tokens_limit, args.max_queue)
    except ValueError as exc:
        raise ConfigError(f"steerlab serve: {exc}") from None
    from steerlab.serve.app import serve

    serve(Path(args.run_dir), options, args.plugin)
    return 0


def cmd_inspect(args: argparse.Namespace, rest: list[str]) -> int:
    from steerlab.plugin import build_registry
    from steerlab.run.tools import open_run
    from steerlab.config import options_parser, parse_options

    registry = build_registry([Path(p) for p in args.plugin])  # the inspector may come from a --plugin file
    inspector = registry.get("inspectors", args.what, "steerlab inspect")
    options = parse_options(inspector.Options, rest, f"steerlab inspect {args.what}", options_parser(inspector.Options))
    run = open_run(Path(args.run_dir), args.method, args.plugin, seed=args.seed, accept=inspector.applies_to,
                   wanted=f" that inspector '{args.what}' applies to")
    section = inspector.inspect(run, options)
    print(section.markdown)
    return 0


def cmd_data(args: argparse.Namespace) -> int:
    from steerlab.plugin import build_registry

    registry = build_registry([Path(p) for p in args.plugin])
    spec = registry.get("datasets", args.name, "steerlab data build")
    from steerlab.data.files import BuildRequest

    if args.batch_size < 1:
        raise ConfigError(f"--batch-size {args.batch_size}: expected a whole number >= 1")

    spec.build(BuildRequest(Path(args.out), args.model, args.quick, args.device, args.dtype, args.batch_size,
                            Path(args.source) if args.source else None))
    print(f"wrote dataset '{args.name}' to {args.out}")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from steerlab.run.runner import recompare

    block = recompare(Path(args.run_dir), args.plugin)
    from steerlab.analysis.concepts import concepts_section

    print("\n".join(concepts_section(block)) if block else "no [compare] concepts in this study: the Pareto comparison was redone")
    return 0


def cmd_new_plugin(args: argparse.Namespace) -> int:
    from steerlab.scaffold import scaffold

    written = scaffold(args.name, Path(args.dir))
    print(f"wrote plugin '{args.name}' to {args.dir} ({len(written)} files); next: pip install -e {args.dir} && steerlab plugins")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from steerlab.vectors import export_run

    if args.index != "all" and not args.index.isdigit():
        raise ConfigError(f"--index {args.index!r}: expected a whole number >= 0 or 'all'")
    index = None if args.index == "all" else int(args.index)
    out, entry, strength = export_run(Path(args.run_dir), Path(args.out), args.method, args.strength, index, args.plugin)
    print(f"wrote llama.cpp control vector {out} (method entry '{entry}', strength {strength:g} baked in)")
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    from steerlab.vectors import import_run

    run_dir = import_run(Path(args.file), args.model, Path(args.out))
    print(f"wrote run {run_dir} (method 'vector'); try: steerlab generate {run_dir} \"Hello\" --control 1")
    return 0


COMMANDS = {"run": cmd_run, "plugins": cmd_plugins, "generate": cmd_generate, "data": cmd_data,
            "export": cmd_export, "import": cmd_import, "new-plugin": cmd_new_plugin, "compare": cmd_compare,
            "serve": cmd_serve}


def glue_control_values(argv: list[str]) -> list[str]:
    """``--control -0.5,1.5,0`` -> ``--control=-0.5,1.5,0``: argparse would take a value that
    starts with '-' (and is not a plain number) for a flag and swallow it."""
    out, i = [], 0
    while i < len(argv):
        if argv[i] == "--control" and i + 1 < len(argv):
            out.append(f"--control={argv[i + 1]}")
            i += 2
        else:
            out.append(argv[i])
            i += 1
    return out


def one_line_warnings() -> Any:
    """``warnings.showwarning`` printing a broken plugin's warning as one ``steerlab: warning:``
    line (no file name and source line: the user did not write that code); others as usual."""
    shown = warnings.showwarning

    def show(message: Warning | str, category: type[Warning], filename: str, lineno: int, file: Any = None, line: str | None = None) -> None:
        if issubclass(category, BrokenPluginWarning):
            print(f"steerlab: warning: {message}", file=sys.stderr)
        else:
            shown(message, category, filename, lineno, file, line)

    return show


def main(argv: list[str] | None = None) -> int:
    argv = glue_control_values(list(sys.argv[1:] if argv is None else argv))
    try:
        args, rest = build_parser().parse_known_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    with warnings.catch_warnings():  # restores the caller's warning display on return
        warnings.simplefilter("default", BrokenPluginWarning)  # once per plugin, even where warnings are silenced
        warnings.showwarning = one_line_warnings()
        return run_command(args, rest)


def run_command(args: argparse.Namespace, rest: list[str]) -> int:
    """One parsed command; bad input is one line and exit 2."""
    try:
        if args.command == "inspect":
            return cmd_inspect(args, rest)
        if rest:
            raise ConfigError(f"steerlab {args.command}: unrecognised arguments: {' '.join(rest)}")
        return COMMANDS[args.command](args)
    except ConfigError as exc:
        print(f"steerlab: error: {exc}", file=sys.stderr)
        return 2
    except RunIncomplete as exc:
        print(f"steerlab: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("steerlab: interrupted; finished stages are kept (use --resume RUN_DIR)", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
