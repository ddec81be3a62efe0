#!/usr/bin/env bash
# Run a long job against a frozen copy of the current commit, so editing the working tree while it
# runs cannot change the code it imports (the install is editable). Used for studies, data builds
# and benchmarks during development:  bash scripts/snapshot.sh NAME -- steerlab run studies/x.toml
set -euo pipefail
name="$1"; shift; [ "$1" = "--" ] && shift
here="$(cd "$(dirname "$0")/.." && pwd)"
snap="/tmp/steerlab-snap/$name"
rm -rf "$snap"; mkdir -p "$snap/path"
git -C "$here" worktree remove --force "$snap/tree" 2>/dev/null || true
git -C "$here" worktree add --detach "$snap/tree" HEAD >/dev/null
ln -s "$snap/tree/steerlab" "$snap/path/steerlab"
ln -s "$snap/tree/plugins" "$snap/path/steerlab_plugins"
cd "$snap/tree"
exec env PYTHONPATH="$snap/path" "$@"
