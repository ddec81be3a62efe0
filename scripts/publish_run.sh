#!/usr/bin/env bash
# Copy what a reader of a finished run needs into the docs (report, results, study, figures, layer
# tables, run.json with the command-line overrides), not its weights or stage checkpoints:  bash scripts/publish_run.sh RUN_DIR docs/results/NAME
set -euo pipefail
run="$1"; dest="$2"
[ -f "$run/results.json" ] || { echo "$run: no results.json (finish the run first)" >&2; exit 2; }
rm -rf "$dest"; mkdir -p "$dest"
(cd "$run" && find . -type f \( -name '*.png' -o -name report.md -o -name results.json -o -name study.toml -o -name run.json -o -name svd.md \) -print0) \
  | while IFS= read -r -d '' f; do mkdir -p "$dest/$(dirname "$f")"; cp "$run/$f" "$dest/$f"; done
du -sh "$dest"
