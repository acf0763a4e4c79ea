"""Training-time distortions of handwriting, as Keras layers that are identities at inference.

MNIST's writers are a few hundred Census employees and students, and every digit went through one
scanner and one normalisation. Other people's digits differ in ways these layers imitate: slant
and tilt, narrow or wide shapes (some scanners stretch each digit to fill its box), pen width and
ink that was thresholded to pure black and white. Inside the model they run in the training step
(no extra data pipeline), vanish from `model(x, training=False)`, and so from every export.

Pure `keras.ops`: the same layers run on the JAX backend. Inputs are (N, 28, 28, 1) in [0, 1].
"""

from __future__ import annotations

import math

import keras
from keras import ops


class _TrainingDistortion(keras.layers.Layer):
    """Shared by the distortions: its own seed generator, an identity outside training, the
    input's shape out, and a config of the constructor's fields. They always compute in
    float32 (no weights, little work), so a mixed-precision policy never meets a float32 random
    number with a float16 image; the next layer casts to its own precision."""

    fields: tuple[str, ...] = ()

    def __init__(self, seed: int | None = None, **kwargs) -> None:
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, images, training=None):
        return self.distort(images) if training else images

    def distort(self, images):
        raise NotImplementedError

    def uniform(self, images, low, high):
        """One random number per image in the batch."""
        return keras.random.uniform((ops.shape(images)[0],), low, high, seed=self.seed_generator)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self) -> dict:
        return {**super().get_config(), "seed": self.seed,
                **{name: getattr(self, name) for name in self.fields}}


@keras.saving.register_keras_serializable(package="keras_digits")
class RandomHandwriting(_TrainingDistortion):
    """One random affine warp per image: rotation, shear, scale, a change of aspect ratio and a
    shift of up to `shift` pixels.

    The aspect change moves a digit part of the way towards filling a square box (a narrow 1
    gets wider, a wide 2 taller) by a random share up to `stretch`, measured on the digit's own
    ink extent, so the longer side keeps MNIST's 20 pixels; a share `square` of the images is
    stretched all the way, as scanners that fill a square box with each digit leave them. One
    resampling for all of it; then, with `normalize`, the strongest ink is scaled back to 1 as
    preprocessing does for digits.
    """

    fields = ("rotation", "shear", "scale", "stretch", "shift", "normalize", "square")

    def __init__(self, rotation: float = 12.0, shear: float = 0.2, scale: float = 0.1,
                 stretch: float = 0.6, shift: float = 0.0, normalize: bool = True,
                 square: float = 0.0, seed: int | None = None, **kwargs) -> None:
        super().__init__(seed, **kwargs)
        self.rotation, self.shear, self.scale, self.stretch = rotation, shear, scale, stretch
        self.shift, self.normalize, self.square = shift, normalize, square

    def distort(self, images):
        def uniform(low: float, high: float):
            return self.uniform(images, low, high)

        # Ink extent in rows and columns, then how far each side is from the longer one.
        rows = ops.sum(ops.cast(ops.max(images, axis=(2, 3)) > 0.3, "float32"), axis=1)
        cols = ops.sum(ops.cast(ops.max(images, axis=(1, 3)) > 0.3, "float32"), axis=1)
        longer = ops.maximum(ops.maximum(rows, cols), 1.0)
        share = uniform(0.0, self.stretch)
        if self.square > 0:  # this share of the images fills the square box entirely
            share = ops.where(uniform(0.0, 1.0) < self.square, 1.0, share)
        zoom = uniform(1.0 - self.scale, 1.0 + self.scale)
        scale_x = zoom * (1.0 + share * (longer / ops.maximum(cols, 1.0) - 1.0))
        scale_y = zoom * (1.0 + share * (longer / ops.maximum(rows, 1.0) - 1.0))
        angle = uniform(-self.rotation, self.rotation) * (math.pi / 180.0)
        shear = uniform(-self.shear, self.shear)
        cos, sin = ops.cos(angle), ops.sin(angle)
        # Forward map (about the centre): rotate . shear . scale. The sampler needs its inverse.
        m00, m01 = cos * scale_x, (cos * shear - sin) * scale_y
        m10, m11 = sin * scale_x, (sin * shear + cos) * scale_y
        det = m00 * m11 - m01 * m10
        i00, i01, i10, i11 = m11 / det, -m01 / det, -m10 / det, m00 / det
        height, width = ops.shape(images)[1], ops.shape(images)[2]
        cx, cy = (ops.cast(width, "float32") - 1) / 2, (ops.cast(height, "float32") - 1) / 2
        tx, ty = uniform(-self.shift, self.shift), uniform(-self.shift, self.shift)
        transform = ops.stack([i00, i01, cx - i00 * (cx + tx) - i01 * (cy + ty),
                               i10, i11, cy - i10 * (cx + tx) - i11 * (cy + ty),
                               ops.zeros_like(i00), ops.zeros_like(i00)], axis=1)
        warped = ops.image.affine_transform(images, transform, interpolation="bilinear",
                                            fill_mode="constant", fill_value=0)
        if not self.normalize:
            return warped
        # Preprocessing scales every digit to full-strength ink (a thinner pen or resampling
        # leaves it fainter): so does this.
        return warped / ops.maximum(ops.max(warped, axis=(1, 2, 3), keepdims=True), 1e-3)


@keras.saving.register_keras_serializable(package="keras_digits")
class RandomPen(_TrainingDistortion):
    """Pen and scanner: a random stroke width (towards a 3x3 dilation or erosion), and for a
    share of the images hard black-and-white ink, as a thresholding scanner leaves it."""

    fields = ("width", "binarize")

    def __init__(self, width: float = 0.7, binarize: float = 0.3, seed: int | None = None,
                 **kwargs) -> None:
        super().__init__(seed, **kwargs)
        self.width, self.binarize = width, binarize

    def distort(self, images):
        thicker = ops.max_pool(images, 3, strides=1, padding="same")
        thinner = -ops.max_pool(-images, 3, strides=1, padding="same")
        amount = ops.reshape(self.uniform(images, -self.width, self.width), (-1, 1, 1, 1))
        images = (images + ops.relu(amount) * (thicker - images)
                  + ops.relu(-amount) * (thinner - images))
        hard = ops.cast(images > 0.4, images.dtype)
        chosen = ops.reshape(ops.cast(self.uniform(images, 0.0, 1.0) < self.binarize,
                                      images.dtype), (-1, 1, 1, 1))
        return chosen * hard + (1.0 - chosen) * images


def handwriting(x, strength: float = 1.0, square: float = 0.0):
    """The augmentation stem for digit models; `strength` scales every distortion (0: none),
    `square` is the share of digits stretched to fill a square box."""
    if strength <= 0:
        return x
    x = RandomPen(width=0.7 * strength, binarize=0.3 * strength, name="pen")(x)
    return RandomHandwriting(rotation=12.0 * strength, shear=0.2 * strength,
                             scale=0.1 * strength, stretch=0.6 * strength,
                             square=square, name="handwriting")(x)
