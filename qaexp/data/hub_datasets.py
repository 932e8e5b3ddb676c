"""A dataset from the Hugging Face hub through `datasets.load_dataset`, with one line for each way it can fail:
no such dataset, a bare name that huggingface_hub refuses, an unknown config, a loading script, no network."""
from __future__ import annotations

import re
from typing import Any, Optional

from qaexp.errors import DataError


# Hub names from before the hub gave every dataset an owner; huggingface_hub >= 1.16 refuses the bare names.
CANONICAL_DATASET_IDS = {"squad": "rajpurkar/squad", "squad_v2": "rajpurkar/squad_v2"}


def load_hub_dataset(name: str, config_name: Optional[str], key: str = "data.name", where: str = "",
                     config_key: str = "data.config_name") -> Any:
    """The DatasetDict of a hub dataset; `key` and `config_key` (in `where`) are the settings that named it and its
    config, for the error lines."""
    import datasets
    from datasets.exceptions import DatasetNotFoundError

    try:
        return datasets.load_dataset(name, config_name)
    except RuntimeError as err:
        if str(err).startswith(SCRIPTS_UNSUPPORTED):
            raise DataError(
                f"dataset {name!r} needs its loading script ({str(err).rsplit(' ', 1)[-1]}), which the installed "
                f"datasets {datasets.__version__} no longer runs: convert the data to SQuAD JSON or JSON lines and "
                f"use data=json data.train_file=... data.validation_file=... (an extra_eval entry: source json, "
                f"file=...), or use a Parquet version of the dataset on the hub; check {key}{where}") from err
        raise
    except DatasetNotFoundError as err:  # the hub answered: no such repository (or not for this user)
        raise DataError(f"dataset {name!r} does not exist on the Hugging Face hub (or it is private or gated: set "
                        f"HF_TOKEN): check {key}{where}") from err
    except ValueError as err:
        if _bare_name_refused(err, name):
            canonical = CANONICAL_DATASET_IDS.get(name, f"OWNER/{name} (the id on its hub page)")
            raise DataError(f"dataset {name!r} is named without its owner, which huggingface_hub "
                            f"{_hub_version()} refuses: use {key}={canonical}{where}") from err
        refused = _config_refused(err, config_name)
        if refused is not None:
            raise DataError(f"dataset {name!r} {refused}: set {config_key} to one of them{where}") from err
        raise
    except (ConnectionError, OSError, FileNotFoundError) as err:
        raise DataError(
            f"cannot load dataset {name!r} from the Hugging Face hub ({type(err).__name__}): it cannot be "
            "downloaded here. Use experiment=quickstart (synthetic data), or data=json "
            "data.train_file=... data.validation_file=... with local SQuAD files") from err


# The start of the RuntimeError datasets >= 4 raises for a dataset that has a loading script (5.0.1 and 5.2.0:
# "Dataset scripts are no longer supported, but found NAME.py"); other RuntimeErrors pass through unchanged.
SCRIPTS_UNSUPPORTED = "Dataset scripts are no longer supported, but found "

# datasets' ValueErrors for a config name the dataset does not have, and for none given to a dataset of several
# configs (5.0.1 and 5.2.0), each listing the names it has: the builder's, when the hub (or a local folder's card)
# answered, and the cache's, offline.
UNKNOWN_CONFIG = (r"BuilderConfig '(?P<name>.*)' not found\. Available: (?P<available>\[.*\])",
                  r"Couldn't find cache for .* for config '(?P<name>.*)'\nAvailable configs in the cache: "
                  r"(?P<available>\[.*\])",
                  r"Config name is missing\.\nPlease pick one among the available configs: (?P<available>\[.*?\])\n.*")


def _config_refused(err: ValueError, config_name: Optional[str]) -> Optional[str]:
    """What is wrong with `config_name` and the config names datasets listed ("has no config 'x'; it has: a, b");
    offline the list is the cache's, and the phrase says so. None for any other ValueError."""
    import ast

    for pattern, who in zip(UNKNOWN_CONFIG, ("it has", "the cache (offline) has", "it has")):
        found = re.fullmatch(pattern, str(err), re.DOTALL)
        if found and found.groupdict().get("name") == config_name:
            names = ", ".join(str(name) for name in ast.literal_eval(found["available"]))
            wrong = f"has no config {config_name!r}" if config_name else "has several configs and none is chosen"
            return f"{wrong}; {who}: {names}"
    return None


def _hub_version() -> str:
    import huggingface_hub

    return huggingface_hub.__version__


def _bare_name_refused(err: ValueError, name: str) -> bool:
    """huggingface_hub >= 1.16 raises HfUriError for a dataset id without "owner/" (older ones have no such class
    and follow the hub's redirect)."""
    from huggingface_hub import errors

    uri_error = getattr(errors, "HfUriError", None)
    return uri_error is not None and isinstance(err, uri_error) and "/" not in name
