"""Training steps: gradient accumulation and several replicas make the update of one large batch; XLA and
steps_per_execution run; the best epoch is kept and early stopping follows validation F1."""
import json
import textwrap

import numpy as np
import pytest

from helpers import tiny_qa
from helpers.cli import run_cli
from qaexp.data.batches import Batcher


@pytest.fixture(scope="module")
def tiny_data():
    examples = tiny_qa.records(30)
    tokenizer = tiny_qa.tokenizer_for(examples)
    return tokenizer, tiny_qa.windows_for(examples, tokenizer)


def first_batch(tokenizer, windows, size):
    b = Batcher(windows, size, padding="dynamic", max_length=96, pad_id=tokenizer.pad_token_id, shuffle_seed=0)
    return b.pad(b.order(0)[0])


def weights_after_one_step(tokenizer, batch, accum_steps, optimizer):
    import tensorflow as tf

    from qaexp.training.qa_model import QATrainingModel

    model = tiny_qa.tiny_model(tokenizer)
    trainable = QATrainingModel(model, accum_steps)
    trainable.compile(optimizer=optimizer)
    history = trainable.fit(tf.data.Dataset.from_tensors(batch), verbose=0)
    assert int(trainable.optimizer.iterations.numpy()) == 1
    return [v.numpy() for v in model.trainable_variables], history.history["loss"][0]


def test_accumulated_micro_batches_make_the_update_of_the_whole_batch(tiny_data):
    import keras

    tokenizer, windows = tiny_data
    batch = first_batch(tokenizer, windows, 7)  # 7 rows in 3 micro-batches: 3 + 3 + 1 (2 zero-weight pad rows)
    initial = [v.numpy() for v in tiny_qa.tiny_model(tokenizer).trainable_variables]
    whole, whole_loss = weights_after_one_step(tokenizer, batch, 1, keras.optimizers.SGD(0.5))
    accumulated, accumulated_loss = weights_after_one_step(tokenizer, batch, 3, keras.optimizers.SGD(0.5))
    assert max(np.abs(w - i).max() for w, i in zip(whole, initial)) > 1e-3  # the step did change the weights
    for w, a in zip(whole, accumulated):
        np.testing.assert_allclose(a, w, atol=2e-6)
    assert accumulated_loss == pytest.approx(whole_loss, rel=1e-6)


@pytest.mark.slow
def test_accumulation_with_adam_matches_one_large_batch(tiny_data):
    import keras

    tokenizer, windows = tiny_data
    batch = first_batch(tokenizer, windows, 8)
    # Adam's first step is about lr * sign(gradient): a larger epsilon keeps it from amplifying the rounding
    # noise of gradients that are zero in exact arithmetic (e.g. attention key biases).
    whole, _ = weights_after_one_step(tokenizer, batch, 1, keras.optimizers.Adam(1e-2, epsilon=1e-3))
    accumulated, _ = weights_after_one_step(tokenizer, batch, 4, keras.optimizers.Adam(1e-2, epsilon=1e-3))
    for w, a in zip(whole, accumulated):
        np.testing.assert_allclose(a, w, atol=1e-5)


MIRRORED_SCRIPT = textwrap.dedent("""
    import json, sys
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    sys.path.insert(0, "tests")
    import numpy as np, keras
    from helpers import tiny_qa
    from qaexp.data.batches import Batcher
    from qaexp.training.qa_model import QATrainingModel

    examples = tiny_qa.records(30)
    tokenizer = tiny_qa.tokenizer_for(examples)
    windows = tiny_qa.windows_for(examples, tokenizer)
    # 7 windows per global batch: the replicas get 4 and 3, an uneven split the loss must still average right.
    batcher = Batcher(windows, 7, padding="dynamic", max_length=96, pad_id=tokenizer.pad_token_id, shuffle_seed=0,
                      min_last_batch=2)

    def train(strategy):
        with strategy.scope():
            model = tiny_qa.tiny_model(tokenizer)
            initial = [v.numpy() for v in model.trainable_variables]
            trainable = QATrainingModel(model, 1)
            trainable.compile(optimizer=keras.optimizers.SGD(0.5))
        history = trainable.fit(batcher.dataset(0, count=3), steps_per_epoch=3, epochs=1, verbose=0)
        final = [v.numpy() for v in model.trainable_variables]
        change = max(float(np.abs(f - i).max()) for f, i in zip(final, initial))
        return history.history["loss"][0], final, change, strategy.num_replicas_in_sync

    single_loss, single, change, _ = train(tf.distribute.get_strategy())
    mirrored_loss, mirrored, _, replicas = train(tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]))
    diff = max(float(np.abs(a - b).max()) for a, b in zip(single, mirrored))
    print(json.dumps({"single": single_loss, "mirrored": mirrored_loss, "weight_diff": diff, "change": change,
                      "replicas": replicas}))
""")


