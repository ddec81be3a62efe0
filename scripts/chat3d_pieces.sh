#!/usr/bin/env bash
# Run studies/chat3d.toml piece by piece (one (entry, seed) per process), so a session cut off
# loses at most the piece in flight. Usage:
#   bash scripts/chat3d_pieces.sh                 # a new run under runs/ (publish the finished one: cp -r it to docs/results/chat3d)
#   bash scripts/chat3d_pieces.sh RUN_DIR         # continue that run (finished pieces are skipped)
# Finish with: steerlab run --resume RUN_DIR
set -euo pipefail
cd "$(dirname "$0")/.."
pieces=(panacea@0 soups@0 base prompting panacea@1 soups@1 panacea@2 soups@2)
run="${1:-}"
for piece in "${pieces[@]}"; do
  echo "$(date -u +%FT%TZ) start $piece"
  if [ -z "$run" ]; then
    steerlab run studies/chat3d.toml --out runs --only "$piece" --no-progress
    run="$(ls -td runs/chat3d-* | head -1)"
  else
    steerlab run --resume "$run" --only "$piece" --no-progress
  fi
  echo "$(date -u +%FT%TZ) done $piece -> $run"
done
