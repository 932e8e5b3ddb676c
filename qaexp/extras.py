"""Optional packages (pyproject.toml's extras and the backends' packages): whether they are installed, and the one
line that names what is missing and the pip command that installs it.

importlib's find_spec looks for a package without importing it, so a check costs nothing at start-up and comes
before the feature's own imports, whose failure would be a traceback. The features that check here: the Keras
backends (backend.py), `qaexp serve` (fastapi, uvicorn), `qaexp export --format onnx` (output/export_formats.py),
logger=tensorboard (run/tracking.py); the sweep plugins (config/plugins.py) use install_command's words too.
"""
from __future__ import annotations

import importlib.util
from typing import Iterable

from qaexp.errors import ConfigError


def missing(packages: Iterable[str]) -> list[str]:
    """The packages among `packages` that cannot be imported here (not installed, or refused by an import hook)."""
    absent = []
    for package in packages:
        try:
            found = importlib.util.find_spec(package) is not None
        except (ImportError, ValueError):  # a broken install, or an import hook that refuses it
            found = False
        if not found:
            absent.append(package)
    return absent


def install_command(extra: str) -> str:
    """How to install one of pyproject.toml's extras, from a clone (qaexp's README) or from an index or wheel."""
    return f'pip install -e ".[{extra}]" in qaexp\'s clone, or pip install "qaexp[{extra}]"'


def require(feature: str, packages: Iterable[str], install: str) -> None:
    """ConfigError "FEATURE needs A and B, which are not installed: INSTALL" unless every package is installed."""
    absent = missing(packages)
    if absent:
        verb = "is" if len(absent) == 1 else "are"
        raise ConfigError(f"{feature} needs {' and '.join(absent)}, which {verb} not installed: {install}")
