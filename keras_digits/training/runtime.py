"""Runtime choices for training: which device, which precision, XLA or not, which tf.distribute
strategy, and the library and machine details recorded with every result.

TensorFlow and Keras are imported inside the functions, so that importing this module (and the
command lines that do) stays cheap and errors before training stay fast.
"""

from __future__ import annotations

import json
import os
import platform
from importlib.metadata import version
from typing import Any

from keras_digits.core.cli import UserError


def has_gpu() -> bool:
    """Whether the active Keras backend sees a GPU."""
    import keras

    if keras.backend.backend() == "jax":
        import jax

        return any(d.platform == "gpu" for d in jax.devices())
    import tensorflow as tf

    return bool(tf.config.list_physical_devices("GPU"))


def has_tensorflow() -> bool:
    """Whether TensorFlow is installed: the JAX backend trains without it (the lent GPU hosts
    have none), skipping what only TensorFlow writes (SavedModel, TensorBoard logs)."""
    from importlib.util import find_spec

    try:
        return find_spec("tensorflow") is not None
    except ImportError:
        return False


def cpu_has_bfloat16() -> bool:
    """Whether this CPU multiplies bfloat16 natively (AVX512-BF16 or AMX), as Linux reports."""
    try:
        with open("/proc/cpuinfo") as handle:
            flags = next((line for line in handle if line.startswith("flags")), "").split()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_precision(precision: str, gpu: bool, bfloat16_on_cpu: bool = False) -> str:
    """`auto` means mixed_float16 on a GPU (tensor cores) and float32 on CPU (no fp16 speed-up),
    or mixed bfloat16 for a model whose recipe asks for it on a CPU that multiplies bfloat16
    natively (about twice as fast as float32 for AlexNet's dense layers: studies/README.md).
    `bfloat16` asks for mixed bfloat16 anywhere."""
    if precision == "auto":
        if gpu:
            return "mixed_float16"
        return "mixed_bfloat16" if bfloat16_on_cpu and cpu_has_bfloat16() else "float32"
    return {"mixed": "mixed_float16", "bfloat16": "mixed_bfloat16",
            "float32": "float32"}[precision]


def resolve_jit(jit: str, gpu: bool, backend: str = "tensorflow") -> bool:
    """XLA pays on a GPU; on CPU it made the TensorFlow CNN 3x slower here (see studies/README.md).
    The JAX backend always compiles: without jit it runs op by op, many times slower."""
    if jit == "auto":
        return gpu or backend == "jax"
    return jit == "on"


STRATEGIES = ("auto", "one", "mirrored", "multiworker")


def split_cpu(devices: int) -> None:
    """Show the CPU as several logical devices, so distributed training runs without GPUs."""
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(devices)])


def cluster_workers() -> int:
    """How many workers TF_CONFIG lists (0 when it is not set)."""
    raw = os.environ.get("TF_CONFIG", "")
    if not raw.strip():
        return 0
    try:
        return len(json.loads(raw)["cluster"]["worker"])
    except (ValueError, KeyError, TypeError) as exc:
        raise UserError(f"TF_CONFIG is not a valid cluster description ({exc}); set it to "
                        '{"cluster": {"worker": ["host:port", ...]}, '
                        '"task": {"type": "worker", "index": N}} or unset it') from None


def make_strategy(name: str):
    """The tf.distribute strategy for `--strategy`; global batch = per-replica batch x replicas.

    auto: several GPUs -> mirrored, else one device. mirrored: every local GPU, or every logical
    CPU device when there is no GPU (see --cpu-devices). multiworker is refused: Keras 3.15's
    `model.fit` cannot train under MultiWorkerMirroredStrategy (keras-team/keras#20585; measured
    here: its first step fails reducing the scalar metrics across workers).
    """
    refuse_multiworker(name)
    import tensorflow as tf

    if name == "auto":
        name = "mirrored" if len(tf.config.list_physical_devices("GPU")) > 1 else "one"
    if name == "one":
        return tf.distribute.get_strategy()
    devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
    return tf.distribute.MirroredStrategy([d.name for d in devices])


def refuse_multiworker(name: str) -> None:
    """Stop before TensorFlow starts when the run would need MultiWorkerMirroredStrategy."""
    if name == "multiworker" or (name == "auto" and cluster_workers() > 1):
        raise UserError(f"multi-worker training is not available on TensorFlow: Keras "
                        f"{version('keras')} model.fit fails under MultiWorkerMirroredStrategy "
                        "(keras-team/keras#20585); train across machines on the JAX backend "
                        "instead: KERAS_BACKEND=jax ... train MODEL --distribute data-parallel "
                        "--coordinator HOST:PORT --num-processes N --process-id I (README, "
                        "'Training on several machines'), and unset TF_CONFIG")


def strategy_name(strategy) -> str:
    return type(strategy).__name__.removeprefix("_")


def library_versions() -> dict[str, str]:
    import keras
    import numpy as np

    versions = {"python": platform.python_version(), "keras": keras.__version__,
                "numpy": np.__version__, "backend": keras.backend.backend()}
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        versions["tensorflow"] = tf.__version__
    return versions


def machine_description(gpu: bool | None = None) -> dict[str, Any]:
    """The machine a result was measured on, in the one schema train and bench both record."""
    gpu = has_gpu() if gpu is None else gpu
    return {"platform": platform.platform(), "processor": platform.machine(),
            "cpu_count": os.cpu_count(), "gpu": gpu,
            "description": f"{platform.machine()}, {os.cpu_count()} CPU cores"
                           + (", GPU" if gpu else ", no GPU")}
