"""A hub dataset in the `datasets` cache, prepared by `datasets` itself as `load_dataset` prepares a hub repo.

`load_dataset("rajpurkar/squad")` online builds its packaged Parquet builder with the repo's id, its short name,
the config its card declares and the commit it read, then `download_and_prepare()` writes

    HF_HOME/datasets/rajpurkar___squad/plain_text/0.0.0/<commit>/
        dataset_info.json, squad-train.arrow, squad-validation.arrow

which is where `load_dataset` (and qaexp's pre-flight) look with HF_HUB_OFFLINE=1. `write_hub_dataset` does the
same from local Parquet files: the one step not taken from `datasets` is handing the builder local files instead
of the repo's `hf://` URLs, after it was constructed (the constructor insists they lie in the repo).

Nothing here is a test; the tests import it.
"""
from __future__ import annotations

import os
import pathlib
from typing import Mapping

COMMIT = "7b6d24c440a36b6815f21b70d25016731768db1f"  # any 40-hex commit: it only names the folder


def squad_features():
    """The feature schema of the real rajpurkar/squad and rajpurkar/squad_v2 (their dataset cards)."""
    import datasets

    string = datasets.Value("string")
    return datasets.Features({"id": string, "title": string, "context": string, "question": string,
                              "answers": {"text": datasets.List(string),
                                          "answer_start": datasets.List(datasets.Value("int32"))}})


def write_hub_dataset(hf_home: os.PathLike, repo_id: str, config_name: str,
                      splits: Mapping[str, list[dict]]) -> pathlib.Path:
    """Prepare `repo_id` (config `config_name`) in HF_HOME's `datasets` cache with these records per split;
    returns the prepared folder."""
    import datasets
    import pyarrow as pa
    import pyarrow.parquet as pq
    from datasets.data_files import DataFilesDict
    from datasets.packaged_modules.parquet.parquet import Parquet

    hf_home = pathlib.Path(hf_home)
    source = hf_home / "parquet-source" / repo_id.replace("/", "--")
    source.mkdir(parents=True, exist_ok=True)
    schema = squad_features().arrow_schema
    for split, records in splits.items():
        pq.write_table(pa.Table.from_pylist(records, schema=schema), source / f"{split}.parquet")
    builder = Parquet(cache_dir=str(hf_home / "datasets"), repo_id=repo_id, dataset_name=repo_id.split("/")[-1],
                      config_name=config_name, hash=COMMIT)
    builder.config.data_files = DataFilesDict.from_patterns(
        {split: [str(source / f"{split}.parquet")] for split in splits})
    with _quiet():
        builder.download_and_prepare()
    return pathlib.Path(builder.cache_dir)


class _quiet:
    """No progress bars from `datasets` while preparing (pytest's output stays readable)."""

    def __enter__(self):
        import datasets

        self.enabled = datasets.utils.is_progress_bar_enabled()
        datasets.utils.disable_progress_bars()

    def __exit__(self, *exc):
        import datasets

        if self.enabled:
            datasets.utils.enable_progress_bars()
        return False
