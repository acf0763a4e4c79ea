"""Decode stage of predict: any image file, upload or array as grey in [0, 1], safely.

Refuses what would hang or exhaust memory (decompression bombs, animations), applies the EXIF
orientation phones store, flattens transparency and 16-bit greys, and shrinks to the size the
analysis runs at. numpy and Pillow only: the predict path must not import TensorFlow.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from keras_digits.core.cli import UserError

MAX_PIXELS = 40_000_000  # about 6300 x 6300: every phone camera, but no decompression bomb
WORK_SIZE = 512  # longest side the analysis runs at

Image.MAX_IMAGE_PIXELS = MAX_PIXELS  # Pillow itself refuses anything past twice this
# How messages name an image given as a file's bytes (an upload) rather than a path.
IMAGE_DATA = "the image data"


def open_image(path: Path | bytes) -> Image.Image:
    """A file, or the bytes of one (an upload), opened and checked before decoding."""
    if isinstance(path, bytes):
        content, path = path, IMAGE_DATA
        if not content:
            raise UserError(f"{path} is empty; send a PNG, JPEG, BMP, GIF or WebP image")
        path_or_file = io.BytesIO(content)
    elif path.is_dir():
        raise UserError(f"{path} is a directory; pass an image file")
    elif not path.exists():
        raise UserError(f"{path} does not exist; check the path")
    elif path.stat().st_size == 0:
        raise UserError(f"{path} is an empty file; pass a PNG, JPEG, BMP, GIF or WebP image")
    else:
        path_or_file = path
    try:
        image = Image.open(path_or_file)
    except UnidentifiedImageError:
        raise UserError(f"{path} is not an image Pillow can read; "
                        "pass a PNG, JPEG, BMP, GIF or WebP") from None
    except Image.DecompressionBombError:
        raise UserError(f"{path} is too large to decode safely (over {MAX_PIXELS:,} pixels); "
                        "scale it down first") from None
    except OSError as exc:
        raise UserError(f"{path} is truncated or damaged ({exc}); re-save or re-export it") \
            from None
    width, height = image.size
    if width * height > MAX_PIXELS:
        raise UserError(f"{path} is {width}x{height}, too large to decode safely; "
                        "scale it down first")
    if getattr(image, "n_frames", 1) > 1:
        raise UserError(f"{path} is an animation of {image.n_frames} frames; "
                        "save the frame with the digit as a still image")
    return image


def to_gray(image: Image.Image, path: Path | str) -> np.ndarray:
    """Decode to float32 luminance in [0, 1] at most WORK_SIZE on a side, flattening alpha."""
    try:
        if image.format == "JPEG":
            image.draft("L" if image.mode == "L" else "RGB", (WORK_SIZE, WORK_SIZE))
        image.load()
        # Phones store the camera's orientation in EXIF instead of turning the pixels: apply it,
        # as every image viewer does, or an upright photo is read sideways.
        image = ImageOps.exif_transpose(image)
    except (OSError, SyntaxError, ValueError) as exc:
        raise UserError(f"{path} is truncated or damaged ({exc}); "
                        "re-save or re-export it") from None
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        # 16-bit and float greyscale: scale by the type's range, not by the content.
        array = np.asarray(image, dtype=np.float32)
        top = 65535.0 if image.mode.startswith("I;16") or array.max() > 255 else 255.0
        image = Image.fromarray(np.clip(array / top * 255, 0, 255).astype(np.uint8), "L")
    if image.mode == "P" or image.mode == "PA":
        image = image.convert("RGBA")
    elif image.mode in ("1", "CMYK", "YCbCr", "LAB", "HSV", "RGBX"):
        image = image.convert("RGB" if image.mode != "1" else "L")
    elif image.mode == "LA":
        image = image.convert("RGBA")
    image.thumbnail((WORK_SIZE, WORK_SIZE), Image.Resampling.BOX)

    if image.mode == "RGBA":
        rgba = np.asarray(image, dtype=np.float32) / 255.0
        gray = rgba[..., :3] @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
        alpha = rgba[..., 3]
        if alpha.min() < 0.98:
            # Strokes on a transparent canvas: lay them on a background that contrasts with them.
            opaque = alpha > 0.5
            ink_is_dark = opaque.any() and gray[opaque].mean() < 0.5
            background = 1.0 if ink_is_dark else 0.0
            gray = gray * alpha + background * (1.0 - alpha)
        return gray
    return np.asarray(image.convert("L"), dtype=np.float32) / 255.0


def array_to_gray(array: np.ndarray) -> np.ndarray:
    """A numpy image (H, W), (H, W, 1), RGB or RGBA; uint8 0-255 or float 0-1) as grey in [0, 1]."""
    array = np.asarray(array)
    if array.ndim == 3 and array.shape[-1] in (1, 3, 4):
        mode = {1: "L", 3: "RGB", 4: "RGBA"}[array.shape[-1]]
        array = array[..., 0] if mode == "L" else array
    elif array.ndim == 2:
        mode = "L"
    else:
        raise UserError(f"an array shaped {array.shape} is not an image; pass (H, W) grey, "
                        "(H, W, 3) RGB or (H, W, 4) RGBA")
    if array.size == 0 or not np.issubdtype(array.dtype, np.number) or \
            not np.isfinite(array).all():
        raise UserError("the array is empty or holds non-numbers; pass pixel values")
    if np.issubdtype(array.dtype, np.floating) and array.max() <= 1.0:
        array = array * 255.0
    image = Image.fromarray(np.clip(array, 0, 255).astype(np.uint8), mode)
    return to_gray(image, Path("the array"))


def read_gray(source: str | Path | np.ndarray | bytes) -> np.ndarray:
    """An image file, a file's bytes or a numpy image as float32 grey in [0, 1], at most
    WORK_SIZE on a side."""
    if isinstance(source, np.ndarray):
        return array_to_gray(source)
    opened = source if isinstance(source, bytes) else Path(source)
    with open_image(opened) as image:
        return to_gray(image, IMAGE_DATA if isinstance(source, bytes) else opened)
