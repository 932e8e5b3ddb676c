"""A command never overwrites a run already in its directory (run/existing_run.py): a single run or a sweep aimed
at an earlier run's directory is refused with one line before Hydra writes anything there, and every file of the
earlier run stays as it was. Each CLI case stops before TensorFlow loads (about half a second)."""
import hashlib
import json
import os
import shutil
import time

import pytest

from helpers.cli import imported_tensorflow, popen_cli, run_cli
from helpers.shared_runs import TINY_RUN
from helpers.state_runs import RUN


def copied_run(trained_tiny_model, run_dir, outcome=None):
    """A copy of the shared tiny run (read-only) in `run_dir`; `outcome` replaces its metrics.json."""
    shutil.copytree(trained_tiny_model, run_dir)
    if outcome is not None:
        (run_dir / "metrics.json").write_text(json.dumps(outcome))
    return run_dir


def files(directory):
    """Every file below `directory` with its content's digest and modification time: what a refused command
    must leave exactly as it was."""
    return {str(path.relative_to(directory)): (hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_mtime_ns)
            for path in sorted(directory.rglob("*")) if path.is_file()}


def qaexp(*args):
    """The command's result, its stderr without the `-X importtime` lines (which show TensorFlow never loaded)."""
    result = run_cli(["-X", "importtime", "-m", "qaexp", *args], timeout=120)
    assert not imported_tensorflow(result.stderr), "the check came after TensorFlow loaded"
    result.stderr = "".join(line + "\n" for line in result.stderr.splitlines() if not line.startswith("import time:"))
    return result


def interrupted(run_dir):
    return {"status": "interrupted", "signal": "SIGTERM", "checkpoint": f"{run_dir}/checkpoints/latest/ckpt-19",
            "optimizer_steps": 19, "resume": f"trainer.resume=true hydra.run.dir={run_dir}"}


def scores(run_dir):
    metrics = json.loads((run_dir / "metrics.json").read_text())
    return f"EM {metrics['exact_match']:.2f}, F1 {metrics['f1']:.2f}"


# A training run like the earlier one, and an evaluation-only run of its own model with other data settings (which
# rewrote the model's qaexp.json and made predict treat it as SQuAD v2).
AGAIN = {"training": lambda run_dir: [*TINY_RUN],
         "evaluation of its own model": lambda run_dir: [*TINY_RUN, f"model.checkpoint={run_dir / 'model'}",
                                                         "data.version_2_with_negative=true", "trainer.epochs=0"]}


@pytest.mark.parametrize("kind", AGAIN)
def test_a_run_into_a_completed_runs_directory_is_refused_and_changes_nothing(trained_tiny_model, tmp_path, kind):
    run_dir = copied_run(trained_tiny_model, tmp_path / "run")
    before = files(run_dir)
    result = qaexp(*AGAIN[kind](run_dir), f"hydra.run.dir={run_dir}")
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.strip() == (
        f"qaexp: error: hydra.run.dir={run_dir} already holds a completed run ({scores(run_dir)}): a new run there "
        f"would overwrite it; choose another hydra.run.dir, or remove {run_dir} first")
    assert files(run_dir) == before


def test_a_run_directory_named_through_hydras_resolver_is_checked_as_the_directory_hydra_makes(trained_tiny_model,
                                                                                               tmp_path):
    """hydra.run.dir=.../${hydra:job.name} resolves only once Hydra's job has started: the check skipped it and a
    second run overwrote the first."""
    run_dir = copied_run(trained_tiny_model, tmp_path / "__main__")  # ${hydra:job.name} of `python -m qaexp`
    before = files(run_dir)
    result = qaexp(*TINY_RUN, f"hydra.run.dir={tmp_path}/${{hydra:job.name}}")
    assert result.returncode == 2 and result.stderr.startswith(
        f"qaexp: error: hydra.run.dir={run_dir} already holds a completed run ({scores(run_dir)})"), result.stderr
    assert files(run_dir) == before


