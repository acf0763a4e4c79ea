"""Model stage: the registry, shapes, parameter counts and probability outputs."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest

from keras_digits.core import names
from keras_digits.models import classifiers, registry

# Parameter counts follow from the architectures; a change here is a change of model.
EXPECTED_PARAMS = {"linear": 7_850, "mlp": 269_322, "cnn": 82_586, "cnn_fast": 411_802,
                   "alexnet": 18_089_130}


def test_registry_lists_the_models_simplest_first():
    assert registry.list_models() == ["linear", "mlp", "cnn", "cnn_fast", "alexnet"]
    with pytest.raises(KeyError, match="unknown model 'resnet'"):
        registry.create_model("resnet")


@pytest.mark.parametrize("name", ["linear", "mlp", "cnn", "cnn_fast", "alexnet"])
def test_shapes_params_and_probabilities(name):
    model = registry.create_model(name)
    assert model.count_params() == EXPECTED_PARAMS[name]
    assert model.input_shape == (None, 28, 28, 1)
    pixels = np.random.default_rng(0).integers(0, 256, (3, 28, 28, 1)).astype("float32")
    probs = np.asarray(model(pixels, training=False))
    assert probs.shape == (3, 10) and probs.dtype == np.float32
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)


def test_rescaling_happens_inside_the_model():
    model = registry.create_model("linear")
    rescale = model.get_layer("rescale")
    out = np.asarray(rescale(np.full((1, 28, 28, 1), 255.0, dtype="float32")))
    assert np.allclose(out, 1.0)


@pytest.mark.parametrize("policy,compute", [("mixed_float16", "float16"),
                                            ("mixed_bfloat16", "bfloat16")])
def test_mixed_precision_still_outputs_float32(policy, compute):
    keras.mixed_precision.set_global_policy(policy)
    try:
        model = registry.create_model("alexnet")
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert model.get_layer("conv1_conv").compute_dtype == compute
    pixels = np.random.default_rng(0).integers(0, 256, (2, 28, 28, 1)).astype("float32")
    for training in (False, True):  # the training-only distortions run in float32
        probs = model(pixels, training=training)
        assert keras.backend.standardize_dtype(probs.dtype) == "float32"


def test_models_are_pure_keras():
    """No TensorFlow inside model code, so the same models run on the JAX backend."""
    source = Path(classifiers.__file__).read_text()
    assert "import tensorflow" not in source and "tf." not in source


def test_per_dataset_tuning_widens_the_fashion_cnn_and_alexnet_only():
    mnist_cnn = registry.create_model("cnn")
    fashion_cnn = registry.create_model("cnn", dataset="fashion_mnist")
    assert mnist_cnn.count_params() == 82_586 and fashion_cnn.count_params() == 316_202
    assert fashion_cnn.get_layer("block1_conv").filters == 32
    assert fashion_cnn.get_layer("block3_2_bn") and fashion_cnn.get_layer("block3_dropout")
    assert fashion_cnn.get_layer("mirror") is not None  # flips clothes while training
    with pytest.raises(ValueError):
        mnist_cnn.get_layer("mirror")  # digits are never mirrored
    fashion_alexnet = registry.create_model("alexnet", dataset="fashion_mnist")
    assert fashion_alexnet.get_layer("conv1_conv").filters == 48
    assert fashion_alexnet.get_layer("mirror") is not None
    alexnet_clothes = registry.get_entry("alexnet").recipe_for("fashion_mnist")
    assert alexnet_clothes.mixup == 0.2 and registry.get_entry("alexnet").recipe.mixup == 0
    entry = registry.get_entry("cnn")
    assert entry.recipe_for("mnist") == entry.recipe and entry.recipe.epochs == 12
    assert mnist_cnn.get_layer("handwriting") is not None  # digits learn other hands
    with pytest.raises(ValueError):
        fashion_cnn.get_layer("handwriting")  # clothes are not handwriting
    assert entry.recipe_for("fashion_mnist").epochs == 15
    # models without tuning are the same on both datasets
    assert registry.create_model("mlp", dataset="fashion_mnist").count_params() == 269_322


def test_handwriting_augmentation_trains_only():
    """The distortions change training batches, keep them in [0, 1] at full strength, and are
    an exact identity at inference, so the inference build (no augmentation layers) with the
    same weights gives the same probabilities."""
    import numpy as np

    rng = np.random.default_rng(0)
    pixels = np.zeros((8, 28, 28, 1), dtype=np.float32)
    pixels[:, 6:22, 12:16] = 255.0  # a narrow stroke, like a 1
    pixels += rng.uniform(0, 5, pixels.shape).astype(np.float32)
    trained = registry.create_model("cnn")
    assert {"pen", "handwriting"} <= {layer.name for layer in trained.layers}
    stem = keras.Model(trained.input, trained.get_layer("handwriting").output)
    distorted = np.asarray(stem(pixels, training=True))
    assert distorted.shape == pixels.shape and distorted.min() >= 0
    assert np.allclose(distorted.max(axis=(1, 2, 3)), 1.0, atol=1e-5)
    assert not np.allclose(distorted, pixels / 255.0, atol=0.05)
    assert np.allclose(np.asarray(stem(pixels, training=False)), pixels / 255.0, atol=1e-6)
    inference = registry.create_model("cnn", inference=True)
    assert not {"pen", "handwriting"} & {layer.name for layer in inference.layers}
    inference.set_weights(trained.get_weights())
    assert np.allclose(inference.predict(pixels, verbose=0), trained.predict(pixels, verbose=0),
                       atol=1e-6)


def test_square_share_stretches_narrow_digits_to_fill_a_square_box():
    """`square`: that share of the training digits is widened all the way to a square box, as
    scanners that fill each digit's box leave them; the rest keep their shape within `stretch`."""
    from keras_digits.models import distortions

    pixels = np.zeros((64, 28, 28, 1), dtype=np.float32)
    pixels[:, 4:24, 12:16] = 1.0  # a 20 x 4 stroke, like a 1

    def widths(square: float) -> np.ndarray:
        warp = distortions.RandomHandwriting(rotation=0, shear=0, scale=0, stretch=0.0,
                                         square=square, seed=0)
        return (np.asarray(warp(pixels, training=True))[..., 0] > 0.3).any(axis=1).sum(axis=1)

    assert (widths(0.0) <= 5).all()  # no stretch: the stroke stays 4 columns wide
    assert (widths(1.0) >= 18).all()  # every digit filled to the square: about 20 columns
    half = widths(0.5)
    assert 16 <= (half >= 18).sum() <= 48 and ((half <= 5) | (half >= 18)).all()
    assert registry.create_model("cnn").get_layer("handwriting").square == classifiers.SQUARE
    assert registry.create_model("cnn", square=0.0).get_layer("handwriting").square == 0.0


