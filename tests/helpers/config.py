"""Hydra composition set up once for the tests: `compose(overrides)` is the config `python -m qaexp OVERRIDES`
would run with (this checkout's conf/, the schemas registered), without starting a process."""
from __future__ import annotations

import dataclasses
import typing

from helpers.repo import REPO

CONF = REPO / "conf"


def compose(overrides=(), *, hydra: bool = False):
    """The composed DictConfig; `hydra=True` keeps the `hydra` node (launcher, sweep and run settings)."""
    from hydra import compose as compose_config
    from hydra import initialize_config_dir

    import qaexp.config  # noqa: F401  (registers the schemas config.yaml's defaults name)

    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose_config("config", overrides=list(overrides), return_hydra_config=hydra)


def numeric_schema_keys() -> dict[str, type]:
    """Every int or float (optional or not) key of the schema, with its type."""
    from qaexp.config.schema import QAExpConfig

    found = {}
    for group in dataclasses.fields(QAExpConfig):
        schema = typing.get_type_hints(QAExpConfig)[group.name]
        if not dataclasses.is_dataclass(schema):
            continue
        for name, kind in typing.get_type_hints(schema).items():
            base_type = next((a for a in typing.get_args(kind) if a is not type(None)), kind)
            if base_type in (int, float):
                found[f"{group.name}.{name}"] = base_type
    return found
