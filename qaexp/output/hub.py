"""Publishing a saved model directory (model, tokenizer, model card) to the Hugging Face Hub.

The token comes from the environment only (HF_TOKEN), never from the config, so it cannot end up in a
config file, a model card or metrics.json. A run pushes after everything is saved locally; a failed push
is recorded in metrics.json and can be retried with

    python -m qaexp.hub RUN_DIR/model USER/NAME [--public]
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Optional

from qaexp.errors import HubPushError, first_line, hub_unreachable_errors

TOKEN_VARIABLE = "HF_TOKEN"


def push_model_dir(model_dir: str, repo_id: str, private: bool = True, endpoint: Optional[str] = None) -> str:
    """Create the repository if needed and upload `model_dir`; returns the repository's URL."""
    from huggingface_hub import HfApi

    token = os.environ.get(TOKEN_VARIABLE)
    if not token:
        raise HubPushError(f"cannot push to the hub: set the {TOKEN_VARIABLE} environment variable to a write "
                           "token (qaexp reads it from the environment only)")
    if not os.path.isdir(model_dir):
        raise HubPushError(f"cannot push {model_dir}: it is not a directory (was the model saved?)")
    api = HfApi(endpoint=endpoint, token=token)
    try:
        repo = api.create_repo(repo_id, private=private, exist_ok=True)
        api.upload_folder(repo_id=repo_id, folder_path=model_dir, commit_message="Upload model trained with qaexp")
    except (OSError, ValueError, *hub_unreachable_errors()) as err:  # huggingface_hub's HTTP errors are OSErrors,
        # its HTTP client's connection errors (httpx / httpx2) are not
        raise HubPushError(f"cannot push {model_dir} to the hub repository {repo_id!r}: {_reason(err)}") from err
    return str(repo)


@dataclass(frozen=True)
class Publication:
    """How a run's push went: the repository's URL, or the error (which says how to retry)."""

    hub_url: Optional[str] = None
    error: Optional[HubPushError] = None
    reason: Optional[str] = None  # the error without the retry advice, as metrics.json records it

    def record(self) -> dict:
        """metrics.json's entries: `pushed`, and `hub_url` or `push_error`."""
        if self.error is None:
            return {"hub_url": self.hub_url, "pushed": True}
        return {"pushed": False, "push_error": self.reason}


def push_run(model_dir: str, hub_cfg) -> Publication:
    """Push after a run; a failure is returned (the run itself completed), not raised."""
    try:
        return Publication(hub_url=push_model_dir(model_dir, hub_cfg.repo_id, private=hub_cfg.private))
    except HubPushError as err:
        retry = f"; the model is saved in {model_dir}: retry with `python -m qaexp.hub {model_dir} {hub_cfg.repo_id}`"
        return Publication(error=HubPushError(f"{err}{retry}"), reason=str(err))


def _reason(err: BaseException) -> str:
    if isinstance(err, hub_unreachable_errors()):
        return f"the Hugging Face Hub is unreachable ({type(err).__name__})"
    return first_line(err, named=True)
