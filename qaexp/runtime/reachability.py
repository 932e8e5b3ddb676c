"""Whether a tracking service answers at all, found out in seconds: a compute node with an API key but no route
to W&B must not wait for wandb.init's own 90-second timeout (and then lose the run to its CommError)."""
from __future__ import annotations

import os
import socket
import threading
from typing import Optional
from urllib.parse import urlparse

PROBE_SECONDS = 3.0
WANDB_DEFAULT_URL = "https://api.wandb.ai"


def wandb_url() -> str:
    return os.environ.get("WANDB_BASE_URL") or WANDB_DEFAULT_URL


def unreachable(url: str, timeout: float = PROBE_SECONDS) -> Optional[str]:
    """Why `url`'s host cannot be reached (name not resolved, connection refused or timed out), or None.

    A proxy (HTTPS_PROXY / HTTP_PROXY) is what W&B would connect to, so it is the one probed when set.
    """
    parsed = urlparse(url)
    proxy = os.environ.get("HTTPS_PROXY" if parsed.scheme == "https" else "HTTP_PROXY") or os.environ.get(
        "https_proxy" if parsed.scheme == "https" else "http_proxy")
    target = urlparse(proxy) if proxy else parsed
    host = target.hostname
    port = target.port or (443 if target.scheme == "https" else 80)
    if not host:
        return f"no host in {url!r}"
    # In a thread: the connect timeout does not bound the name lookup, which can hang on a node without DNS.
    outcome: list[Optional[str]] = []
    probe = threading.Thread(target=lambda: outcome.append(_connect(host, port, timeout)), daemon=True)
    probe.start()
    probe.join(timeout)
    return outcome[0] if outcome else f"no answer from {host}:{port} within {timeout:g} s"


def _connect(host: str, port: int, timeout: float) -> Optional[str]:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return None
    except socket.timeout:
        return f"no answer from {host}:{port} within {timeout:g} s"
    except OSError as err:
        return f"{host}:{port}: {err.strerror or err}"
