"""Write-aside-then-rename helpers: an artifact under its final name is whole or absent."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

from keras_digits.core.cli import UserError


def temp_name(final: Path) -> Path:
    """A hidden sibling name that a crashed run's clean-up can recognise."""
    return final.with_name(f".{final.name}.tmp-{os.getpid()}")


@contextlib.contextmanager
def atomic_path(final: Path) -> Iterator[Path]:
    """Yield a temporary path; rename it onto `final` only if the block finishes."""
    tmp = temp_name(final)
    try:
        yield tmp
        if tmp.is_dir() and final.exists():
            publish_dir(tmp, final)  # rename cannot replace a non-empty folder in one step
        else:
            os.replace(tmp, final)
    finally:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        elif tmp.exists():
            tmp.unlink()


def write_json(path: Path, payload: dict) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n")


def publish_dir(staging: Path, final: Path) -> None:
    """Swap a finished staging folder into place (replacing an older one)."""
    old = final.with_name(f".{final.name}.old-{os.getpid()}")
    if final.exists():
        os.replace(final, old)
    os.replace(staging, final)
    shutil.rmtree(old, ignore_errors=True)


def _owner_alive(path: Path) -> bool:
    """Whether the process whose pid ends the temporary's name is still running."""
    try:
        return _other_process_alive(int(path.name.rsplit("-", 1)[1]))
    except (IndexError, ValueError):
        return False


def _other_process_alive(pid: int) -> bool:
    if pid <= 0 or pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def claim(lock: Path, what: str) -> None:
    """Take `lock` for this process, or say who holds it: two runs writing the same files
    would spoil each other's resume state. A lock left by a killed run is taken over."""
    for _ in range(2):
        try:
            handle = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            try:
                holder = int(lock.read_text() or 0)
            except (OSError, ValueError):
                holder = 0
            if _other_process_alive(holder):
                raise UserError(f"{what} is already running (process {holder}); wait for it to "
                                "finish, or pass another --out-dir") from None
            lock.unlink(missing_ok=True)
            continue
        with os.fdopen(handle, "w") as file:
            file.write(str(os.getpid()))
        return
    raise UserError(f"could not lock {lock}; remove it if no run is going on")


def sweep_leftovers(folder: Path) -> list[Path]:
    """Remove the hidden temporaries that interrupted runs left in `folder`.

    A temporary whose writer is still running (another command at work) is left alone.
    """
    removed: list[Path] = []
    if not folder.is_dir():
        return removed
    for path in folder.iterdir():
        is_temp = path.name.startswith(".") and any(
            tag in path.name for tag in (".tmp-", ".staging-", ".old-"))
        if not is_temp or _owner_alive(path):
            continue
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
        removed.append(path)
    return removed


def require_writable(folder: Path) -> None:
    """Create `folder` and prove a file can be written there, or explain what to do."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".write-test-{os.getpid()}"
        probe.write_text("ok")
        probe.unlink()
    except OSError as exc:
        raise UserError(f"cannot write to {folder}: {exc.strerror or exc}; "
                        "pass --out-dir to a writable folder") from exc