@pytest.mark.slow
def test_mirrored_on_two_cpu_devices_matches_one_device():
    done = run_cli(["-c", MIRRORED_SCRIPT])
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["replicas"] == 2
    assert result["change"] > 1e-3
    assert result["mirrored"] == pytest.approx(result["single"], rel=1e-5)
    assert result["weight_diff"] < 1e-5


@pytest.mark.slow
def test_xla_and_steps_per_execution_train(tiny_data):
    import keras

    from qaexp.training.qa_model import QATrainingModel

    tokenizer, windows = tiny_data
    batcher = Batcher(windows, 8, padding="max_length", max_length=96, pad_id=tokenizer.pad_token_id,
                      shuffle_seed=0)
    trainable = QATrainingModel(tiny_qa.tiny_model(tokenizer), grad_accum_steps=2)
    trainable.compile(optimizer=keras.optimizers.Adam(1e-3), steps_per_execution=2, jit_compile=True)
    history = trainable.fit(batcher.dataset(0, count=8), steps_per_epoch=4, epochs=2, verbose=0)
    assert int(trainable.optimizer.iterations.numpy()) == 8
    assert np.isfinite(history.history["loss"]).all()
    assert history.history["loss"][1] < history.history["loss"][0]


# ---- keeping the best epoch, early stopping, resuming the records ----------------------------------------


def small_state(directory, patience=None, keep_best=True):
    import keras

    from qaexp.training.state import RunState

    model = keras.Sequential([keras.layers.Dense(2)])
    model.build((None, 3))
    optimizer = keras.optimizers.SGD(0.1)
    optimizer.build(model.trainable_variables)
    state = RunState(str(directory), model, optimizer, steps_per_epoch=5, epochs=6, every_steps=2,
                     keep_best=keep_best, patience=patience)
    return state, model, optimizer


def play_epochs(state, model, optimizer, f1s, first_epoch=0):
    """Fake epochs: weights set to the epoch number, 5 optimizer steps each, the given validation F1."""
    for epoch, f1 in enumerate(f1s, start=first_epoch):
        model.set_weights([np.full_like(w, epoch) for w in model.get_weights()])
        optimizer.iterations.assign_add(5)
        if state.end_epoch(epoch, {"loss": 1.0 / (epoch + 1), "val_f1": f1}, {"epoch": epoch}):
            return epoch
    return None


def test_best_epoch_weights_are_kept(tmp_path):
    state, model, optimizer = small_state(tmp_path)
    state.start(resume=False)
    play_epochs(state, model, optimizer, [50.0, 70.0, 60.0])
    assert state.best_epoch == 1 and state.best_result == {"epoch": 1}
    assert state.final_weights()
    assert all((w == 1).all() for w in model.get_weights())
    assert state.summary() == {"resumed": False, "optimizer_steps": 15, "early_stopped": False, "best_epoch": 2}


def test_without_keep_best_the_last_weights_stay(tmp_path):
    state, model, optimizer = small_state(tmp_path, keep_best=False)
    state.start(resume=False)
    play_epochs(state, model, optimizer, [50.0, 70.0, 60.0])
    assert not state.final_weights()
    assert all((w == 2).all() for w in model.get_weights())


def test_early_stopping_after_patience_epochs_without_improvement(tmp_path):
    state, model, optimizer = small_state(tmp_path, patience=2)
    state.start(resume=False)
    stopped_at = play_epochs(state, model, optimizer, [50.0, 60.0, 59.0, 60.0, 80.0])
    assert stopped_at == 3 and state.early_stopped and state.finished
    assert state.history["val_f1"] == [50.0, 60.0, 59.0, 60.0]


