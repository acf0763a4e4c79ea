"""Trained `.keras` files loaded back: safely, and rebuilt as the registry's inference model.

Export, bench, calibrate and the report load what `train` saved through here, so a model is
always rebuilt the way `models.registry` defines it today, with the temperature it was fitted.
"""

from __future__ import annotations

from pathlib import Path

from keras_digits.core.artifacts import read_calibration
from keras_digits.core.cli import UserError


def load_keras(path: Path, name: str | None = None):
    """A trained `.keras` file, loaded in safe mode (no code from the file runs)."""
    import keras

    from keras_digits.models import registry  # noqa: F401  (registers the custom layers)

    if not path.is_file():
        raise UserError(f"no trained model at {path}; run `python -m keras_digits.train "
                        f"{name or 'all'}` first (or pass --models-dir)")
    try:
        return keras.saving.load_model(path, safe_mode=True, compile=False)
    except Exception as exc:  # Keras raises many types for a bad archive
        raise UserError(f"{path} is not a readable Keras model ({type(exc).__name__}); "
                        "retrain it or restore the file") from exc


def load_trained(path: Path, name: str, dataset: str = "mnist", calibrated: bool = True):
    """A trained model rebuilt as the float32 inference model of the registry, for export and
    benchmarks: the same weights in the model as the registry defines it today, with the fitted
    temperature (calibration.json beside it) unless `calibrated` is False."""
    import keras

    from keras_digits.models import registry

    trained = load_keras(path, name)
    keras.mixed_precision.set_global_policy("float32")
    fitted = read_calibration(path.parent) if calibrated else None
    fresh = registry.create_model(name, dataset=dataset, inference=True,
                                temperature=fitted["temperature"] if fitted else None)
    try:
        fresh.set_weights(trained.get_weights())
    except ValueError as exc:
        raise UserError(f"{path} does not hold a {name} model (its weights do not fit); "
                        f"retrain with `python -m keras_digits.train {name}`") from exc
    return fresh
