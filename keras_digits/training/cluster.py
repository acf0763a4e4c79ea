"""Data-parallel training across processes and hosts on the JAX backend, with keras.distribution.

One command line per process; the cluster comes from `--coordinator/--num-processes/--process-id`
or Keras's own variables (KERAS_DISTRIBUTION_JOB_ADDRESSES, _NUM_PROCESSES, _PROCESS_ID).
`jax.distributed` connects the processes (gloo collectives on CPU), `keras.distribution.
DataParallel` spans every device of every process, and Keras shards each global tf.data batch
between the processes. Nothing here trains: `train` asks this module for the distribution and
whether its process is the one that writes.

JAX reports a cluster that never forms, or a peer that dies, by aborting the process with pages
of C++ log. So the steps that can wait on a peer run under a watchdog that prints one line and
exits first, and an error from a collective becomes one line too (`lost_peer`).
"""

from __future__ import annotations

import hashlib
import os
import socket
import sys
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from keras_digits.core.cli import UserError

DISTRIBUTIONS = ("none", "data-parallel")
ADDRESSES_ENV = "KERAS_DISTRIBUTION_JOB_ADDRESSES"
PROCESSES_ENV = "KERAS_DISTRIBUTION_NUM_PROCESSES"
PROCESS_ID_ENV = "KERAS_DISTRIBUTION_PROCESS_ID"
EXIT_CLUSTER_ERROR = 3
# Words in the errors JAX raises when a collective loses a peer (gloo's TCP pairs, the
# coordination service's heartbeats and barriers).
PEER_ERRORS = ("gloo", "connection", "heartbeat", "coordination", "barrier", "unavailable")
HOW_TO_LAUNCH = ("give every process the same --coordinator HOST:PORT (process 0's address) and "
                 "--num-processes N, and each its own --process-id 0..N-1")


@dataclass(frozen=True)
class ClusterSpec:
    """Where process 0 listens, how many processes there are, and which one this is."""

    coordinator: str | None = None
    num_processes: int = 1
    process_id: int = 0

    @property
    def port(self) -> int:
        return int(str(self.coordinator).rpartition(":")[2])


def _whole_number(text: str, what: str) -> int:
    try:
        return int(str(text).strip())
    except ValueError:
        raise UserError(f"{what} is {text!r}, not a whole number; {HOW_TO_LAUNCH}") from None


def _check_address(address: str) -> str:
    host, colon, port = address.strip().rpartition(":")
    if not colon or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise UserError(f"coordinator address {address!r} is not HOST:PORT with a port from 1 "
                        f"to 65535; {HOW_TO_LAUNCH}")
    return address.strip()


def cluster_from(coordinator: str | None, num_processes: int | str | None,
                 process_id: int | str | None,
                 environ: Mapping[str, str] = os.environ) -> ClusterSpec:
    """The cluster from the flags, falling back to Keras's variables; refused when malformed."""
    addresses = coordinator or environ.get(ADDRESSES_ENV, "").strip() or None
    count = num_processes if num_processes is not None else environ.get(PROCESSES_ENV)
    index = process_id if process_id is not None else environ.get(PROCESS_ID_ENV)
    count = 1 if count in (None, "") else _whole_number(count, "the number of processes")
    index = 0 if index in (None, "") else _whole_number(index, "the process id")
    if count < 1:
        raise UserError(f"the number of processes is {count}; it must be 1 or more")
    if not 0 <= index < count:
        raise UserError(f"process id {index} is out of range for {count} processes; "
                        f"use 0 to {count - 1}")
    if count == 1:
        return ClusterSpec(None, 1, 0)
    if not addresses:
        raise UserError(f"{count} processes need a coordinator: {HOW_TO_LAUNCH} (or set "
                        f"{ADDRESSES_ENV})")
    jobs = [a for a in addresses.split(",") if a.strip()]
    if len(jobs) > 1 and len(jobs) != count:
        raise UserError(f"{ADDRESSES_ENV} lists {len(jobs)} addresses for {count} processes; "
                        "list one per process, or only process 0's")
    return ClusterSpec(_check_address(jobs[0]), count, index)


