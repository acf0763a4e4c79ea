"""Shared fixtures: real MNIST slices, tiny generated IDX folders, and a helper to run commands."""

from __future__ import annotations

import fcntl
import gzip
import inspect
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parent.parent
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def write_idx(path: Path, array: np.ndarray, magic: int, compress: bool = True) -> Path:
    """Write `array` (uint8) as an IDX file with the given magic number."""
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in array.shape)
    payload = header + array.astype(np.uint8).tobytes()
    if compress:
        path = path.with_name(path.name + ".gz")
        path.write_bytes(gzip.compress(payload))
    else:
        path.write_bytes(payload)
    return path


def make_idx_dir(root: Path, n_train: int = 64, n_test: int = 16, seed: int = 0) -> Path:
    """A folder of four small, well-formed IDX files (their checksums are not MNIST's)."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", n_train), ("t10k", n_test)):
        write_idx(root / f"{split}-images-idx3-ubyte",
                  rng.integers(0, 256, (n, 28, 28), dtype=np.uint8), 0x803)
        write_idx(root / f"{split}-labels-idx1-ubyte",
                  rng.integers(0, 10, (n,), dtype=np.uint8), 0x801)
    return root


def run_module(module: str, *args: str, timeout: float = 300, env: dict | None = None,
               cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run `python -m module args` as a user would, capturing its output."""
    # Subprocesses get the offline switch, so a stray download attempt fails instead of waiting.
    full_env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "KERAS_DIGITS_OFFLINE": "1",
                **(env or {})}
    full_env["PYTHONPATH"] = str(REPO) + os.pathsep + full_env.get("PYTHONPATH", "")
    return subprocess.run(
        [sys.executable, "-m", module, *args], capture_output=True, text=True,
        timeout=timeout, env=full_env, cwd=cwd or REPO,
    )


@pytest.fixture(scope="session", autouse=True)
def no_network():
    """The whole suite runs with outbound connections refused: the data is local, so nothing
    may need the network (loopback and Unix sockets stay allowed)."""
    import socket

    original = socket.socket.connect

    def guarded(sock, address):
        host = address[0] if isinstance(address, tuple) else None
        if host is not None and host not in ("127.0.0.1", "::1", "localhost"):
            raise AssertionError(f"test tried to reach the network: {address}")
        return original(sock, address)

    socket.socket.connect = guarded
    yield
    socket.socket.connect = original


@pytest.fixture(scope="session", autouse=True)
def render_cache(tmp_path_factory):
    """The predict-path renderings that training caches go to a folder of this run, not the
    user's ~/.cache (subprocesses inherit it)."""
    from keras_digits.core import cache

    previous = os.environ.get(cache.CACHE_ENV)
    os.environ[cache.CACHE_ENV] = str(tmp_path_factory.mktemp("render_cache"))
    yield
    if previous is None:
        os.environ.pop(cache.CACHE_ENV, None)
    else:
        os.environ[cache.CACHE_ENV] = previous


@pytest.fixture(scope="session")
def mnist():
    from keras_digits.data import datasets

    return datasets.load_arrays("mnist")


SLOW_FIXTURES = {"trained_dir", "exported_dir", "page_on"}
# Fixtures that start a process (a training run, an export, a server, a browser): a test that
# uses one, or that starts a process itself, is not a unit test.
PROCESS_FIXTURES = SLOW_FIXTURES | {"tiny_trained_dir", "tiny_exported_dir", "browser"}
STARTS_A_PROCESS = re.compile(r"run_module\(|subprocess\.|Popen\(|running_server\(|"
                              r"_start_server\(|multiprocessing")


def _starts_a_process(item) -> bool:
    """Whether a test starts a process: through a fixture, in its own code, or in a helper of
    its module that it calls."""
    if PROCESS_FIXTURES & set(item.fixturenames):
        return True
    try:
        source = inspect.getsource(item.function)
    except (OSError, TypeError):
        return True
    helpers = {name for name in re.findall(r"\b(\w+)\(", source)
               if inspect.isfunction(getattr(item.module, name, None))}
    return any(STARTS_A_PROCESS.search(inspect.getsource(getattr(item.module, name)))
               for name in helpers) or bool(STARTS_A_PROCESS.search(source))


