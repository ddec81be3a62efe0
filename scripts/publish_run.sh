#!/usr/bin/env bash
# Copy what a reader of a finished run needs into the docs (report, results, study, figures, layer
# tables, run.json with the command-line overrides), not its weights or stage checkpoints:  bash scripts/publish_run.sh RUN_DIR docs/results/NAME
# With --with-weights the trained methods' artifacts come too, for this machine only (git ignores them
# under docs/results/): another study's `reuse_from = "../docs/results/NAME"` then takes them instead of
# training the same thing again (steerlab/run/reuse.py).
set -euo pipefail
weights=0
if [ "${1:-}" = "--with-weights" ]; then weights=1; shift; fi
run="$1"; dest="$2"
[ -f "$run/results.json" ] || { echo "$run: no results.json (finish the run first)" >&2; exit 2; }
rm -rf "$dest"; mkdir -p "$dest"
(cd "$run" && find . -type f \( -name '*.png' -o -name report.md -o -name results.json -o -name study.toml -o -name run.json -o -name svd.md \) -print0) \
  | while IFS= read -r -d '' f; do mkdir -p "$dest/$(dirname "$f")"; cp "$run/$f" "$dest/$f"; done
if [ "$weights" = 1 ]; then
  (cd "$run" && find ./methods -type f \( -name artifact.safetensors -o -name artifact.json \) -print0) \
    | while IFS= read -r -d '' f; do mkdir -p "$dest/$(dirname "$f")"; cp "$run/$f" "$dest/$f"; done
fi
du -sh "$dest"
