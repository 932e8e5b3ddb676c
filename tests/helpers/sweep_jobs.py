"""A sweep's job directories as Hydra and qaexp write them (.hydra/config.yaml, overrides.yaml, hydra.yaml,
metrics.json), made on disk for the report's tests without running the jobs."""
import json

import yaml

COMMON = ["data=synthetic", "data.num_train=150"]


def make_job(sweep, num, model, lr, seed, metrics):
    job = sweep / str(num)
    (job / ".hydra").mkdir(parents=True)
    config = {"model": {"checkpoint": None, "lr": lr}, "optimizer": {"name": "adam", "lr": "${model.lr}"},
              "trainer": {"seed": seed}}
    (job / ".hydra" / "config.yaml").write_text(yaml.safe_dump(config))
    overrides = [f"model={model}", *COMMON, f"optimizer.lr={lr}", f"trainer.seed={seed}"]
    (job / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    (job / ".hydra" / "hydra.yaml").write_text(yaml.safe_dump({"hydra": {"runtime": {"choices": {"model": model}}}}))
    if metrics is not None:
        (job / "metrics.json").write_text(json.dumps(metrics))
    return job


def completed(f1, train_seconds=10.0):
    return {"status": "completed", "exact_match": f1 - 5, "f1": f1, "val_loss": 1.0 + 1 / f1,
            "seconds": {"train": train_seconds}}
