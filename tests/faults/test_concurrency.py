"""Runs that start at once, sharing one window cache, tokenizer cache and output root, get the results each would
get alone, and agree on one cache entry; the cache ends up holding only whole entries.

"Alone" is a run with its own, empty cache: so the same comparison shows that the results do not depend on the
cache either (two processes with separate empty caches: byte-identical tokenizer.json, identical metrics).
"""
from __future__ import annotations

import pathlib

import pytest

from helpers.cli import popen_cli
from helpers.state_runs import RUN, results

pytestmark = pytest.mark.slow


def test_concurrent_runs_and_a_joblib_sweep_agree_with_a_run_alone(tmp_path, reference_run):
    alone = reference_run  # RUN with its own empty cache (it also kept its checkpoints, which changes no result)

    shared, cache = tmp_path / "shared", tmp_path / "shared" / "cache"
    shared.mkdir()
    # A plain run and a joblib sweep of two identical jobs (experiment_name changes only the label), all started
    # together, in one working directory: Hydra's default outputs/runs and outputs/multirun roots are shared.
    plain = popen_cli(["-m", "qaexp", *RUN, f"data.cache_dir={cache}"], cwd=shared)
    sweep = popen_cli(["-m", "qaexp", "-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "experiment_name=a,b",
                       *RUN, f"data.cache_dir={cache}"], cwd=shared)
    outputs = [process.communicate(timeout=900) for process in (plain, sweep)]
    for process, (stdout, stderr) in zip((plain, sweep), outputs):
        assert process.returncode == 0, stderr[-3000:]
        assert "Traceback" not in stdout + stderr and "qaexp: job" not in stderr, stderr[-3000:]

    run_dirs = [path.parent for pattern in ("outputs/runs/*/*/metrics.json", "outputs/multirun/*/*/*/metrics.json")
                for path in sorted(shared.glob(pattern))]
    assert len(run_dirs) == 3, run_dirs
    expected = results(alone / "run")
    reference_tokenizer = (alone / "run" / "model" / "tokenizer.json").read_bytes()
    for run_dir in run_dirs:
        assert results(run_dir) == expected, run_dir
        assert (run_dir / "model" / "tokenizer.json").read_bytes() == reference_tokenizer, run_dir
    assert_one_whole_entry_each(cache, logs=[run_dir / "__main__.log" for run_dir in run_dirs])


def assert_one_whole_entry_each(cache: pathlib.Path, logs: list[pathlib.Path]) -> None:
    from qaexp.output.manifest import verify_manifest

    tokenizers = [entry for entry in (cache / "tokenizers").iterdir() if entry.is_dir()]
    features = [entry for entry in cache.iterdir() if entry.is_dir() and entry.name != "tokenizers"]
    assert len(tokenizers) == 1 and len(features) == 2, (tokenizers, features)  # train and validation windows
    for entry in [*tokenizers, *features]:
        verify_manifest(str(entry))
    assert not list(cache.rglob(".tmp-*")), "a temporary entry was left behind"
    # The first run to take the lock trained the tokenizer; the other two waited and read its entry.
    texts = [log.read_text() for log in logs]
    assert sum("tokenizer from the cache" in text for text in texts) == 2, texts
