"""A run killed with SIGKILL mid-epoch and resumed (trainer.resume=true, same hydra.run.dir) ends with the optimizer
steps of an uninterrupted run, and says so in metrics.json."""
import json

import pytest

from helpers.kill_at_checkpoint import kill_at_first_checkpoint, saved_step

BATCH, EPOCHS = 8, 2


def overrides(run_dir, cache_dir):
    return ["experiment=test_tiny", "trainer.threads=null", "data.num_train=240", "data.num_validation=30",
            "data.max_length=128", "data.doc_stride=48", f"trainer.epochs={EPOCHS}", f"trainer.batch_size={BATCH}",
            "trainer.checkpoint_every_steps=2", "trainer.save_model=false",
            f"data.cache_dir={cache_dir}", f"hydra.run.dir={run_dir}"]


@pytest.mark.slow
def test_run_killed_mid_epoch_resumes_to_the_same_number_of_steps(tmp_path, cli):
    run_dir, cache_dir = tmp_path / "run", tmp_path / "cache"
    killed_at = kill_at_first_checkpoint(["-m", "qaexp", *overrides(run_dir, cache_dir)], run_dir, timeout=300)
    assert not (run_dir / "metrics.json").exists()

    done = cli(["-m", "qaexp", *overrides(run_dir, cache_dir), "trainer.resume=true"])
    assert done.returncode == 0, done.stderr[-3000:]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    steps_per_epoch = -(-metrics["train_windows"] // BATCH)
    assert 0 < killed_at < steps_per_epoch, (killed_at, steps_per_epoch)  # killed in the middle of the first epoch
    assert metrics["resumed"] is True
    assert metrics["optimizer_steps"] == steps_per_epoch * EPOCHS  # what an uninterrupted run does
    assert metrics["epochs"] == EPOCHS and len(metrics["history"]["val_f1"]) == EPOCHS
    assert "read from the window cache" in done.stdout + done.stderr  # the resumed run did not tokenise again
    assert saved_step(run_dir) == metrics["optimizer_steps"]  # save_model=false: the checkpoints are the model


def small_state(directory, steps_per_epoch=10):
    import keras

    from qaexp.training.state import RunState

    model = keras.Sequential([keras.layers.Dense(2)])
    model.build((None, 3))
    optimizer = keras.optimizers.Adam()
    optimizer.build(model.trainable_variables)
    state = RunState(str(directory), model, optimizer, steps_per_epoch=steps_per_epoch, epochs=2)
    state.start(resume=False)
    return state


def test_checkpoint_step_is_the_step_on_disk_not_the_current_one(tmp_path):
    state = small_state(tmp_path / "checkpoints")
    assert state.checkpoint_step is None
    state.optimizer.iterations.assign(4)
    assert state.save() and state.checkpoint_step == 4
    state.optimizer.iterations.assign(10)  # an epoch's last step, before its evaluation: save() declines
    assert not state.save()
    assert state.checkpoint_step == 4 and state.step == 10


def test_remove_deletes_the_checkpoints(tmp_path):
    state = small_state(tmp_path / "checkpoints")
    state.optimizer.iterations.assign(3)
    state.save()
    assert (tmp_path / "checkpoints" / "latest").is_dir()
    state.remove()
    assert not (tmp_path / "checkpoints").exists()


def test_a_signal_during_a_checkpoint_save_interrupts_only_after_the_save(tmp_path):
    """An exception raised from the handler inside TensorFlow's saving code broke every later save ("Exiting
    device scope without proper scope nesting"): the run ended failed, without its checkpoint."""
    import os
    import signal

    from qaexp.errors import RunInterrupted
    from qaexp.runtime.signals import signals_as_interrupts

    state = small_state(tmp_path / "checkpoints")
    real_save = state.latest.save

    def save_while_a_signal_arrives(**options):
        os.kill(os.getpid(), signal.SIGTERM)  # the handler runs at the next bytecode: inside the save
        return real_save(**options)

    state.latest.save = save_while_a_signal_arrives
    state.optimizer.iterations.assign(3)
    with pytest.raises(RunInterrupted) as interrupted, signals_as_interrupts():
        state.save()
    assert interrupted.value.signum == signal.SIGTERM
    assert state.checkpoint_step == 3  # the save was whole
    state.latest.save = real_save
    state.optimizer.iterations.assign(4)
    assert state.save() and state.checkpoint_step == 4  # and the next one works
