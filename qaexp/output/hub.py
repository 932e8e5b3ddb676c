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

from qaexp.errors import HubPushError, QAExpError, first_line, hub_unreachable_errors

TOKEN_VARIABLE = "HF_TOKEN"


def repo_id_problem(repo_id: Optional[str]) -> Optional[str]:
    """What is wrong with `repo_id` as the repository an upload goes to (None: nothing): huggingface_hub's own
    validator, and a namespace, since qaexp creates the repository and a bare name would be guessed into one."""
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    if not repo_id or repo_id.count("/") != 1:
        return f"the hub repository {repo_id!r} is not USER/NAME: give your user or organisation name, a slash " \
               "and the repository's name (e.g. alice/squad-bert)"
    try:
        validate_repo_id(repo_id)
    except HFValidationError as err:
        return f"the hub repository {repo_id!r} is not a valid repository id ({first_line(err)})"
    return None


def check_pushable(model_dir: str, repo_id: str) -> None:
    """Before any network: `model_dir` passes the checks predict makes before it loads a model (config.json of an
    architecture qaexp has, its saved settings, weights and tokenizer files with the manifest's sizes and checksums)
    and `repo_id` is USER/NAME; HubPushError otherwise."""
    from qaexp.model.pretrained import check_saved_model, model_config
    from qaexp.model.saved import answer_settings

    problem = repo_id_problem(repo_id)
    if problem:
        raise HubPushError(f"cannot push: {problem}")
    try:
        answer_settings(model_dir, {})  # a directory with config.json, and settings predict would accept
        model_config(model_dir)  # an architecture qaexp (and so predict and serve) has a model for
        check_saved_model(model_dir)
    except QAExpError as err:
        raise HubPushError(f"cannot push: {err}") from err


def push_model_dir(model_dir: str, repo_id: str, private: bool = True, endpoint: Optional[str] = None) -> str:
    """Create the repository if needed and upload `model_dir`; returns the repository's URL."""
    from huggingface_hub import HfApi

    check_pushable(model_dir, repo_id)
    token = os.environ.get(TOKEN_VARIABLE)
    if not token:
        raise HubPushError(f"cannot push to the hub: set the {TOKEN_VARIABLE} environment variable to a write "
                           "token (qaexp reads it from the environment only)")
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