def pytest_collection_modifyitems(items):
    """The tiers: `slow` needs the models trained on 24,000 images (or a browser); `unit`
    starts no process and trains nothing beyond a few steps (`pytest -m unit`, under a minute);
    the rest with `unit` is the fast tier (`pytest -m "not slow"`)."""
    for item in items:
        if SLOW_FIXTURES & set(item.fixturenames) or item.get_closest_marker("slow"):
            item.add_marker(pytest.mark.slow)
        elif not _starts_a_process(item) and not item.get_closest_marker("not_unit"):
            item.add_marker(pytest.mark.unit)
    # The tests that need the models trained on 24,000 images go first: pytest-xdist hands each
    # worker a contiguous share, so one worker trains them while the other runs the rest rather
    # than waiting on that fixture's lock.
    items.sort(key=lambda item: not SLOW_FIXTURES & set(item.fixturenames))


@pytest.fixture(autouse=True)
def unit_tests_start_no_process(request, monkeypatch):
    """Under `-m unit` a test that starts a process fails and says so, so the tier stays honest."""
    if request.node.get_closest_marker("unit") and "unit" in (request.config.option.markexpr
                                                              or ""):
        def refuse(*args, **kwargs):
            raise AssertionError("a unit test started a process: mark it not_unit")

        monkeypatch.setattr(subprocess.Popen, "__init__", refuse)


def made_once(tmp_path_factory, name: str, make: Callable[[Path], Path]) -> Path:
    """`make(folder)`'s result, made by the first of the run's pytest-xdist workers that asks
    and reused by the others (they wait on a lock meanwhile), so each trained-model fixture is
    made once per run, not once per worker."""
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # the workers' common folder
    done = root / f"{name}.done"
    with open(root / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, or the worker dies
        if not done.exists():
            folder = root / name
            shutil.rmtree(folder, ignore_errors=True)  # a failed try's leftovers
            folder.mkdir()
            done.write_text(str(make(folder)))
        return Path(done.read_text())


def _train(out: Path, *args: str) -> Path:
    # The 24,000-image run takes about 2 minutes alone on 2 cores; other tests share them.
    result = run_module("keras_digits.train", *args, "--quiet", "--out-dir", str(out),
                        timeout=1200)
    assert result.returncode == 0, result.stderr[-3000:]
    return out


def _export(out: Path, models_dir: Path, limit: int) -> Path:
    result = run_module("keras_digits.export", "all", "--models-dir", str(models_dir),
                        "--out-dir", str(out), "--limit", str(limit),
                        "--report-dir", str(out / "reports"), timeout=900)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    return out / "mnist"


@pytest.fixture(scope="session")
def tiny_trained_dir(tmp_path_factory) -> Path:
    """A real `train` of the linear model and the CNN on 4,096 images for two epochs: every
    artifact, and just enough accuracy (about 80% and 95%) that int8 copies pass their parity
    check. The fast tier's stand-in for `trained_dir`."""
    return made_once(tmp_path_factory, "tiny_models", lambda out: _train(
        out, "linear", "cnn", "--limit", "4096", "--epochs", "2", "--no-report"))


@pytest.fixture(scope="session")
def tiny_exported_dir(tiny_trained_dir, tmp_path_factory) -> Path:
    """A real `export all` of the tiny models, parity checked on 200 test images; the report it
    rewrites is in `reports/mnist/` beside the export folder."""
    return made_once(tmp_path_factory, "tiny_export",
                     lambda out: _export(out, tiny_trained_dir, 200))


@pytest.fixture(scope="session")
def trained_dir(tmp_path_factory) -> Path:
    """A real `train` run of three models on a 24,000-image MNIST slice, shared by later stages.
    MNIST only (`--handwriting 0`): the tiny models and test_train.py train with the fonts."""
    return made_once(tmp_path_factory, "saved_models", lambda out: _train(
        out, "linear", "mlp", "cnn", "--limit", "24000", "--epochs", "3", "--handwriting", "0"))


@pytest.fixture(scope="session")
def exported_dir(trained_dir, tmp_path_factory) -> Path:
    """A real `export all` of the trained models, parity checked on 2,000 test images, and the
    report it rewrites (`reports/mnist/` beside the export folder)."""
    return made_once(tmp_path_factory, "export", lambda out: _export(out, trained_dir, 2000))


def last_error_line(stderr: str) -> str:
    """The command's own one-line error (TensorFlow may log start-up notices before it)."""
    lines = [line for line in stderr.strip().splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr, stderr
    return lines[0]
