#!/usr/bin/env bash
# One-step set-up: a virtual environment with the pinned packages, onnxruntime-web for the
# draw-a-digit page and the handwriting fonts training writes digits in, and (as root on Debian)
# Fashion-MNIST, more handwriting fonts and Chromium for the browser tests.
# Usage: bash setup.sh [requirements file]   (default requirements.txt, the CPU install; the JAX
# backend from requirements-jax.txt is installed beside it)
set -euo pipefail
cd "$(dirname "$0")"
requirements=${1:-requirements.txt}
python3 -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -r "$requirements"
# The JAX backend (data-parallel training across processes; the tests run two on this machine).
.venv/bin/python -m pip install --quiet -r requirements-jax.txt
# The project itself, editable: the `keras-digits` command, and `import keras_digits` from anywhere.
.venv/bin/python -m pip install --quiet --no-deps -e .

if command -v npm >/dev/null; then
  npm ci --no-audit --no-fund --loglevel=error
else
  echo "note: install Node.js and npm, then run 'npm ci' for the draw-a-digit page" >&2
fi

missing=()
[ -d /usr/share/datasets/fashion-mnist ] || missing+=(dataset-fashion-mnist)
command -v chromium >/dev/null || missing+=(chromium)
# The Debian handwriting fonts that keras_digits/data/handwriting_fonts.json lists.
for package in $(.venv/bin/python -c "import json; print(*json.load(open(
    'keras_digits/data/handwriting_fonts.json'))['debian'])"); do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "ok installed" ||
    missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ] && command -v apt-get >/dev/null; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq || true
    for package in "${missing[@]}"; do  # one at a time: a failure spares the others
      apt-get install -y -qq --no-install-recommends "$package" >/dev/null ||
        echo "warning: could not install $package" >&2
    done
  else
    echo "note: run 'sudo apt-get install ${missing[*]}' (Fashion-MNIST, fonts, browser tests)" >&2
  fi
fi
echo "set-up done: .venv is ready"
