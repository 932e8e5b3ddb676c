"""What tests/training/test_backends.py checks on the JAX backend, in one process (one JAX start-up): run under
KERAS_BACKEND=jax with tests/helpers/no_tensorflow on PYTHONPATH.

    python jax_checks.py SPEC.json

SPEC: {"runs": [{"directory": D, "overrides": [...]}, ...] (experiments run in-process one after another, as the
                                                          CLI would run them),
       "logits": {"models": [MODEL_DIR, ...], "inputs": INPUTS.npz, "output": OUT.npz} (optional),
       "predict": [ARGS...] (optional: `qaexp predict ARGS`, in-process)}
Prints one JSON line: {"backend", "devices", "metrics": [each run's metrics.json]}; OUT.npz holds
`<i>/start_logits`, `<i>/end_logits` for each model i, computed with qaexp's own forward pass.
"""
import json
import logging
import pathlib
import sys

from qaexp import backend

CONF = str(pathlib.Path(__file__).resolve().parents[2] / "conf")


def run_experiment(directory: str, overrides: list[str]) -> dict:
    # Composes for itself rather than through helpers.config.compose: this runs as a script in its own process,
    # where the tests' `helpers` package is not importable.
    from hydra import compose, initialize_config_dir

    from qaexp.run.experiment import run

    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        cfg = compose(config_name="config", overrides=overrides)
    backend.activate(cfg.trainer.backend, cfg.trainer.cpu_devices)
    return run(cfg, directory)


def logits(models: list[str], inputs: str, output: str) -> None:
    import numpy as np

    from qaexp.evaluation.inference import _forward_function
    from qaexp.model.hf_checkpoint import load_checkpoint

    batch = dict(np.load(inputs))
    found = {}
    for number, directory in enumerate(models):
        model, _ = load_checkpoint(directory)
        start, end, _ = _forward_function(model, with_loss=False)(batch)
        found[f"{number}/start_logits"], found[f"{number}/end_logits"] = np.asarray(start), np.asarray(end)
    np.savez(output, **found)


def main() -> None:
    with open(sys.argv[1], encoding="utf-8") as f:
        spec = json.load(f)
    logging.basicConfig(level=logging.INFO)  # the runs' log lines, on stderr
    metrics = [run_experiment(**run) for run in spec.get("runs", [])]
    if "logits" in spec:
        logits(**spec["logits"])
    if "predict" in spec:
        from qaexp.tools.predict import main as predict

        assert predict(spec["predict"]) == 0
    import jax

    print(json.dumps({"backend": backend.current(), "devices": len(jax.devices()), "metrics": metrics}))


if __name__ == "__main__":
    main()