def test_resume_restores_steps_records_and_best_weights(tmp_path):
    state, model, optimizer = small_state(tmp_path, patience=3)
    state.start(resume=False)
    play_epochs(state, model, optimizer, [50.0, 70.0, 60.0])

    resumed, model2, optimizer2 = small_state(tmp_path, patience=3)
    assert resumed.start(resume=True) == 15
    assert resumed.resumed and resumed.best_epoch == 1 and resumed.best_result is None
    assert resumed.history["val_f1"] == [50.0, 70.0, 60.0]
    assert all((w == 2).all() for w in model2.get_weights())
    play_epochs(resumed, model2, optimizer2, [65.0], first_epoch=3)
    assert resumed.final_weights() and all((w == 1).all() for w in model2.get_weights())
    assert resumed.summary()["optimizer_steps"] == 20

    fresh, _, _ = small_state(tmp_path)
    assert fresh.start(resume=False) == 0 and fresh.history == {}  # resume=false starts over


@pytest.mark.parametrize("override, message", [
    ("trainer.grad_accum_steps=0", "trainer.grad_accum_steps=0 must be >= 1"),
    ("trainer.grad_accum_steps=9", "trainer.grad_accum_steps=9 must be <= trainer.batch_size=8"),
    ("trainer.checkpoint_every_steps=0", "trainer.checkpoint_every_steps=0 must be >= 1"),
    ("trainer.early_stopping_patience=0", "trainer.early_stopping_patience=0 must be >= 1"),
])
def test_training_keys_are_validated(override, message):
    from helpers.config import compose
    from qaexp.config.validation import validate
    from qaexp.errors import ConfigError

    cfg = compose(["model=tiny", "data=synthetic", "trainer.batch_size=8", override])
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        validate(cfg)


def test_a_checkpoint_restores_every_weight_and_optimizer_slot_of_a_qaexp_model(tiny_data, tmp_path):
    # Keras 3 layers keep their sublayers in lists that TensorFlow's checkpoint tracking does not see: a checkpoint
    # of the model object itself holds only the embeddings and the head (training.state.model_variables), so the
    # best epoch's checkpoint (the model alone) is checked, and the latest (model and optimizer) for the slots.
    import keras

    from qaexp.training.state import RunState

    tokenizer, windows = tiny_data
    model = tiny_qa.tiny_model(tokenizer)
    optimizer = keras.optimizers.Adam(1e-3)
    optimizer.build(model.trainable_variables)
    for variable in optimizer.variables[2:]:  # the slots (after the step and the learning rate)
        variable.assign(np.full(variable.shape, 0.5, dtype=variable.dtype))
    state = RunState(str(tmp_path), model, optimizer, steps_per_epoch=5, epochs=2)
    state.start(resume=False)
    optimizer.iterations.assign(5)
    best_weights = [w.numpy().copy() for w in model.weights]
    saved_slots = [v.numpy().copy() for v in optimizer.variables]
    state.end_epoch(0, {"loss": 1.0, "val_f1": 50.0}, None)  # the best epoch, saved; and the latest checkpoint

    for variable in [*model.weights, *optimizer.variables]:
        variable.assign(np.zeros(variable.shape, dtype=variable.dtype))
    again = RunState(str(tmp_path), model, optimizer, steps_per_epoch=5, epochs=2)
    assert again.start(resume=True) == 5
    for saved, slot in zip(saved_slots, optimizer.variables):
        np.testing.assert_array_equal(slot.numpy(), saved, err_msg=slot.path)

    for weight in model.weights:
        weight.assign(np.zeros(weight.shape, dtype=weight.dtype))
    optimizer.iterations.assign(10)
    again.end_epoch(1, {"loss": 0.5, "val_f1": 10.0}, None)  # worse: the best stays epoch 1
    assert again.final_weights()
    assert len(best_weights) == len(model.weights) > 20  # every encoder layer's weights, not only embeddings + head
    for saved, weight in zip(best_weights, model.weights):
        np.testing.assert_array_equal(weight.numpy(), saved, err_msg=weight.path)


