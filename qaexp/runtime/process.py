"""The process a run trains in: TensorFlow's threads, the Keras precision policy, the distribution strategy (on
JAX: keras.distribution's DataParallel, behind the small part of tf.distribute's interface a run uses).

Jobs that share a process (Hydra's basic launcher runs a sweep's jobs one after another) must not see each
other's settings: `prepare` clears the Keras session and seeds every generator for each run, and the
precision policy is restored when a run ends.
"""
from __future__ import annotations

import contextlib
import logging
from typing import Iterator

from qaexp.config.schema import PrecisionPolicy, Strategy

log = logging.getLogger(__name__)


def prepare(threads: int | None, seed: int, cpu_devices: int | None = None) -> None:
    """A fresh start for one run: thread limits, CPU devices, malloc tuned for TensorFlow, no Keras state, every
    seed set."""
    from qaexp.backend import is_jax
    from qaexp.quiet import import_tensorflow, quiet_python_loggers

    if is_jax():  # neither TensorFlow nor its settings (qaexp.backend.activate set the JAX devices)
        quiet_python_loggers()
        import keras

        keras.utils.clear_session()
        _seed_without_tensorflow(seed)
        return
    quiet_python_loggers()  # before the import too: Keras' import loads matplotlib, which may build its font cache
    import_tensorflow()  # first here: its libraries' loading notices are dropped
    quiet_python_loggers()  # and after: absl's import configures its logger
    import keras

    from qaexp.runtime.malloc import keep_freed_memory

    limit_threads(threads)
    split_cpu(cpu_devices)
    keep_freed_memory()
    keras.utils.clear_session()
    keras.utils.set_random_seed(seed)


def _seed_without_tensorflow(seed: int) -> None:
    """keras.utils.set_random_seed, which also seeds TensorFlow wherever it is installed (importing it, seconds and
    memory a JAX run does not need): Keras' lazy TensorFlow handle is told it is unavailable for the call."""
    import keras
    from keras.src.utils import module_utils

    lazy = module_utils.tensorflow
    known, lazy._available = lazy._available, False
    try:
        keras.utils.set_random_seed(seed)
    finally:
        lazy._available = known


@contextlib.contextmanager
def precision_policy(name: str) -> Iterator[None]:
    """Set the Keras global dtype policy for the run and restore the previous one afterwards."""
    import keras

    previous = keras.config.dtype_policy()
    if name != PrecisionPolicy.float32 and not _has_gpu():
        _warn_if_slow_on_cpu(name)
    keras.config.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def _has_gpu() -> bool:
    from qaexp.backend import is_jax

    if is_jax():
        import jax

        return any(device.platform == "gpu" for device in jax.devices())
    import tensorflow as tf

    return bool(tf.config.list_physical_devices("GPU"))


def _warn_if_slow_on_cpu(name: str) -> None:
    from qaexp.runtime.cpu import supports_bf16

    if name == PrecisionPolicy.mixed_bfloat16 and supports_bf16():
        log.info("precision=%s on a CPU with native bfloat16 instructions (no GPU visible)", name)
        return
    fix = ("use precision=fp32 (this CPU has no native bfloat16 instructions)"
           if name == PrecisionPolicy.mixed_bfloat16 else "use precision=fp32, or mixed_bfloat16 on a CPU with bf16")
    log.warning("precision=%s requested but no GPU is visible: it will run, slowly, on the CPU: %s", name, fix)


def limit_threads(threads: int | None) -> None:
    """Use `threads` intra-op and inter-op threads; TensorFlow fixes both once it has run its first op."""
    if threads is None:
        return
    import tensorflow as tf

    threading = tf.config.threading
    if threading.get_intra_op_parallelism_threads() == threads == threading.get_inter_op_parallelism_threads():
        return
    try:
        threading.set_intra_op_parallelism_threads(threads)
        threading.set_inter_op_parallelism_threads(threads)
        log.info("TensorFlow threads: %d intra-op, %d inter-op", threads, threads)
    except RuntimeError:  # an earlier job in this process already started TensorFlow with other settings
        log.warning("trainer.threads=%d ignored: TensorFlow already started in this process with other settings",
                    threads)


def split_cpu(devices: int | None) -> None:
    """Make the CPU `devices` logical devices (trainer.cpu_devices), so that trainer.strategy=mirrored has that
    many replicas on a machine without GPUs: the multi-replica code path on a laptop or in CI. No speed-up: the
    replicas share the same cores. TensorFlow fixes its devices once it has started."""
    if devices is None:
        return
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    current = tf.config.get_logical_device_configuration(cpu)
    if current is not None and len(current) == devices:
        return
    try:
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * devices)
    except RuntimeError:  # an earlier job in this process already started TensorFlow
        log.warning("trainer.cpu_devices=%d ignored: TensorFlow already started in this process with %d CPU "
                    "device(s)", devices, len(tf.config.list_logical_devices("CPU")))


@contextlib.contextmanager
def strategy_for_run(name: str):
    """The run's distribution strategy for the block: tf.distribute's (build_strategy) on TensorFlow; on JAX one
    that sets keras.distribution's for the block (DataParallel for data_parallel; none otherwise)."""
    from qaexp.backend import is_jax

    if not is_jax():
        yield build_strategy(name)
        return
    import jax
    import keras

    distribution = None
    if name == Strategy.data_parallel:
        distribution = keras.distribution.DataParallel(devices=jax.devices())
        log.info("trainer.strategy=data_parallel: %d device(s): %s", len(jax.devices()),
                 ", ".join(str(device) for device in jax.devices()))
    previous = keras.distribution.distribution()
    keras.distribution.set_distribution(distribution)
    try:
        yield JaxStrategy(len(jax.devices()) if distribution is not None else 1)
    finally:
        keras.distribution.set_distribution(previous)


class JaxStrategy:
    """What a run asks of its strategy (tf.distribute's names), on JAX: the distribution itself is Keras' global
    one, so the scope has nothing to enter; `num_replicas_in_sync` is the devices a batch is split over."""

    def __init__(self, devices: int):
        self.num_replicas_in_sync = devices
        self.extended = self  # tf.distribute keeps should_checkpoint on `extended`
        self.should_checkpoint = True  # one process (multi-host JAX is not supported: the README says so)

    def scope(self):
        return contextlib.nullcontext()


def build_strategy(name: str):
    import tensorflow as tf

    if name == Strategy.mirrored:
        # Without GPUs MirroredStrategy() takes only CPU:0; the CPU's logical devices (trainer.cpu_devices) are
        # the replicas then.
        cpus = [device.name for device in tf.config.list_logical_devices("CPU")]
        gpus = tf.config.list_logical_devices("GPU")
        strategy = tf.distribute.MirroredStrategy(None if gpus or len(cpus) < 2 else cpus)
        log.info("trainer.strategy=mirrored: %d replica(s) on %s", strategy.num_replicas_in_sync,
                 ", ".join(strategy.extended.worker_devices))
        return strategy
    if name == Strategy.multi_worker:
        from qaexp.runtime.distributed import slurm_tasks

        # TF_CONFIG when set; else, in a Slurm job of several tasks, the cluster Slurm describes (one task per worker)
        resolver = tf.distribute.cluster_resolver.SlurmClusterResolver() if slurm_tasks() > 1 else None
        return tf.distribute.MultiWorkerMirroredStrategy(cluster_resolver=resolver)
    if name == Strategy.tpu:
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver()
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
        return tf.distribute.TPUStrategy(resolver)
    return tf.distribute.get_strategy()
