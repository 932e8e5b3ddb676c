"""Which Keras backend a run uses (`trainer.backend`), chosen before Keras is imported: the one home of that rule.

Keras reads KERAS_BACKEND once, when it is first imported, so the choice must be made before anything imports
`keras`. qaexp/__init__.py sets KERAS_BACKEND=tensorflow for every process that does not name one (the tools,
the tests, a user's script), and notes in QAEXP_DEFAULT_BACKEND that the value is qaexp's default rather than
the user's: child processes (a sweep's submitit jobs, the tests' CLI runs) inherit both variables, and a
KERAS_BACKEND that differs from the noted default, or comes without the note, is the user's and wins over the
config (the run log says so).

What each backend cannot do is a table of config values in config/validation.py (BACKEND_ONLY), refused there with
one line at config-check time.
"""
from __future__ import annotations

import logging
import os
import sys
from typing import Optional

from qaexp.extras import install_command, missing, require
from qaexp.errors import ConfigError

log = logging.getLogger(__name__)

ENV = "KERAS_BACKEND"
DEFAULT_NOTE = "QAEXP_DEFAULT_BACKEND"  # the KERAS_BACKEND value qaexp set itself (not the user)
DEFAULT = "tensorflow"
# backend -> (the packages it needs, the install line that provides them)
PACKAGES = {
    "tensorflow": (("tensorflow",), 'pip install "qaexp" (tensorflow is one of its dependencies)'),
    "jax": (("jax", "jaxlib"), install_command("jax")),
}


def set_default() -> None:
    """KERAS_BACKEND=tensorflow unless the environment names a backend (called by qaexp/__init__.py)."""
    if ENV not in os.environ:
        os.environ[ENV] = DEFAULT
        os.environ[DEFAULT_NOTE] = DEFAULT


def from_environment() -> Optional[str]:
    """The backend the user named in KERAS_BACKEND, or None where the value there is qaexp's own default."""
    value = os.environ.get(ENV)
    if value is None or value == os.environ.get(DEFAULT_NOTE):
        return None
    return value


def effective(configured: str) -> tuple[str, str]:
    """(the backend a run with trainer.backend=`configured` uses, where that choice came from)."""
    user = from_environment()
    if user is not None:
        return user, f"KERAS_BACKEND={user} from the environment"
    return configured, f"trainer.backend={configured}"


def current() -> str:
    """The backend of this process: Keras' own, once it is imported; else what KERAS_BACKEND will make it."""
    keras = sys.modules.get("keras")
    if keras is not None:
        return keras.backend.backend()
    return os.environ.get(ENV, DEFAULT)


def is_jax() -> bool:
    return current() == "jax"


def missing_packages(name: str) -> list[str]:
    return missing(PACKAGES.get(name, ((name,), ""))[0])


def check_installed(name: str, source: str) -> None:
    """One line when the backend's packages are not installed (or the backend is not one qaexp knows)."""
    if name not in PACKAGES:
        raise ConfigError(f"{source}: backend {name!r} is not one of {', '.join(PACKAGES)}")
    require(source, *PACKAGES[name])


def check_this_process() -> None:
    """The tools' check (model/saved.load_saved: qaexp predict, serve), before Keras is imported: this process's
    backend must be installed; a user's KERAS_BACKEND is named as training names it (the same line)."""
    name = current()
    check_installed(name, f"KERAS_BACKEND={name} from the environment" if from_environment() == name
                    else f"the default backend, {name},")


def activate(configured: str, cpu_devices: Optional[int] = None) -> str:
    """Make the run's backend Keras' backend (before Keras is imported) and return it; one line when it cannot be.

    On JAX, `cpu_devices` (trainer.cpu_devices) makes the host CPU that many XLA devices, for
    trainer.strategy=data_parallel without accelerators; like TensorFlow's logical devices, it must be set before
    the backend starts (an XLA_FLAGS of the user's that already sets the count is left as it is)."""
    name, source = effective(configured)
    check_installed(name, source)
    keras = sys.modules.get("keras")
    if keras is not None and keras.backend.backend() != name:
        raise ConfigError(f"{source}, but Keras was already imported in this process with the "
                          f"{keras.backend.backend()} backend (a sweep whose jobs share one process cannot change "
                          "backends): run each backend in its own command, or use hydra/launcher=joblib")
    if from_environment() is None:  # qaexp's own default, replaced by the config's choice (and noted as ours)
        os.environ[ENV] = os.environ[DEFAULT_NOTE] = name
    if name == "jax" and cpu_devices and "jax" not in sys.modules:
        flags = os.environ.get("XLA_FLAGS", "")
        if HOST_DEVICES_FLAG not in flags:
            os.environ["XLA_FLAGS"] = f"{flags} {HOST_DEVICES_FLAG}={cpu_devices}".strip()
    return name


HOST_DEVICES_FLAG = "--xla_force_host_platform_device_count"


def report(configured: str) -> None:
    """The run log's line saying which backend trains and why."""
    name, source = effective(configured)
    if from_environment() is not None and name != configured:
        log.info("Keras backend: %s (%s; trainer.backend=%s is overridden by it)", name, source, configured)
    else:
        log.info("Keras backend: %s (%s)", name, source)
