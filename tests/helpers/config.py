"""Hydra composition set up once for the tests: `compose(overrides)` is the config `python -m qaexp OVERRIDES`
would run with (this checkout's conf/, the schemas registered), without starting a process."""
from __future__ import annotations

from helpers.repo import REPO

CONF = REPO / "conf"


def compose(overrides=(), *, hydra: bool = False):
    """The composed DictConfig; `hydra=True` keeps the `hydra` node (launcher, sweep and run settings)."""
    from hydra import compose as compose_config
    from hydra import initialize_config_dir

    import qaexp.config  # noqa: F401  (registers the schemas config.yaml's defaults name)

    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose_config("config", overrides=list(overrides), return_hydra_config=hydra)
