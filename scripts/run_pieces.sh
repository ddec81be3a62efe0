#!/usr/bin/env bash
# Run named (entry, seed) pieces of a run folder one per process, committing each finished piece's
# JSON files (progress/ is tracked; tensors are ignored), so a session cut off loses at most the
# piece in flight. A file named STOP in the run folder pauses the loop between pieces (to free the
# CPU for other work); remove it and rerun to go on. Finished pieces are skipped by `--resume`.
#   bash scripts/run_pieces.sh progress/chat3d-20261203-063012 soups@0 panacea@1 soups@1
set -euo pipefail
cd "$(dirname "$0")/.."
run="$1"; shift
for piece in "$@"; do
  if [ -e "$run/STOP" ]; then echo "$(date -u +%FT%TZ) STOP file found; pausing before $piece"; exit 0; fi
  echo "$(date -u +%FT%TZ) start $piece"
  steerlab run --resume "$run" --only "$piece" --no-progress
  echo "$(date -u +%FT%TZ) done $piece"
  for attempt in 1 2 3 4 5; do
    if git add -- progress && git commit -q -m "$(basename "$run"): piece $piece finished (JSON only; tensors not kept)" -- progress; then break; fi
    sleep 5
  done
done
