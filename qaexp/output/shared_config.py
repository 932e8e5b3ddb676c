"""The run's config as it leaves the machine (a tracking backend's run config, the model card's hyperparameters):
plain containers, resolved, with any secret-looking value masked."""
from __future__ import annotations

import re
from typing import Any

from omegaconf import DictConfig, OmegaConf

# Config keys whose values must never leave the machine (the config has none today: a safety net).
_SECRET_KEY = re.compile(r"(^|_)(api_?key|token|secret|password)$", re.IGNORECASE)


def plain_config(cfg: DictConfig) -> dict:
    """The resolved config as plain containers, with any secret-looking value masked."""
    return _masked(OmegaConf.to_container(cfg, resolve=True))


def _masked(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: "***" if _SECRET_KEY.search(str(k)) and v is not None else _masked(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_masked(v) for v in node]
    return node