@pytest.mark.parametrize("where", ["command line", "config file"])
def test_a_sweep_directory_naming_hydras_resolver_is_one_line_with_the_interpolation_that_works(tmp_path, where):
    """Hydra's sweeper resolves hydra.sweep.dir before ${hydra:...} can be, and failed with a traceback."""
    value = f"{tmp_path}/sweeps/${{hydra:job.name}}"
    if where == "config file":  # a primary config of the user's own, on top of qaexp's
        (tmp_path / "mine.yaml").write_text(f"defaults:\n  - config\n  - _self_\nhydra:\n  sweep:\n    dir: {value}\n")
        result = qaexp("-m", "--config-dir", str(tmp_path), "--config-name", "mine", *TINY_RUN)
    else:
        result = qaexp("-m", *TINY_RUN, f"hydra.sweep.dir={value}")
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr.strip() == (
        f"qaexp: error: hydra.sweep.dir={tmp_path}/sweeps/${{hydra:job.name}}: Hydra makes the sweep directory before "
        "${hydra:...} can be resolved; write it as a plain interpolation of the same key: "
        f"hydra.sweep.dir={tmp_path}/sweeps/${{hydra.job.name}}")
    assert not (tmp_path / "sweeps").exists()


def test_a_run_into_an_interrupted_runs_directory_is_refused_and_names_resume(trained_tiny_model, tmp_path):
    run_dir = copied_run(trained_tiny_model, tmp_path / "run", interrupted(tmp_path / "run"))
    before = files(run_dir)
    result = qaexp(*TINY_RUN, f"hydra.run.dir={run_dir}")
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"qaexp: error: hydra.run.dir={run_dir} already holds an interrupted run (SIGTERM, checkpoint at step 19): "
        f"continue it with trainer.resume=true, choose another hydra.run.dir, or remove {run_dir} to start again "
        "there")
    assert files(run_dir) == before


def test_resuming_a_completed_run_says_there_is_nothing_to_resume_and_changes_nothing(trained_tiny_model, tmp_path):
    run_dir = copied_run(trained_tiny_model, tmp_path / "run")
    before = files(run_dir)
    result = qaexp(*TINY_RUN, "trainer.resume=true", "trainer.verbose=0", f"hydra.run.dir={run_dir}")
    assert result.returncode == 0, result.stderr  # the run asked for exists: as a resumed sweep skips its jobs
    assert result.stderr.strip() == (f"qaexp: {run_dir} holds a completed run ({scores(run_dir)}): nothing to "
                                     "resume; nothing was changed")
    assert files(run_dir) == before


def test_a_resume_with_other_settings_is_refused_and_the_run_stays_resumable(trained_tiny_model, tmp_path):
    """The refusal's advice, to resume with the run's own settings, stays true: its .hydra/config.yaml and its
    metrics.json (with the resume hint) are the interrupted run's."""
    run_dir = copied_run(trained_tiny_model, tmp_path / "run", interrupted(tmp_path / "run"))
    before = files(run_dir)
    result = qaexp(*TINY_RUN, "model.architecture.hidden_size=96", "trainer.resume=true", f"hydra.run.dir={run_dir}")
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"qaexp: error: trainer.resume=true with settings other than the run's in {run_dir}/.hydra/config.yaml: "
        "model.architecture.hidden_size=96 (the run's: 128): resume with the run's own settings, or start a new run "
        "in another hydra.run.dir")
    assert files(run_dir) == before


def test_a_sweep_into_an_earlier_sweeps_directory_is_refused_unless_resumed(trained_tiny_model, tmp_path):
    sweep_dir = tmp_path / "sweep"
    sweep_dir.mkdir()
    copied_run(trained_tiny_model, sweep_dir / "0")
    copied_run(trained_tiny_model, sweep_dir / "1", interrupted(sweep_dir / "1"))
    (sweep_dir / "multirun.yaml").write_text("earlier: sweep\n")
    before = files(sweep_dir)
    result = qaexp("-m", *TINY_RUN, "trainer.seed=1,2", f"hydra.sweep.dir={sweep_dir}")
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"qaexp: error: hydra.sweep.dir={sweep_dir} already holds an earlier sweep's jobs (1 completed, 1 "
        "unfinished): continue that sweep with trainer.resume=true (the same command; completed jobs are skipped), "
        f"choose another hydra.sweep.dir, or remove {sweep_dir} first")
    assert files(sweep_dir) == before


# ---- what counts as an earlier run (in-process) -----------------------------------------------------------------

def test_a_directory_without_a_runs_files_is_no_earlier_run(tmp_path):
    """A command Hydra stopped before it trained leaves .hydra/ and a log: nothing to lose, so a run may use it."""
    from qaexp.rundir import holds_run

    (tmp_path / ".hydra").mkdir()
    (tmp_path / ".hydra" / "config.yaml").write_text("trainer: {}\n")
    (tmp_path / "__main__.log").write_text("")
    assert not holds_run(str(tmp_path))
    (tmp_path / "checkpoints").mkdir()
    assert holds_run(str(tmp_path))


