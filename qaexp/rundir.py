"""The files of a run directory, named in one place and read with one checked reader.

A run directory is `hydra.run.dir` (default `outputs/runs/DATE/TIME/`) or one job of a sweep
(`outputs/multirun/DATE/TIME/N/`). Every module that writes or reads one of these files takes its name from here:

```
RUN_DIR/
  .hydra/config.yaml        CONFIG     the resolved config (read_config)
  .hydra/overrides.yaml     OVERRIDES  the command line's overrides
  .hydra/hydra.yaml         HYDRA      Hydra's own settings (the report reads the chosen model from it)
  metrics.json              METRICS    status (completed | failed | diverged | interrupted), EM, F1, losses,
                                       history, counts, seconds per stage; the error line, or how to resume
  predictions.json          PREDICTIONS {id: answer}, the official format
  nbest_predictions.json    NBEST      the n best answers per question
  null_odds.json            NULL_ODDS  SQuAD v2 only
  job.json                  JOB        a sweep's job: the overrides it ran with (for resuming the sweep)
  analysis.md, analysis_*.png          the error analysis (trainer.analyze; python -m qaexp.analyze RUN_DIR)
  extra_eval/NAME/          EXTRA_EVAL predictions of each data.extra_eval set
  __main__.log              LOG        the run's log
  model/                    MODEL      config.json, model.safetensors, tokenizer files, README.md (model card),
                                       qaexp-manifest.json (weights' and tokenizer files' SHA-256),
                                       qaexp.json (SETTINGS: window settings and the no-answer threshold)
  checkpoints/              CHECKPOINTS latest/, best/ and tokenizer/ (TOKENIZER) while training; removed once
                                       model/ is saved (trainer.keep_checkpoints keeps them)
  wandb/, tensorboard/                 with logger=wandb / logger=tensorboard
```

Plain names and the standard library only: the launcher, the report and the tools read run directories without
importing TensorFlow.
"""
from __future__ import annotations

import json
import os
from typing import Optional

from qaexp.errors import InputError

CONFIG = os.path.join(".hydra", "config.yaml")
OVERRIDES = os.path.join(".hydra", "overrides.yaml")
HYDRA = os.path.join(".hydra", "hydra.yaml")
METRICS = "metrics.json"
PREDICTIONS = "predictions.json"
NBEST = "nbest_predictions.json"
NULL_ODDS = "null_odds.json"
JOB = "job.json"
EXTRA_EVAL = "extra_eval"
LOG = "__main__.log"
MODEL = "model"
SETTINGS = "qaexp.json"  # inside MODEL
CHECKPOINTS = "checkpoints"
TOKENIZER = "tokenizer"  # inside CHECKPOINTS: what a resumed run tokenises with


def is_run_directory(directory: str) -> bool:
    return os.path.isfile(os.path.join(directory, CONFIG))


def saved_model_in(directory: str) -> Optional[str]:
    """The saved model of the run in `directory` (DIR/model with its config.json), for the line that answers a
    run directory given where a model directory was wanted; None otherwise."""
    model = os.path.join(directory, MODEL)
    return model if os.path.isfile(os.path.join(model, "config.json")) else None


# What a run leaves that a new run in its directory would replace (run/existing_run.py refuses to): a directory
# holding only .hydra/ or a log (a command stopped before it trained) holds nothing to lose.
RUN_FILES = (METRICS, MODEL, CHECKPOINTS)


def holds_run(directory: str) -> bool:
    return any(os.path.lexists(os.path.join(directory, name)) for name in RUN_FILES)


def read_yaml(path: str, kind: str = "mapping"):
    """A run's YAML file (`kind`: "mapping" or "list") as an OmegaConf container, or one line naming the damaged
    file."""
    import yaml
    from omegaconf import DictConfig, ListConfig, OmegaConf

    try:
        content = OmegaConf.load(path)
    except (OSError, ValueError, yaml.YAMLError) as err:
        raise damaged(path, err) from None
    expected = DictConfig if kind == "mapping" else ListConfig
    if not isinstance(content, expected):
        raise damaged(path, TypeError("not a mapping of settings" if kind == "mapping" else "not a list"))
    return content


def read_json(path: str, kind: type = dict, fix: str = "restore it, or leave its run directory out"):
    """A run's JSON file (metrics.json, predictions.json, job.json, model/qaexp.json) holding a `kind`, or one
    line naming the damaged (or unreadable) file and, in `fix`, what to do about it."""
    try:
        with open(path, encoding="utf-8") as f:
            content = json.load(f)
    except (OSError, ValueError) as err:
        raise damaged(path, err, fix) from None
    if not isinstance(content, kind):
        raise damaged(path, TypeError(f"not a JSON {'object' if kind is dict else kind.__name__}"), fix)
    return content


def read_config(run_dir: str, *, optional: bool = False):
    """The run's resolved config (RUN_DIR/.hydra/config.yaml). A directory without one is not a run directory:
    one line saying so, or None when `optional`."""
    if not is_run_directory(run_dir):
        if optional:
            return None
        raise InputError(f"{run_dir} is not a qaexp run directory (no {CONFIG}): give the directory a run wrote "
                         "(outputs/runs/DATE/TIME)")
    return read_yaml(os.path.join(run_dir, CONFIG))


def damaged(path: str, err: BaseException, fix: str = "restore it, or leave its run directory out") -> InputError:
    reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    return InputError(f"{path} is damaged ({reason}): {fix}")
