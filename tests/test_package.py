"""The installable package: `keras-digits` dispatches to every stage, a wheel builds, and the
base install (onnxruntime, numpy, Pillow) predicts with TensorFlow absent."""

from __future__ import annotations

import email
import importlib
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import numpy as np
import pytest
import tomllib
from conftest import REPO, last_error_line, run_module
from PIL import Image

import keras_digits
from keras_digits.__main__ import COMMANDS

PACKAGE = REPO / "keras_digits"


def test_every_command_is_a_module_at_the_top_with_a_parser_and_a_main():
    """`python -m keras_digits.X` runs for every command `keras-digits --help` lists, and each
    names the stage module its options come from."""
    runnable = {path.stem for path in PACKAGE.glob("*.py")
                if path.stem != "__main__" and 'if __name__ == "__main__":' in path.read_text()}
    assert set(COMMANDS) == runnable
    for name in COMMANDS:
        module = importlib.import_module(f"keras_digits.{name}")
        assert callable(module.main) and callable(module.build_parser), name
        assert module.build_parser().prog == f"python -m keras_digits.{name}", name


def test_help_lists_the_commands_and_a_wrong_one_is_one_line():
    listing = run_module("keras_digits", "--help")
    assert listing.returncode == 0
    assert all(f"  {name} " in listing.stdout for name in COMMANDS)
    wrong = run_module("keras_digits", "tarin", "all")
    assert wrong.returncode == 2
    assert "unknown command 'tarin'" in last_error_line(wrong.stderr)


def test_a_bad_option_points_to_the_command_the_user_typed():
    result = run_module("keras_digits", "train", "cnn", "--epochs", "0")
    assert result.returncode == 2
    assert "(see `keras-digits train --help`)" in last_error_line(result.stderr)


def test_a_command_runs_its_stage(tmp_path, tiny_exported_dir):
    args = (str(tmp_path / "missing.png"), "--export-dir", str(tiny_exported_dir.parent))
    via_command = run_module("keras_digits", "predict", *args)
    via_module = run_module("keras_digits.predict", *args)
    assert via_command.returncode == via_module.returncode != 0
    assert last_error_line(via_command.stderr) == last_error_line(via_module.stderr)
    assert "missing.png does not exist" in last_error_line(via_command.stderr)


def test_the_version_has_one_home():
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert "version" not in pyproject["project"] and "version" in pyproject["project"]["dynamic"]
    source = pyproject["tool"]["setuptools"]["dynamic"]["version"]["attr"]
    assert source == "keras_digits.__version__"
    assert keras_digits.__version__.count(".") == 2


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """A wheel built from a copy of the sources (the build writes into the tree it builds)."""
    source, out = tmp_path_factory.mktemp("source"), tmp_path_factory.mktemp("dist")
    shutil.copy(REPO / "pyproject.toml", source)
    shutil.copy(REPO / "README.md", source)
    shutil.copytree(PACKAGE, source / "keras_digits",
                    ignore=shutil.ignore_patterns("__pycache__"))
    result = subprocess.run([sys.executable, "-m", "pip", "wheel", str(source), "--no-deps",
                             "--no-build-isolation", "--no-index", "-q", "-w", str(out)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    (built,) = out.glob("keras_digits-*.whl")
    return built


def _venv(root: Path, wheel: Path, dependencies: list[Path]) -> Path:
    """A fresh virtual environment with the wheel installed and `dependencies` (folders of
    packages) on its path instead of downloads: this machine has no internet for pip."""
    subprocess.run([sys.executable, "-m", "venv", str(root)], check=True, timeout=300)
    site = Path(sysconfig.get_path("purelib", vars={"base": str(root)}))
    (site / "dependencies.pth").write_text("".join(f"{d}\n" for d in dependencies))
    subprocess.run([root / "bin" / "python", "-m", "pip", "install", "-q", "--no-deps",
                    "--no-index", str(wheel)], check=True, timeout=300)
    return root / "bin"


def _run(bin_dir: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    return subprocess.run([str(bin_dir / args[0]), *args[1:]], capture_output=True, text=True,
                          timeout=600, cwd=cwd, env=env | {"KERAS_DIGITS_OFFLINE": "1"})


@pytest.mark.slow
def test_the_wheel_declares_a_light_base_and_the_training_extra(wheel):
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        info = next(n for n in names if n.endswith(".dist-info/METADATA"))
        metadata = email.message_from_bytes(archive.read(info))
        entry_points = archive.read(info.replace("METADATA", "entry_points.txt")).decode()
    assert metadata["Version"] == keras_digits.__version__
    requires = metadata.get_all("Requires-Dist")
    base = [r.split(">")[0] for r in requires if "extra ==" not in r]
    assert sorted(base) == ["numpy", "onnxruntime", "pillow"]
    assert any(r.startswith("tensorflow>") and 'extra == "train"' in r for r in requires)
    assert {"predict", "train", "dev"} <= set(metadata.get_all("Provides-Extra"))
    assert "keras-digits = keras_digits.__main__:main" in entry_points
    assert {"keras_digits/serving/web/index.html", "keras_digits/serving/web/segment.js"} <= names
    assert not any(name.startswith(("data/", "tests/", "saved_models/")) for name in names)


@pytest.mark.slow
def test_predict_install_reads_digits_without_tensorflow(wheel, tiny_exported_dir, mnist,
                                                         tmp_path):
    light = tmp_path / "deps"  # what `pip install keras_digits[predict]` brings, nothing more
    light.mkdir()
    site = Path(np.__file__).parent.parent
    for name in ("numpy", "numpy.libs", "onnxruntime", "PIL", "pillow.libs"):
        if (site / name).exists():
            (light / name).symlink_to(site / name)
    bin_dir = _venv(tmp_path / "venv", wheel, [light])
    image = tmp_path / "digit.png"
    Image.fromarray(255 - mnist.test_images[0, :, :, 0]).save(image)

    assert _run(bin_dir, "python", "-c", "import tensorflow", cwd=tmp_path).returncode != 0
    read = _run(bin_dir, "keras-digits", "predict", str(image), "--model", "cnn",
                "--export-dir", str(tiny_exported_dir.parent), cwd=tmp_path)
    assert read.returncode == 0, read.stderr[-2000:]
    assert "digit.png" in read.stdout
    refused = _run(bin_dir, "keras-digits", "train", "cnn", cwd=tmp_path)
    assert refused.returncode == 2
    assert "pip install 'keras_digits[train]'" in last_error_line(refused.stderr)


@pytest.mark.slow
def test_training_install_trains_from_a_checkout(wheel, tmp_path):
    # The training extra's packages are this environment's own; the package is the wheel's.
    bin_dir = _venv(tmp_path / "venv", wheel, [Path(np.__file__).parent.parent])
    work = tmp_path / "work"
    work.mkdir()
    (work / "data").symlink_to(REPO / "data")  # run from a checkout: ./data holds MNIST
    result = _run(bin_dir, "keras-digits", "train", "cnn", "--limit", "2000", "--epochs", "1",
                  "--quiet", cwd=work)
    assert result.returncode == 0, result.stderr[-3000:]
    assert (work / "saved_models" / "mnist" / "cnn" / "model.keras").is_file()
    where = _run(bin_dir, "python", "-c", "import keras_digits; print(keras_digits.__file__)",
                 cwd=work)
    assert str(tmp_path / "venv") in where.stdout  # the installed copy ran, not the checkout