def cluster_variables_set(environ: Mapping[str, str] = os.environ) -> bool:
    return any(environ.get(name, "").strip() for name in (ADDRESSES_ENV, PROCESSES_ENV))


def _fail(message: str) -> None:
    """One line and out, skipping JAX's shutdown barrier (it would abort with a page of log)."""
    sys.stdout.flush()
    print(f"error: {message}", file=sys.stderr, flush=True)
    os._exit(EXIT_CLUSTER_ERROR)


@contextmanager
def watchdog(seconds: float, message: str) -> Iterator[None]:
    """Exit with `message` if the block has not finished within `seconds` (JAX releases the
    GIL while it waits on the network, so this thread gets to run)."""
    done = threading.Event()

    def watch() -> None:
        if not done.wait(seconds):
            _fail(message)

    threading.Thread(target=watch, daemon=True, name="cluster-watchdog").start()
    try:
        yield
    finally:
        done.set()


def use_cpu_devices(count: int) -> None:
    """Split the CPU into `count` JAX devices; must run before JAX starts its backend."""
    import jax

    jax.config.update("jax_num_cpu_devices", count)


def connect(spec: ClusterSpec, timeout: float, agreement: str) -> None:
    """Join the cluster and check that every process runs the same training (`agreement` is a
    description of it); a single process needs no connection."""
    if spec.num_processes == 1:
        return
    if spec.process_id == 0:
        _require_free_port(spec.port)
    import jax

    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    # Its SIGTERM handler waits for a preemption sync point that Keras never reaches, so
    # `kill` would not stop a process; without it SIGTERM ends the run like kill -9.
    jax.config.update("jax_enable_preemption_service", False)
    who = f"process {spec.process_id} of {spec.num_processes}"
    with watchdog(timeout, f"the cluster did not form within {timeout:g} s ({who}, coordinator "
                           f"{spec.coordinator}): start every process, check the address and "
                           f"that all were given the same --num-processes, or raise "
                           f"--peer-timeout"):
        try:
            # keras.distribution.initialize starts the same service, without these timeouts.
            jax.distributed.initialize(spec.coordinator, spec.num_processes, spec.process_id,
                                       initialization_timeout=int(timeout) + 60,
                                       heartbeat_timeout_seconds=max(1, int(timeout)))
            if jax.process_count() != spec.num_processes:
                _fail(f"this process was started with --num-processes {spec.num_processes} but "
                      f"the coordinator expects {jax.process_count()}; {HOW_TO_LAUNCH}")
            digests = gather(_digest(agreement))
        except Exception as exc:  # a peer that left while the cluster formed, a refused address
            _fail(f"the cluster did not form ({_first_line(exc)}); {HOW_TO_LAUNCH}")
        if len({bytes(d) for d in digests}) != 1:
            _fail("the processes were started with different training settings (model, "
                  "dataset, seed, epochs, batch size, limit or precision); give every process "
                  "the same command line apart from --process-id")


