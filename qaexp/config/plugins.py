"""Hydra plugins a command line needs (a launcher, a sweeper), checked before Hydra runs.

The configs `hydra/launcher/joblib`, `.../submitit_local`, `.../submitit_slurm` and `hydra/sweeper/optuna` come
from pip packages, qaexp's `sweep` extra. Without them Hydra prints ten lines that it cannot find the config;
`plugin_problem` says instead, in one line, which package is missing and how to install it. qaexp's own options
that need a plugin (hydra/launcher=slurm, hparams_search=optuna) are found by following their defaults lists.
"""
from __future__ import annotations

from typing import Callable, Iterable, Optional

import yaml

from qaexp.extras import install_command, missing

# Hydra config -> (the plugin's module, the package that provides it, a module the plugin needs when it runs)
PLUGIN_CONFIGS = {
    "hydra/launcher/joblib": ("hydra_plugins.hydra_joblib_launcher", "hydra-joblib-launcher", "joblib"),
    "hydra/launcher/submitit_local": ("hydra_plugins.hydra_submitit_launcher", "hydra-submitit-launcher", "submitit"),
    "hydra/launcher/submitit_slurm": ("hydra_plugins.hydra_submitit_launcher", "hydra-submitit-launcher", "submitit"),
    "hydra/sweeper/optuna": ("hydra_plugins.hydra_optuna_sweeper", "hydra-optuna-sweeper", "optuna"),
}
INSTALL = install_command("sweep")
MAX_DEPTH = 8  # defaults lists followed this deep (a config that names itself stops here)


def plugin_problem(parsed, config_file: Callable[[str], Optional[str]]) -> Optional[str]:
    """The one line for the first group override (GROUP=OPTION) whose config needs a Hydra plugin that is not
    installed, or None. `config_file(path)` is the text of a config of qaexp's (or the user's) or None."""
    for override in parsed:
        if override.is_delete() or "." in override.key_or_group or override.package is not None:
            continue
        for option in _options(override):
            path = f"{override.key_or_group}/{option}"
            for needed in _needed_configs(path, config_file):
                module, package, runtime = PLUGIN_CONFIGS[needed]
                if not (_installed(module) and _installed(runtime)):
                    return (f"{override.key_or_group}={option} needs the Hydra plugin {package} "
                            f"({needed}), which is not installed: {INSTALL}")
    return None


def _options(override) -> list[str]:
    if override.is_sweep_override():
        return [str(option) for option in getattr(override.value(), "list", [])]
    value = override.value()
    return [str(value)] if isinstance(value, str) else []


def _needed_configs(path: str, config_file: Callable[[str], Optional[str]], depth: int = 0) -> Iterable[str]:
    """The plugin configs that config `path` is or names in its defaults list (recursively)."""
    if path in PLUGIN_CONFIGS:
        yield path
        return
    text = config_file(f"{path}.yaml") if depth < MAX_DEPTH else None
    if text is None:
        return
    try:
        defaults = (yaml.safe_load(text) or {}).get("defaults") or []
    except (yaml.YAMLError, AttributeError):
        return  # Hydra reports a config file it cannot read
    group = path.rpartition("/")[0]
    for entry in defaults:
        for named in _named(entry, group):
            yield from _needed_configs(named, config_file, depth + 1)


def _named(entry, group: str) -> list[str]:
    """The config paths a defaults-list entry names: `submitit_slurm` (this config's group), `override
    /hydra/sweeper: optuna` (an absolute group)."""
    if isinstance(entry, str):
        return [] if entry.startswith("_") else [f"{group}/{entry}" if group else entry]
    if not isinstance(entry, dict):
        return []
    named = []
    for key, value in entry.items():
        target = str(key).replace("override ", "").strip().split("@")[0]
        if not isinstance(value, str) or value == "null":
            continue
        target = target[1:] if target.startswith("/") else (f"{group}/{target}" if group else target)
        named.append(f"{target}/{value}")
    return named


def _installed(module: str) -> bool:
    return not missing([module])  # extras' rule: find_spec, a missing or unimportable parent counting as absent
