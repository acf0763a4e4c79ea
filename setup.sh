#!/usr/bin/env bash
# One-step set-up: a virtual environment with the pinned packages, plus Fashion-MNIST from Debian.
# Usage: bash setup.sh [requirements file]   (default requirements.txt, the CPU install)
set -euo pipefail
cd "$(dirname "$0")"
requirements=${1:-requirements.txt}
python3 -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -r "$requirements"
if [ ! -d /usr/share/datasets/fashion-mnist ] && command -v apt-get >/dev/null; then
  if [ "$(id -u)" = 0 ]; then
    (apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist >/dev/null) ||
      echo "warning: could not install dataset-fashion-mnist; Fashion-MNIST needs --data-dir" >&2
  else
    echo "note: run 'sudo apt-get install dataset-fashion-mnist' for Fashion-MNIST" >&2
  fi
fi
echo "set-up done: .venv is ready"
