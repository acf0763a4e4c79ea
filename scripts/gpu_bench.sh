#!/usr/bin/env bash
# Prepared GPU benchmark (≤ 10 minutes) for a machine with JAX and a GPU but no TensorFlow.
# Keras 3 runs on the JAX backend; the models are pure Keras, data is fed as numpy arrays, and
# `--precision auto` resolves to mixed_float16 with XLA on the GPU. Then the `train` command
# itself trains the CNN and AlexNet in mixed float16 (data-parallel when there are several GPUs).
#
# Keras is not installed on the lent GPU machines; carry it as wheels (from the repo root):
#   echo /.whl/ >> .git/info/exclude
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
#     --implementation cp --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
#     -d .whl keras==3.15.1 namex==0.1.0 optree==0.20.0
# and run this script with `.whl` carried. Results land in $OUT (or bench_results/).
# BENCH_SECONDS and TRAIN_SECONDS (each model) cap the two parts (defaults 300 and 120).
set -euo pipefail
cd "$(dirname "$0")/.."
if compgen -G ".whl/*.whl" >/dev/null; then
  python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site:${PYTHONPATH:-}
fi
export KERAS_BACKEND=jax PYTHONUNBUFFERED=1
out=${OUT:-bench_results}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/gpu.txt" || true
# Time-to-accuracy (keras.io convnet vs our CNN) and training throughput of every model.
timeout "${BENCH_SECONDS:-300}" python3 -m keras_digits.bench time-to-accuracy train --max-epochs 6 \
  --train-images 16384 --out "$out" --name bench-jax-gpu || echo "bench stopped: exit $?"
# The real `train` command on the JAX backend in mixed float16, 2 epochs of 16,384 images: images/s
# and test accuracy (this host has no TensorFlow: numpy feeding, no SavedModel or TensorBoard).
# With several GPUs (and TensorFlow for tf.data) it runs data-parallel over all of them.
extra=()
if [ "$(python3 -c 'import jax; print(jax.local_device_count())')" -gt 1 ] &&
   python3 -c 'import tensorflow' 2>/dev/null; then
  extra=(--distribute data-parallel)
fi
for model in cnn alexnet; do
  timeout "${TRAIN_SECONDS:-120}" python3 -m keras_digits.train "$model" --limit 16384 --epochs 2 --precision mixed \
    --quiet --no-report --out-dir "$out/jax_train" "${extra[@]}" | tail -1 || continue
  python3 -c "import json, sys; m = json.load(open(sys.argv[1])); print(json.dumps({k: m[k] for k in
    ('model', 'precision', 'replicas', 'batch_size', 'images_per_second', 'test_accuracy')}))" \
    "$out/jax_train/mnist/$model/metrics.json" | tee -a "$out/jax_train.jsonl"
done