def test_a_run_resumed_inside_an_epoch_fits_the_rest_of_it_then_the_epochs_after():
    # Keras 3's fit cannot start an epoch at a step: the rest of the epoch is one shorter fit.
    from qaexp.training.state import fit_segments

    # (first step, steps_per_epoch, epochs, initial_epoch) of each fit
    assert fit_segments(0, steps_per_epoch=4, epochs=3) == [(0, 4, 3, 0)]  # a fresh run: one fit
    assert fit_segments(4, steps_per_epoch=4, epochs=3) == [(4, 4, 3, 1)]  # resumed at an epoch boundary: one fit
    # resumed at step 5 (epoch 2, step 2 of 4): steps 5-7 as epoch 2's rest (3 steps), then epoch 3 from step 8
    assert fit_segments(5, steps_per_epoch=4, epochs=3) == [(5, 3, 2, 1), (8, 4, 3, 2)]
    assert fit_segments(9, steps_per_epoch=4, epochs=3) == [(9, 3, 3, 2)]  # inside the last epoch: its rest only


def test_a_step_skipped_by_loss_scaling_still_counts_so_the_data_position_holds(tiny_data):
    # Under mixed_float16 the LossScaleOptimizer skips a step whose gradients overflowed without counting it; the
    # optimizer's step is where a resumed run's data continues, so qaexp counts it anyway (training/qa_model.py).
    import keras
    import tensorflow as tf

    from qaexp.training.qa_model import QATrainingModel

    tokenizer, windows = tiny_data
    batch = first_batch(tokenizer, windows, 4)
    model = tiny_qa.tiny_model(tokenizer)
    optimizer = keras.optimizers.LossScaleOptimizer(keras.optimizers.SGD(0.1), initial_scale=2.0 ** 15)
    optimizer.build(model.trainable_variables)
    optimizer.dynamic_scale.assign(float("inf"))  # the scaled gradients are inf (or nan): an overflow
    trainable = QATrainingModel(model, 1)
    trainable.compile(optimizer=optimizer, auto_scale_loss=False)
    before = [w.numpy().copy() for w in model.trainable_variables]
    trainable.fit(tf.data.Dataset.from_tensors(batch), verbose=0)
    assert int(optimizer.iterations.numpy()) == 1  # counted
    assert all(np.array_equal(w.numpy(), b) for w, b in zip(model.trainable_variables, before))  # but skipped
    assert int(optimizer.step_counter.numpy()) == 0  # and the loss scaler saw it as an overflow


def test_val_loss_covers_the_labelled_questions_only_whatever_the_blocks(tiny_data):
    """A validation question whose answers have no known place (data/checks.UNPLACED) is answered and scored but
    has no labels: the loss is the mean over the other questions' windows, block by block in window order."""
    from qaexp.data.checks import UNPLACED
    from qaexp.evaluation.inference import _block_logits, labelled_windows, predict_answers
    from qaexp.evaluation.settings import AnswerSettings

    tokenizer, _ = tiny_data
    examples = tiny_qa.records(30)
    examples = [{**r, "answers": {"text": r["answers"]["text"], "answer_start": [UNPLACED]}} if n % 3 == 0 else r
                for n, r in enumerate(examples)]
    windows = tiny_qa.windows_for(examples, tokenizer)
    model = tiny_qa.tiny_model(tokenizer)
    settings = AnswerSettings(96, 32, 30, 20, False, 0.0)
    _, _, per_window = _block_logits(model, windows, 8, tokenizer.pad_token_id, True, False)
    labelled = labelled_windows(examples, windows.example_index)
    assert 0 < labelled.sum() < len(windows)
    for block_windows in (len(windows), 7):  # one block, and several (each cut at a whole question)
        answers, loss = predict_answers(model, examples, windows, 8, tokenizer.pad_token_id, settings,
                                        with_loss=True, block_windows=block_windows)
        assert len(answers.predictions) == 30
        assert loss == pytest.approx(float(per_window[labelled].mean()), rel=1e-5)
    assert abs(per_window[labelled].mean() - per_window.mean()) > 1e-4  # the unlabelled windows would change it
    none_placed = [{**r, "answers": {"text": r["answers"]["text"], "answer_start": [UNPLACED]}} for r in examples]
    answers, loss = predict_answers(model, none_placed, windows, 8, tokenizer.pad_token_id, settings, with_loss=True)
    assert loss is None and len(answers.predictions) == 30  # no loss to report, every question still answered
