#!/usr/bin/env bash
# Prepared GPU study (about 8 minutes) for a machine with JAX and a GPU but no TensorFlow: how far
# apart do seeds of one recipe land, and what does averaging them buy? Trains the published
# alexnet recipe with seeds 0-4, then the cnn's with seeds 0-2, on the JAX backend (mixed
# float16), each scored on MNIST test and Semeion by studies/handwriting_study.py, and after
# every seed past the first the mean of the calibrated probabilities so far (`--ensemble`).
# (Before commit f44688f numpy feeds drew the predict-view swap once, not each epoch.)
#
# Keras is not installed on the lent GPU machines; carry it as wheels (see scripts/gpu_bench.sh).
# Each entry is VARIANT:SEEDS:SECONDS, where VARIANT is a model with study options joined by `+`
# (`alexnet+mixup=0.4` is the study's `alexnet:mixup=0.4`); its seeds stop at the time limit,
# keeping the rows written so far. DATASET=fashion_mnist trains on clothes (then carry the
# dataset too and name its folder in KERAS_DIGITS_DATA_DIR):
#   STUDY="alexnet:5:300 cnn:3:140" bash scripts/gpu_ensemble.sh
#   DATASET=fashion_mnist STUDY="alexnet:2:120 alexnet+mixup=0.4:2:120" bash scripts/gpu_ensemble.sh
set -uo pipefail
cd "$(dirname "$0")/.."
if compgen -G ".whl/*.whl" >/dev/null; then
  python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site:${PYTHONPATH:-}
fi
export KERAS_BACKEND=jax PYTHONUNBUFFERED=1
export KERAS_DIGITS_CACHE=${KERAS_DIGITS_CACHE:-/tmp/keras-digits-cache}
out=${OUT:-reports/gpu_ensemble}
mkdir -p "$out"
python3 -c "import jax, keras; print('keras', keras.__version__, 'jax', jax.__version__,
  jax.devices())" 2>&1 | tee "$out/versions.txt"
[ "${PIPESTATUS[0]}" -eq 0 ] || exit 1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv >>"$out/versions.txt" || true
set -f  # entries may hold [ ] (tuples): no globbing
variant_pattern='^[a-z_]+(\+[a-z_]+=[][0-9a-z_.,-]+)*$'
for entry in ${STUDY:-alexnet:5:300 cnn:3:140}; do
  IFS=: read -r name seeds seconds <<<"$entry"
  if ! [[ $name =~ $variant_pattern && $seeds =~ ^[1-9][0-9]*$ && $seconds =~ ^[1-9][0-9]*$ ]]
  then
    echo "STUDY entry '$entry' is not VARIANT:SEEDS:SECONDS (e.g. alexnet+mixup=0.4:5:300)" >&2
    exit 2
  fi
  variant=${name//+/:}
  file=${name//[^a-z0-9_.-]/_}  # plain file names, which every copy tool takes
  variants=("$variant")
  for ((seed = 1; seed < seeds; seed++)); do variants+=("$variant:seed=$seed"); done
  timeout "$seconds" python3 -m studies.handwriting_study "${variants[@]}" --ensemble \
    --dataset "${DATASET:-mnist}" --out "$out/$file.jsonl" >"$out/$file.log" 2>&1 ||
    echo "$name: stopped with exit $? (rows so far kept)"
  grep -h '^{' "$out/$file.log" | cut -c1-220 || true
done
