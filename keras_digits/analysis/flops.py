"""How much arithmetic a model does per image, and how much this machine can do per second.

`bench` divides the first times images/s by the second: the share of the machine's own float32
matmul rate that training or inference actually uses. Counted: the multiply-adds of Conv2D and
Dense layers (2 FLOPs each), which are nearly all of these models' arithmetic; pooling,
activations, BatchNorm and the optimizer's update are memory-bound and not counted. A training
step costs about three forward passes (the backward pass computes two products per layer).
"""

from __future__ import annotations

import math
import time

TRAINING_PASSES = 3  # forward + gradient w.r.t. inputs + gradient w.r.t. weights


def forward_flops(model) -> int:
    """FLOPs of one image's forward pass through the Conv2D and Dense layers of `model`."""
    from keras import layers

    total = 0
    for layer in model.layers:
        if isinstance(layer, layers.Conv2D):
            kernel_h, kernel_w, channels_in, channels_out = layer.kernel.shape
            positions = math.prod(layer.output.shape[1:3])
            total += 2 * positions * kernel_h * kernel_w * channels_in * channels_out
        elif isinstance(layer, layers.Dense):
            total += 2 * math.prod(layer.kernel.shape)
    return int(total)


def matmul_peak(size: int = 2048, repeats: int = 8) -> dict:
    """The best float32 FLOP/s of a `size`-square matmul through the active Keras backend: the
    machine's practical peak for the kernels these models run on."""
    import keras
    import numpy as np

    rng = np.random.default_rng(0)
    a = keras.ops.convert_to_tensor(rng.standard_normal((size, size), dtype=np.float32))
    b = keras.ops.convert_to_tensor(rng.standard_normal((size, size), dtype=np.float32))
    keras.ops.convert_to_numpy(keras.ops.matmul(a, b))  # warm-up: threads, caches
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        keras.ops.convert_to_numpy(keras.ops.matmul(a, b))
        best = min(best, time.perf_counter() - start)
    return {"size": size, "gflops_per_s": round(2 * size**3 / best / 1e9, 1)}


def share_of_peak(flops_per_image: float, images_per_s: float, peak: dict) -> float:
    """Achieved FLOP/s as a fraction of the measured peak."""
    return round(flops_per_image * images_per_s / (peak["gflops_per_s"] * 1e9), 4)