def _require_free_port(port: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind(("", port))
        except OSError:
            raise UserError(f"port {port} on this host is in use, so process 0 cannot listen "
                            "there; pick a free port for --coordinator on every process") from None


def _digest(text: str):
    import numpy as np

    return np.frombuffer(hashlib.sha256(text.encode()).digest(), dtype=np.uint8)


def gather(value):
    """`value` (a numpy array, the same shape everywhere) from every process, stacked."""
    import jax
    import numpy as np

    if jax.process_count() == 1:
        return np.asarray(value)[None]
    from jax.experimental import multihost_utils

    return np.asarray(multihost_utils.process_allgather(value))


def process_index() -> int:
    import jax

    return jax.process_index()


def process_count() -> int:
    import jax

    return jax.process_count()


def agree_on_epoch(epoch: int, model: str, folder: Path) -> None:
    """Every process must resume from the same epoch (a kill can land between two processes
    saving theirs); refused, in every process alike, when they differ."""
    import numpy as np

    epochs = sorted({int(e) for e in gather(np.array([epoch], dtype=np.int64)).ravel()})
    if len(epochs) > 1:
        raise UserError(f"the processes saved different epochs ({', '.join(map(str, epochs))}) "
                        f"before they stopped, so the run cannot resume; delete the "
                        f".{model}*.work folders in {folder} on every host and start again")


def agree_on_weights(digest: str) -> None:
    """Data parallelism keeps one model: the trained weights must be identical everywhere."""
    digests = {bytes(d) for d in gather(_digest(digest))}
    if len(digests) > 1:
        _fail("the processes ended training with different weights; nothing was published. "
              "Check that every process runs the same versions of this package, Keras and JAX")


def data_parallel():
    """keras.distribution.DataParallel over every device of every process."""
    import keras

    return keras.distribution.DataParallel(devices=keras.distribution.list_devices())


def device_count(distribution) -> int:
    return int(distribution.device_mesh.devices.size)


def weights_digest(weights: list) -> str:
    """A fingerprint of a model's weights: equal in every process when the replicas agree."""
    digest = hashlib.sha256()
    for array in weights:
        digest.update(array.tobytes())
    return digest.hexdigest()


@contextmanager
def lost_peer(distributed: bool) -> Iterator[None]:
    """Turn a failed collective (a peer died or hung up) into one line and a non-zero exit."""
    try:
        yield
    except UserError:
        raise
    except Exception as exc:
        if not distributed or not any(word in str(exc).lower() for word in PEER_ERRORS):
            raise
        _fail(f"lost contact with another process of the cluster ({_first_line(exc)}); the "
              "run stopped with nothing published: start every process again with the same "
              "command lines and each resumes from its last finished epoch")


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]


def add_arguments(parser) -> None:
    """`train`'s options for a data-parallel run."""
    from keras_digits.core.cli import positive_float, positive_int

    parser.add_argument("--distribute", choices=DISTRIBUTIONS, default="none",
                        help="JAX backend: data-parallel over every device of every process "
                             "(keras.distribution); --batch-size is per device")
    parser.add_argument("--coordinator", metavar="HOST:PORT",
                        help=f"process 0's address, the same on every process "
                             f"(or ${ADDRESSES_ENV})")
    parser.add_argument("--num-processes", type=positive_int,
                        help=f"processes in the cluster (or ${PROCESSES_ENV}; default 1)")
    parser.add_argument("--process-id", type=int,
                        help=f"this process, 0 to N-1; 0 writes the artifacts "
                             f"(or ${PROCESS_ID_ENV})")
    parser.add_argument("--peer-timeout", type=positive_float, default=120.0,
                        help="seconds to wait for the cluster to form, or for a silent peer, "
                             "before stopping with an error (default 120)")


def spec_from_args(args) -> ClusterSpec:
    """The cluster of a `--distribute` run, checked before any engine starts."""
    if args.distribute == "none":
        if args.coordinator or args.num_processes or args.process_id is not None or \
                cluster_variables_set():
            raise UserError("a cluster was given (flags or KERAS_DISTRIBUTION_* variables) but "
                            "not --distribute data-parallel; add it, or drop the cluster settings")
        return ClusterSpec()
    return cluster_from(args.coordinator, args.num_processes, args.process_id)


def start(args, spec: ClusterSpec, agreement: str):
    """On the JAX backend: split the CPU if asked, join the cluster, and return the
    DataParallel distribution (None without --distribute). Runs before anything else uses JAX."""
    if args.strategy not in ("auto", "one"):
        raise UserError("--strategy is for the TensorFlow backend; on JAX use --distribute "
                        "data-parallel")
    if args.distribute == "none":
        if args.cpu_devices:
            raise UserError("--cpu-devices on the JAX backend needs --distribute data-parallel")
        return None
    if args.cpu_devices:
        use_cpu_devices(args.cpu_devices)
    connect(spec, args.peer_timeout, f"{agreement} {spec.num_processes}")
    distribution = data_parallel()
    print(f"== data-parallel: process {spec.process_id} of {spec.num_processes}, "
          f"{device_count(distribution)} devices in all", flush=True)
    return distribution