def test_the_published_model_loads_in_plain_keras(tiny_trained_dir):
    """model.keras is the inference build: Keras loads it without this package's classes, and
    without a warning (it is saved with no optimizer rather than one without its state)."""
    import subprocess
    import sys

    path = tiny_trained_dir / "mnist" / "cnn" / "model.keras"
    code = ("import keras, sys, warnings\n"
            "warnings.simplefilter('error')\n"
            f"model = keras.models.load_model({str(path)!r})\n"
            "assert not any(m.startswith('keras_digits') for m in sys.modules)\n"
            "assert model.output_shape == (None, 10)\n"
            "assert getattr(model, 'optimizer', None) is None\n")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_auto_precision_picks_bfloat16_only_where_asked_and_supported(monkeypatch):
    from keras_digits.training import runtime

    for has_bf16 in (True, False):
        monkeypatch.setattr(runtime, "cpu_has_bfloat16", lambda has=has_bf16: has)
        alexnet = registry.get_entry("alexnet")
        expected = "mixed_bfloat16" if has_bf16 else "float32"
        assert runtime.resolve_precision(
            "auto", False, alexnet.recipe_for("mnist").bfloat16_on_cpu) == expected
        assert runtime.resolve_precision(  # garments were not measured in bfloat16
            "auto", False, alexnet.recipe_for("fashion_mnist").bfloat16_on_cpu) == "float32"
        assert runtime.resolve_precision(
            "auto", False, registry.get_entry("cnn").recipe.bfloat16_on_cpu) == "float32"
        assert runtime.resolve_precision("auto", True, True) == "mixed_float16"  # a GPU
        assert runtime.resolve_precision("bfloat16", False) == "mixed_bfloat16"


def test_the_cnn_is_two_batchnormed_convolutions_per_block_and_its_tuning_widens_it():
    default = registry.create_model("cnn")
    assert default.get_layer("block1_2_bn") and not default.get_layer("block1_2_conv").use_bias
    assert [default.get_layer(f"block{b}_2_conv").filters for b in (1, 2, 3)] == [16, 32, 64]
    with pytest.raises(ValueError):
        default.get_layer("block1_dropout")
    wide = registry.create_model("cnn", width=32, block_dropout=0.25)  # Fashion-MNIST's
    assert wide.get_layer("block3_2_conv").filters == 128
    assert wide.get_layer("block3_dropout").rate == 0.25
    probs = wide.predict(np.zeros((2, 28, 28, 1), np.uint8), verbose=0)
    assert probs.shape == (2, 10) and np.allclose(probs.sum(axis=1), 1, atol=1e-5)


def test_options_no_recipe_uses_are_refused():
    """Measured and rejected options live in studies, not in the builders (docs/STUDIES.md)."""
    for name, option in (("cnn", "convs"), ("mlp", "dropout"), ("alexnet", "dense")):
        with pytest.raises(TypeError):
            registry.create_model(name, **{option: 1})


def test_a_study_registers_its_own_variant_after_the_shipped_models():
    """Studies define the variants the product does not ship: a builder registered from outside
    the package is built like any other, after the catalogue's models."""

    @registry.register_model(registry.Recipe(epochs=1, batch_size=8, learning_rate=1e-3),
                             "a study's variant")
    def study_variant(num_classes: int = 10) -> keras.Model:
        inputs = keras.Input((28, 28, 1), name="pixels")
        logits = keras.layers.Dense(num_classes, name="logits")(keras.layers.Flatten()(inputs))
        return keras.Model(inputs, keras.layers.Activation("softmax", name="probabilities")(
            logits))

    try:
        assert registry.list_models()[-1] == "study_variant"
        calibrated = registry.create_model("study_variant", temperature=2.0)
        assert calibrated.get_layer("temperature") and calibrated.count_params() == 7_850
    finally:
        registry._REGISTRY.pop("study_variant")
    assert tuple(registry.list_models()) == names.MODEL_NAMES