@pytest.mark.parametrize("make, described", [
    (lambda d: (d / "checkpoints").mkdir(), "an unfinished run (checkpoints/ but no metrics.json: it was killed)"),
    (lambda d: (d / "metrics.json").write_text("{\"status\": \"comp"), "a run whose metrics.json cannot be read"),
    (lambda d: (d / "metrics.json").write_text("{\"status\": \"diverged\"}"), "a diverged run"),
    (lambda d: (d / "model").mkdir(), "a run's saved model/ (no metrics.json)"),
])
def test_an_earlier_run_is_described_by_what_it_left(tmp_path, make, described):
    from qaexp.run.existing_run import EarlierRun

    make(tmp_path)
    assert EarlierRun.of(str(tmp_path)).describe() == described


def test_a_run_submitit_requeued_after_preemption_may_continue_without_resume(tmp_path, monkeypatch):
    """submitit reruns the same command (no trainer.resume=true) after its preemption signal: sweep_resume then
    resumes it, so the check lets it start."""
    from omegaconf import OmegaConf

    from qaexp.run.existing_run import single_run_problem
    from qaexp.runtime.preemption import preemption_signal

    (tmp_path / "metrics.json").write_text(json.dumps({"status": "interrupted", "signal": preemption_signal().name}))
    cfg = OmegaConf.create({"trainer": {"resume": False}})
    assert single_run_problem(cfg, str(tmp_path))[1] == 2  # not a submitit job: refused
    monkeypatch.setenv("SUBMITIT_EXECUTOR", "slurm")
    monkeypatch.setenv("SUBMITIT_FOLDER", str(tmp_path / "submitit"))
    assert single_run_problem(cfg, str(tmp_path)) is None


def test_resumed_settings_are_compared_by_value_leaving_out_how_the_run_is_run(tmp_path):
    from omegaconf import OmegaConf

    from qaexp.run.existing_run import changed_settings

    (tmp_path / ".hydra").mkdir()
    (tmp_path / ".hydra" / "config.yaml").write_text(
        "model: {lr: 0.001, hidden_size: 128}\noptimizer: {lr: '${model.lr}', epsilon: 1.0e-07}\n"
        "trainer: {verbose: 1, resume: false}\ndata: {cache_dir: /old/cache}\nremoved_since: 1\n")
    asked = {"model": {"lr": 0.001, "hidden_size": 128}, "optimizer": {"lr": 0.001, "epsilon": 1e-07},
             "trainer": {"verbose": 0, "resume": True}, "data": {"cache_dir": "/new/cache"}, "added_since": 2}
    assert changed_settings(OmegaConf.create(asked), str(tmp_path)) == []  # ${model.lr} was 0.001
    asked["optimizer"]["lr"] = 0.002
    asked["model"]["hidden_size"] = 96
    assert changed_settings(OmegaConf.create(asked), str(tmp_path)) == [("model.hidden_size", 96, 128),
                                                                         ("optimizer.lr", 0.002, 0.001)]


@pytest.mark.parametrize("sweep", [False, True], ids=["run", "sweep"])
def test_a_command_started_where_another_is_running_is_refused_and_the_directory_is_released_when_it_ends(
        tmp_path, sweep):
    """Two commands in one directory at once (the same command twice, a resume of a run still going) would both
    pass the earlier-run check, since neither has written metrics.json yet, and then write one run's files in turn."""
    key = "hydra.sweep.dir" if sweep else "hydra.run.dir"
    target = tmp_path / "target"
    command = [*(["-m"] if sweep else []), *RUN, f"{key}={target}"]
    marker = tmp_path / "reached"
    first = popen_cli(["-m", "qaexp", *command], env={"QAEXP_STAGE_HOOK": f"load_data:{marker}"})
    try:
        deadline = time.monotonic() + 120
        while not marker.exists() and first.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert marker.exists(), first.communicate(timeout=60)
        before = files(target)
        for again in ([], ["trainer.resume=true"]):
            result = qaexp(*command, *again)
            assert (result.returncode, result.stdout) == (2, ""), result.stderr
            assert result.stderr.strip() == (f"qaexp: error: {key}={target} is in use by another qaexp command that "
                                             "is running now: wait for it to end (then resume or rerun as its line "
                                             f"says), or choose another {key}")
        assert files(target) == before and first.poll() is None
    finally:
        first.kill()  # SIGKILL: the process ends without a word, and the kernel releases its lock all the same
        first.communicate(timeout=60)
    from qaexp.run import existing_run

    assert existing_run.hold(str(target), key) is None  # released: this process now gets the lock
    os.close(existing_run._held.pop(os.path.realpath(target)))
