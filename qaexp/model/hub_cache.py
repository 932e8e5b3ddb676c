"""Hub models in the huggingface_hub cache: the one rule for whether one is cached, and how long qaexp waits for
the hub to answer.

Used by the run's pre-flight (run/hub_needs.py: what is needed and not cached) and by checkpoint loading
(model/pretrained.py: the cached snapshot when the hub cannot be reached), so the two never disagree.
"""
from __future__ import annotations

import os
from typing import Optional

from qaexp.errors import ModelLoadError

# Every request qaexp itself makes to the hub (the pre-flight's probe, a model's file listing) waits this long at
# most: huggingface_hub's own default for its metadata requests.
HUB_TIMEOUT_SECONDS = 10.0
OFFLINE_HINT = ("Use experiment=quickstart or model=tiny (no download needed), "
                "or model.checkpoint=/path/to/a/saved/model")


def model_cached(repo_id: str, revision: Optional[str]) -> bool:
    """The one rule for "is this hub model cached?": the repo's config.json is in the huggingface_hub cache at
    `revision` (a branch, tag or commit). The pre-flight asks it; loading offline reads only what it says is there."""
    from huggingface_hub import try_to_load_from_cache

    return isinstance(try_to_load_from_cache(repo_id, "config.json", revision=revision), str)


def cached_snapshot(repo_id: str, revision: Optional[str]) -> str:
    """The cached snapshot directory of `repo_id` at `revision` (the hub is not asked); one ModelLoadError line
    when it is not cached."""
    from huggingface_hub import snapshot_download

    if model_cached(repo_id, revision):
        return snapshot_download(repo_id, revision=revision, local_files_only=True)
    if revision and _cached_repo_folder(repo_id) is not None:
        raise ModelLoadError(f"cannot load {repo_id!r} at revision {revision!r}: the Hugging Face cache holds "
                             "other revisions of it but not this one, and the hub cannot be reached (no "
                             "network? HF_HUB_OFFLINE=1?): give a cached model.revision or go online")
    at = f" at revision {revision!r}" if revision else ""
    raise ModelLoadError(f"cannot load {repo_id!r}{at}: it is not a local directory, it is not in the Hugging "
                         "Face cache, and it cannot be downloaded from the Hugging Face hub (no network? "
                         f"HF_HUB_OFFLINE=1?). {OFFLINE_HINT}")


def _cached_repo_folder(repo_id: str) -> Optional[str]:
    from huggingface_hub import constants
    from huggingface_hub.file_download import repo_folder_name

    folder = os.path.join(constants.HF_HUB_CACHE, repo_folder_name(repo_id=repo_id, repo_type="model"))
    return folder if os.path.isdir(os.path.join(folder, "snapshots")) else None
