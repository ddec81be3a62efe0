"""``steerlab run | plugins | generate | inspect | data`` — the command line.

Bad input (``ConfigError``) prints one line naming the file, key and expectation, exit code 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from steerlab.errors import ConfigError


def _add_plugin_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--plugin", action="append", default=[], metavar="FILE", help="load a local plugin file (repeatable)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="steerlab", description="A plugin-based mechanistic steering lab.")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run a TOML study")
    run.add_argument("study", nargs="?", help="path to the study TOML (omit with --resume)")
    run.add_argument("--quick", action="store_true", help="smoke run: fewer prompts, tokens and controls")
    run.add_argument("--out", default="runs", help="parent folder of the run folder (default runs/)")
    run.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE", help="override a study key, e.g. methods.actdiff.layer=12")
    run.add_argument("--resume", metavar="RUN_DIR", help="finish an interrupted run, skipping finished stages")
    run.add_argument("--no-progress", action="store_true", help="hide progress bars")
    _add_plugin_flag(run)

    plugins = sub.add_parser("plugins", help="list methods, metrics, datasets and models with their plugin")
    plugins.add_argument("--verbose", action="store_true", help="also list each method's config keys")
    _add_plugin_flag(plugins)

    gen = sub.add_parser("generate", help="answer prompts with a trained method from a run")
    gen.add_argument("run_dir")
    gen.add_argument("prompts", nargs="+")
    gen.add_argument("--method", help="method entry in the run (default: the first)")
    gen.add_argument("--control", action="append", default=[], help="control value(s), JSON (e.g. 0.4 or [0.3,0.7]); repeatable")
    gen.add_argument("--pref", action="append", default=[], help="preference vector, e.g. 0.3,0.3,0.4 (repeatable: printed side by side)")
    gen.add_argument("--max-new-tokens", type=int, default=None)
    _add_plugin_flag(gen)

    insp = sub.add_parser("inspect", help="look inside a trained artifact: vector (any vector method), svd (panacea), ...")
    insp.add_argument("what", help="vector, or an inspector a method provides (e.g. svd)")
    insp.add_argument("run_dir")
    insp.add_argument("--method", help="method entry in the run (default: the first that offers WHAT)")
    insp.add_argument("--top", type=int, default=15, help="vector: tokens to list each way")
    insp.add_argument("--pref", help="svd: preference vector, e.g. 0.2,0.5,0.3 (default: the centre)")
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
    _add_plugin_flag(build)
    return parser


def cmd_run(args: argparse.Namespace) -> int:
    from steerlab import report, runner

    if not args.study and not args.resume:
        raise ConfigError("steerlab run: give a study file (or --resume RUN_DIR)")
    request = runner.RunRequest(args.study or "", args.overrides, args.quick, args.plugin)
    resume = Path(args.resume) if args.resume else None
    study, registry, run_dir = runner.prepare(request, Path(args.out), resume)
    print(f"steerlab: running study '{study.meta.name}' on {study.meta.model} -> {run_dir}", file=sys.stderr)
    results = runner.execute(study, registry, run_dir, show_progress=not args.no_progress)
    print(report.terminal_summary(results))
    print(f"\nresults: {run_dir / 'results.json'}\nreport:  {run_dir / 'report.md'}")
    return 0


def cmd_plugins(args: argparse.Namespace) -> int:
    from steerlab.config import field_help
    from steerlab.plugin import build_registry

    registry = build_registry([Path(p) for p in args.plugin])
    rows = registry.rows()
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    print("  ".join(h.ljust(w) for h, w in zip(("KIND", "NAME", "PLUGIN"), widths)) + "  DESCRIPTION")
    for row in rows:
        print("  ".join(v.ljust(w) for v, w in zip(row[:3], widths)) + "  " + row[3])
        if args.verbose and row[0] == "method":
            for name, tp, default, help_text in field_help(registry.methods[row[1]].Config):
                print(f"{'':8}{name} ({tp}, default {default!r}): {help_text}")
    return 0


def parse_control(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        raise ConfigError(f"--control {text!r}: expected JSON, e.g. 0.4 or [0.3, 0.7]") from None


def parse_pref(text: str) -> list[float]:
    try:
        return [float(x) for x in text.split(",")]
    except ValueError:
        raise ConfigError(f"--pref {text!r}: expected comma-separated numbers, e.g. 0.3,0.3,0.4") from None


def cmd_generate(args: argparse.Namespace) -> int:
    from steerlab.tools import generate_from_run

    controls = [parse_control(c) for c in args.control] + [parse_pref(p) for p in args.pref] or [None]
    for block in generate_from_run(Path(args.run_dir), args.prompts, controls, args.method, args.max_new_tokens, args.plugin):
        print(block)
    return 0


def cmd_inspect(args: argparse.Namespace) -> int:
    if args.what == "vector":
        from steerlab.inspect.vector import inspect_vector

        print(inspect_vector(Path(args.run_dir), args.method, args.top, args.plugin))
        return 0
    from steerlab.tools import open_run

    run = open_run(Path(args.run_dir), args.method, args.plugin, inspector=args.what)
    options = {"pref": parse_pref(args.pref) if args.pref else None, "top": args.top}
    print(run.method.inspectors()[args.what](run, options))
    return 0


def cmd_data(args: argparse.Namespace) -> int:
    from steerlab.plugin import build_registry

    registry = build_registry([Path(p) for p in args.plugin])
    spec = registry.get("datasets", args.name, "steerlab data build")
    from steerlab.data import BuildRequest

    spec.build(BuildRequest(Path(args.out), args.model, args.quick, args.device, args.dtype, args.batch_size))
    print(f"wrote dataset '{args.name}' to {args.out}")
    return 0


COMMANDS = {"run": cmd_run, "plugins": cmd_plugins, "generate": cmd_generate, "inspect": cmd_inspect, "data": cmd_data}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except ConfigError as exc:
        print(f"steerlab: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("steerlab: interrupted; finished stages are kept (use --resume RUN_DIR)", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
