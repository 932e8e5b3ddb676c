"""Every bad input ends with one clear line and a non-zero exit, and no run directory claims completion.

The table runs the real CLI for one case of each error class (and for Hydra's errors, the refusals before Hydra
and the tools), the other cases in this process through the function the CLI calls; nearly every case fails
before TensorFlow is imported. The runs that must train (interrupt, divergence, secrets) use the smallest model and are marked slow.
"""
import errno
import json
import os
import re
import signal
import threading
import time
from types import SimpleNamespace

import numpy as np
import pytest

from helpers.repo import REPO
from helpers.cli import popen_cli, run_cli
from helpers.config import compose
from helpers.secret_values import SECRETS

TINY = ["experiment=test_tiny", "trainer.verbose=null", "data.max_length=128", "data.doc_stride=32",
        "data.cache=false"]
CONTEXT = "Ada number {n} grew up in Lyon and later moved to Paris to study."


def qaexp(args, run_dir, timeout=300, env=None):
    return run_cli(["-m", "qaexp", *args, f"hydra.run.dir={run_dir}"], timeout=timeout, env=env)


def record(n, **changes):
    context = CONTEXT.format(n=n)
    base = {"id": f"q{n}", "title": "Ada", "context": context, "question": f"Where did Ada number {n} grow up?",
            "answers": {"text": ["Lyon"], "answer_start": [context.index("Lyon")]}}
    return {**base, **changes}


def jsonl(records) -> str:
    return "".join(json.dumps(r) + "\n" for r in records)


def metrics(run_dir):
    path = run_dir / "metrics.json"
    return json.loads(path.read_text()) if path.exists() else None


# ---- the table ---------------------------------------------------------------------------------------------

# (case, overrides, data file content or None, expected exit status, words the stderr must contain).
# Overrides may use {data}: the path of the case's data file.
JSON_DATA = ["data=json", "data.train_file={data}", "data.validation_file={data}"]
GOOD = jsonl(record(n) for n in range(4))
CASES = [
    ("wrong type", ["trainer.epochs=abc"], None, 1, ["trainer.epochs", "abc", "Integer"]),
    ("unknown key", ["model.nonexistent=1"], None, 2, ["unknown config key", "model.nonexistent", "checkpoint"]),
    ("added unknown key", ["+trainer.foo=1"], None, 2, ["unknown config key", "trainer.foo", "epochs"]),
    ("unknown group option", ["model=nope"], None, 2, ["model=nope", "not an option", "tiny", "roberta-base"]),
    ("lr zero", ["optimizer.lr=0"], None, 2, ["optimizer.lr=0", "> 0"]),
    ("negative epochs", ["trainer.epochs=-1"], None, 2, ["trainer.epochs=-1", ">= 0"]),
    ("batch size zero", ["trainer.batch_size=0"], None, 2, ["trainer.batch_size=0", ">= 1"]),
    ("warmup ratio one", ["optimizer=adamw", "optimizer.warmup_ratio=1"], None, 2,
     ["optimizer.warmup_ratio=1", "[0, 1)"]),
    ("unknown precision", ["precision.policy=float8"], None, 2, ["precision.policy", "float8", "mixed_float16"]),
    ("doc_stride >= max_length", ["data.doc_stride=128"], None, 2, ["data.doc_stride=128", "data.max_length=128"]),
    ("no room for the question", ["data.doc_stride=120"], None, 2, ["data.doc_stride=120", "no room", "< 116"]),
    ("max_length over the position limit", ["data.max_length=1024"], None, 2,
     ["data.max_length=1024", "[1, 512]", "max_position_embeddings"]),
    ("json without files", ["data=json"], None, 2, ["data.train_file"]),
    ("missing data file", ["data=json", "data.train_file=/nonexistent/train.json"], None, 2,
     ["not found", "/nonexistent/train.json"]),
    ("invalid JSON", JSON_DATA, '{"data": [\n  {"title": "x",\n   "paragraphs": ]}\n', 2,
     ["invalid JSON", "line 3, column"]),
    ("not SQuAD-shaped", JSON_DATA, json.dumps({"data": [{"title": "x"}]}), 2, ["data[0]", "'paragraphs'"]),
    ("record missing a key", JSON_DATA, jsonl([record(0), {"id": "x", "context": "c", "answers": []}]), 2,
     ["line 2", "'question'"]),
    ("record not an object", JSON_DATA, json.dumps([record(0), "just a string"]), 2, ["record 2", "JSON object"]),
    ("empty context", JSON_DATA, jsonl([record(0), record(1, context=" ")]), 2,
     ["record 'q1' has an empty context: ", "fill them in or remove those records"]),
    ("duplicate ids", JSON_DATA, jsonl([record(0), record(0)]), 2, ["duplicate id", "'q0'"]),
    ("answer not at answer_start", [*JSON_DATA, "data.on_bad_answer=error"],
     jsonl([record(0, answers={"text": ["Lyon"], "answer_start": [3]})]), 2,
     ["'q0'", "answer_start=3", "data.on_bad_answer"]),
    ("empty after skipping", [*JSON_DATA, "data.on_bad_answer=skip"],
     jsonl([record(0, answers={"text": ["Rome"], "answer_start": [3]})]), 2, ["empty after validation"]),
    ("answer_start not an int", JSON_DATA, jsonl([record(0, answers={"text": ["Lyon"], "answer_start": ["x"]})]),
     2, ["answer_start", "integer"]),
    ("answer lists differ", JSON_DATA,
     jsonl([record(0, answers={"text": ["Lyon", "Paris"], "answer_start": [26]})]), 2, ["pair up"]),
    ("non-UTF-8", JSON_DATA, json.dumps([record(0, question="Où a grandi Ada?")], ensure_ascii=False)
     .encode("latin-1"), 2, ["not UTF-8"]),
    ("empty file", JSON_DATA, "", 2, ["is empty"]),
    ("bad on_bad_answer", [*JSON_DATA, "data.on_bad_answer=maybe"], GOOD, 2,
     ["data.on_bad_answer='maybe'", "error, skip, fix"]),
    ("bad architecture", ["model.architecture.num_attention_heads=3"], None, 2,
     ["num_attention_heads=3", "multiple"]),
    # ---- numbers at their edges (every key's range: tests/unit/test_limits.py) ----
    ("lr NaN", ["optimizer.lr=nan"], None, 2, ["optimizer.lr=nan", "finite", "(valid: (0, inf))"]),
    ("threshold infinite", ["data.null_score_diff_threshold=inf"], None, 2,
     ["data.null_score_diff_threshold=inf", "finite"]),
    ("absurd batch size", ["trainer.batch_size=1000000000000"], None, 2,
     ["trainer.batch_size=1000000000000", "<= 65536", "[1, 65536]"]),
    ("negative seed", ["trainer.seed=-1"], None, 2, ["trainer.seed=-1", ">= 0", "[0, 4294967295]"]),
    ("architecture size not a number", ["model.architecture.hidden_size=big"], None, 2,
     ["model.architecture.hidden_size='big'", "must be an integer"]),
    # ---- path keys at a directory, a file, an empty directory ----
    ("cache dir is a file", ["data.cache=true", "data.cache_dir={data}"], "", 2,
     ["data.cache_dir=", "is a file, not a directory", "data.cache=false"]),
    ("log dir is a file", ["logger=tensorboard", "logger.log_dir={data}"], "", 2,
     ["logger.log_dir=", "is a file, not a directory"]),
    ("data file is a directory", [*JSON_DATA[:2], "data.validation_file={tmp}"], GOOD, 2,
     ["data file is a directory", "{tmp}"]),
    ("checkpoint is an empty directory", ["model.from_scratch=false", "model.checkpoint={tmp}/empty"], None, 2,
     ["{tmp}/empty", "no config.json"]),
    ("checkpoint is a file", ["model.from_scratch=false", "model.checkpoint={data}"], "{}", 2,
     ["model.checkpoint=", "is not an existing directory"]),
    # ---- data at its edges (more in tests/unit/test_data_edges.py) ----
    ("unanswerable without the v2 flag", JSON_DATA, jsonl([record(0), record(1, answers={"text": [],
                                                                                        "answer_start": []})]),
     2, ["1 unanswerable question(s)", "'q1'", "data.version_2_with_negative=true"]),
    ("answer_start a string", JSON_DATA, jsonl([record(0, answers={"text": ["Lyon"], "answer_start": ["26"]})]),
     2, ["answer_start '26' is a string", "without quotes"]),
    ("predict a CSV file", ["qaexp.predict", "{tmp}", "--file", "{data}"], "id,context,question\nq0,Ada.,Who?\n",
     2, ["is not JSON (it begins 'id,context,question')", "convert a CSV to JSON lines"]),
    ("predict a directory", ["qaexp.predict", "{tmp}", "--file", "{tmp}"], None, 2,
     ["data file is a directory", "{tmp}"]),
]

# Mistyped keys and group options on the command line, refused before Hydra runs (suggestions.override_problem).
BEFORE_HYDRA = {"unknown key", "added unknown key", "unknown group option"}


# Cases whose error the run raises (after Hydra composed the config) go through the CLI for one case of each
# error class; the others run in this process (`in_process`), through the function the CLI calls, at a tenth
# of the cost of a CLI process each. Hydra's own errors, the refusals before Hydra and the tools stay CLI.
CLI_OF_ERROR_CLASS = {"ConfigError": "lr zero", "DataError": "missing data file",
                      "ModelLoadError": "checkpoint is an empty directory"}
IN_PROCESS_CASES = {c[0] for c in CASES if c[3] == 2 and c[0] not in BEFORE_HYDRA and not c[1][0].startswith("qaexp.")
                    and c[0] not in CLI_OF_ERROR_CLASS.values()}


def case_args(overrides, data, tmp_path) -> list[str]:
    """The case's `python -m qaexp` arguments (with the tiny model), or the tool and its arguments."""
    args = [o.format(data=data, tmp=tmp_path) for o in overrides]
    if args[0].startswith("qaexp."):
        return args
    dataset = [] if any(o.startswith("data=") for o in overrides) else ["data=synthetic"]
    return [*TINY, *dataset, *args]


def run_case(overrides, data, tmp_path, run_dir):
    """The case's command: `python -m qaexp` with the tiny model, or the tool its first word names."""
    args = case_args(overrides, data, tmp_path)
    if args[0].startswith("qaexp."):
        return run_cli(["-m", *args], timeout=300)
    return qaexp(args, run_dir)


def in_process(overrides, data, tmp_path, run_dir, monkeypatch, capsys):
    """What `python -m qaexp` does with the case, in this process: Hydra composes the config, the run directory
    exists, qaexp.run.experiment.run (what the CLI's main calls) raises, and qaexp.errors.report_error prints the
    error line and gives the exit status. Reaching TensorFlow's import fails the test (the CLI cases check that
    stderr shows no TensorFlow). Returns what the CLI's CompletedProcess would hold."""
    from qaexp.errors import report_error
    from qaexp.errors import QAExpError
    from qaexp.run import experiment
    from qaexp.runtime import process

    def tensorflow_reached(*args, **kwargs):
        raise AssertionError("failed only after importing TensorFlow")

    monkeypatch.setattr(process, "prepare", tensorflow_reached)
    cfg = compose(case_args(overrides, data, tmp_path))
    run_dir.mkdir()
    capsys.readouterr()
    with pytest.raises(QAExpError) as info:
        experiment.run(cfg, str(run_dir))
    # a class no CLI case shows: move this case to CLI_OF_ERROR_CLASS
    assert type(info.value).__name__ in CLI_OF_ERROR_CLASS, type(info.value)
    status = report_error(info.value)
    return SimpleNamespace(returncode=status, stderr=capsys.readouterr().err)


@pytest.mark.parametrize("case, overrides, content, status, words", CASES, ids=[c[0] for c in CASES])
def test_bad_input_gives_one_clear_error(tmp_path, monkeypatch, capsys, case, overrides, content, status, words):
    data = tmp_path / "data.json"
    if content is not None:
        data.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    (tmp_path / "empty").mkdir()
    run_dir = tmp_path / "run"
    started = time.monotonic()
    if case in IN_PROCESS_CASES:
        result = in_process(overrides, data, tmp_path, run_dir, monkeypatch, capsys)
    else:
        result = run_case(overrides, data, tmp_path, run_dir)
    words = [word.format(tmp=tmp_path) for word in words]
    assert result.returncode == status, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    for word in words:
        assert word in result.stderr, f"{word!r} not in: {result.stderr[-2000:]}"
    assert "tensorflow" not in result.stderr.lower(), "failed only after importing TensorFlow"
    assert time.monotonic() - started < 60
    if overrides[0].startswith("qaexp."):  # a tool: one line, and no run directory
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
        return
    if case in BEFORE_HYDRA:  # refused before Hydra composes anything: no run directory at all
        assert not run_dir.exists() and len(result.stderr.strip().splitlines()) == 1, result.stderr
        return
    outcome = metrics(run_dir)
    assert outcome is None or outcome["status"] == "failed"
    if status == 2:  # a qaexp error, raised once Hydra had made the run directory: recorded there
        assert outcome["status"] == "failed" and words[-1] in outcome["error"]
        assert not (run_dir / "predictions.json").exists()


@pytest.mark.parametrize("multirun", [False, True])
def test_an_output_directory_that_cannot_be_made_is_one_line(tmp_path, multirun):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    key = "hydra.sweep.dir" if multirun else "hydra.run.dir"
    result = run_cli(["-m", "qaexp", *(["-m"] if multirun else []), "experiment=quickstart",
                      f"{key}={blocker}/runs/${{now:%H-%M-%S}}"], timeout=120)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        f"qaexp: error: cannot create the output directory {blocker}/runs/ (Not a directory): set {key} to a "
        "writable directory"]


def test_validation_and_data_loading_do_not_import_tensorflow(tmp_path):
    data = tmp_path / "d.jsonl"
    data.write_text(GOOD)
    code = ("import sys; import qaexp.__main__, qaexp.run.experiment; from qaexp.config.validation import validate; "
            "from qaexp.data.squad import load_splits; from hydra import compose, initialize_config_dir; "
            f"initialize_config_dir(config_dir={str(REPO / 'conf')!r}, version_base='1.3'); "
            f"cfg = compose('config', overrides=['model=tiny', 'data=json', 'data.train_file={data}', "
            f"'data.validation_file={data}']); validate(cfg); load_splits(cfg.data); "
            "heavy = [m for m in ('tensorflow', 'keras', 'transformers', 'wandb') if m in sys.modules]; "
            "print('heavy:', heavy)")
    result = run_cli(["-c", code], timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "heavy: []" in result.stdout


def test_the_table_is_large_enough():
    assert len(CASES) >= 40 and len({c[0] for c in CASES}) == len(CASES)
    assert set(CLI_OF_ERROR_CLASS.values()) <= {c[0] for c in CASES} - IN_PROCESS_CASES


def test_an_unreadable_data_file_is_one_line(tmp_path):
    data = tmp_path / "data.jsonl"
    data.write_text(GOOD)
    data.chmod(0)
    try:
        try:
            data.read_text()
        except PermissionError:
            pass
        else:
            pytest.skip("this process reads files whatever their permissions (running as root): nothing to detect")
        result = qaexp([*TINY, "data=json", f"data.train_file={data}", f"data.validation_file={data}"],
                       tmp_path / "run")
    finally:
        data.chmod(0o600)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert f"qaexp: error: cannot read data file {data} (Permission denied): check its permissions" in result.stderr


# ---- outcome recording and signals (in-process, with the experiment itself replaced) ---------------------------


def run_with(monkeypatch, tmp_path, body):
    from qaexp.run import experiment

    monkeypatch.setattr(experiment, "_run", body)
    return experiment.run(None, str(tmp_path))


def test_failure_is_recorded_and_signal_handlers_restored(monkeypatch, tmp_path):
    from qaexp.errors import DataError

    before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    during = []

    def failing(cfg, run_dir, progress):
        during.append((signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)))
        raise DataError("the data is bad")

    with pytest.raises(DataError):
        run_with(monkeypatch, tmp_path, failing)
    assert during[0] != before
    assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)) == before
    assert metrics(tmp_path) == {"status": "failed", "error": "the data is bad", "seconds": {}}


def test_a_failure_after_the_results_keeps_them_but_not_completed(monkeypatch, tmp_path):
    from qaexp.errors import QAExpError

    def fails_after_results(cfg, run_dir, progress):
        progress.summary = {"status": "completed", "f1": 51.5}
        raise QAExpError("upload refused")

    with pytest.raises(QAExpError):
        run_with(monkeypatch, tmp_path, fails_after_results)
    assert metrics(tmp_path)["status"] == "failed" and metrics(tmp_path)["f1"] == 51.5


def test_sigterm_becomes_an_interrupt_with_exit_code_143(monkeypatch, tmp_path):
    from qaexp.errors import RunInterrupted

    def terminated(cfg, run_dir, progress):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(10)  # the handler raises before this ends
        raise AssertionError("SIGTERM did not interrupt the run")

    with pytest.raises(RunInterrupted) as caught:
        run_with(monkeypatch, tmp_path, terminated)
    assert caught.value.exit_code == 143 and isinstance(caught.value, KeyboardInterrupt)
    outcome = metrics(tmp_path)
    assert outcome["status"] == "interrupted" and outcome["signal"] == "SIGTERM"
    assert outcome["checkpoint"] is None  # interrupted before training: nothing to save


# ---- results survive failures --------------------------------------------------------------------------------


def test_failed_save_keeps_the_previous_model_and_names_the_path(tmp_path):
    from qaexp.errors import StorageError
    from qaexp.output.files import save_directory_atomic

    target = tmp_path / "model"
    save_directory_atomic(str(target), lambda d: open(os.path.join(d, "weights"), "w").write("old"))

    def disk_full(directory):
        open(os.path.join(directory, "weights"), "w").write("half")
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(StorageError, match=f"no space left.*{re.escape(str(target))}"):
        save_directory_atomic(str(target), disk_full)
    assert (target / "weights").read_text() == "old"
    assert sorted(os.listdir(tmp_path)) == ["model"], "temporary directory left behind"


def test_failed_metrics_write_names_the_path(tmp_path, monkeypatch):
    from qaexp.output import files
    from qaexp.errors import StorageError

    path = tmp_path / "metrics.json"
    files.write_json_atomic(str(path), {"status": "completed"})

    def disk_full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(files.json, "dump", disk_full)
    with pytest.raises(StorageError, match=re.escape(str(path))):
        files.write_json_atomic(str(path), {"status": "failed"})
    assert json.loads(path.read_text()) == {"status": "completed"}
    assert os.listdir(tmp_path) == ["metrics.json"]


@pytest.mark.parametrize("failure", ["oserror", "tf"])
def test_failed_checkpoint_keeps_the_previous_one(tmp_path, monkeypatch, failure):
    import tensorflow as tf
    import keras

    from qaexp.errors import StorageError
    from qaexp.training.state import RunState, model_variables

    model = keras.Sequential([keras.layers.Dense(2)])
    model.build((None, 3))
    optimizer = keras.optimizers.Adam()
    state = RunState(str(tmp_path / "checkpoints"), model, optimizer, steps_per_epoch=10, epochs=1)
    state.start(resume=False)
    state.save()
    saved = [w.numpy() for w in model.weights]
    previous = state.latest.latest_checkpoint
    for weight in model.weights:
        weight.assign(weight + 1.0)

    def disk_full(self, *args, **kwargs):  # Checkpoint._write is what CheckpointManager.save calls
        if failure == "oserror":
            raise OSError(errno.ENOSPC, "No space left on device")
        raise tf.errors.ResourceExhaustedError(None, None, "No space left on device")

    monkeypatch.setattr(tf.train.Checkpoint, "_write", disk_full)
    with pytest.raises(StorageError, match=f"no space left.*{re.escape(str(tmp_path / 'checkpoints'))}"):
        state.save()
    monkeypatch.undo()
    assert tf.train.latest_checkpoint(str(tmp_path / "checkpoints" / "latest")) == previous
    tf.train.Checkpoint(model=model_variables(model)).restore(previous).expect_partial()
    for weight, value in zip(model.weights, saved):
        assert (weight.numpy() == value).all()


def test_a_checkpoint_of_other_objects_is_one_line_with_no_tensorflow_warnings_after_it(tmp_path, caplog):
    """TensorFlow warns, when a checkpoint object it restored partly is deleted, about the values it left
    ("... being deleted with unrestored values"): those lines followed the run's one-line error."""
    import gc
    import logging

    import tensorflow as tf

    from qaexp.errors import CheckpointError
    from qaexp.training.state import restore_matching

    saved = tf.train.Checkpoint(a=tf.Variable(1.0), b=tf.Variable(2.0)).save(str(tmp_path / "ckpt"))
    other = tf.train.Checkpoint(a=tf.Variable(0.0), c=tf.Variable(0.0))  # `c` is not in it, `b` not restored
    with caplog.at_level(logging.WARNING), pytest.raises(CheckpointError, match="saved by a different model"):
        restore_matching(other, saved)
    del other
    gc.collect()
    assert "unrestored" not in caplog.text and "could not be found" not in caplog.text, caplog.text


# ---- model limits and trust_remote_code ------------------------------------------------------------------------


def test_checkpoint_position_limit_is_checked_before_training():
    from qaexp.errors import ConfigError
    from qaexp.run.experiment import _check_model_limit, _check_tokenizer_limit

    cfg = SimpleNamespace(model=SimpleNamespace(checkpoint="some/roberta"), data=SimpleNamespace(max_length=513))
    roberta = SimpleNamespace(hf_config={"model_type": "roberta", "max_position_embeddings": 514})
    with pytest.raises(ConfigError, match=r"data.max_length=513 .*\[1, 512\].*some/roberta"):
        _check_model_limit(cfg, roberta)
    with pytest.raises(ConfigError, match=r"\[1, 256\].*tokenizer"):
        _check_tokenizer_limit(cfg, SimpleNamespace(model_max_length=256))
    _check_tokenizer_limit(cfg, SimpleNamespace(model_max_length=int(1e30)))  # no limit known: fine
    cfg.data.max_length = 512  # RoBERTa numbers positions from 2: 514 embeddings, 512 positions
    _check_model_limit(cfg, roberta)


@pytest.mark.parametrize("trust", [False, True])
def test_trust_remote_code_is_passed_to_the_tokenizer(monkeypatch, tmp_path, trust):
    import transformers
    from omegaconf import OmegaConf

    from qaexp.model import build

    seen = {}

    class Stop(Exception):
        pass

    def fake_from_pretrained(checkpoint, **kwargs):
        seen["tokenizer"] = kwargs.get("trust_remote_code")
        raise Stop

    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", fake_from_pretrained)
    (tmp_path / "config.json").write_text("{}")
    cfg = OmegaConf.create({"checkpoint": str(tmp_path), "trust_remote_code": trust, "random_init": False,
                            "padding_side": "right"})
    with pytest.raises(Stop):
        build.build_tokenizer(cfg)
    assert seen == {"tokenizer": trust}


def custom_checkpoint(directory):
    """A checkpoint whose config.json names a model_type qaexp has no Keras 3 model for, and whose repository
    code, if anything imported it, would leave a file IMPORTED beside it."""
    from safetensors.numpy import save_file

    from qaexp.model.build import train_wordpiece_tokenizer

    train_wordpiece_tokenizer([CONTEXT.format(n=n) for n in range(50)], 200, True).save_pretrained(directory)
    save_file({"custom.embeddings.weight": np.zeros((200, 8), np.float32)}, str(directory / "model.safetensors"))
    (directory / "config.json").write_text(json.dumps({
        "model_type": "my-custom-qa", "architectures": ["CustomForQuestionAnswering"],
        "auto_map": {"AutoModelForQuestionAnswering": "modeling_custom.CustomForQuestionAnswering"}}))
    (directory / "modeling_custom.py").write_text(
        "import pathlib\npathlib.Path(__file__).with_name('IMPORTED').write_text('repository code ran')\n")
    return directory


def assert_names_the_model_types(line: str) -> None:
    from qaexp.model.families import MODEL_TYPES

    assert "'my-custom-qa'" in line and "config.json" in line, line
    assert all(model_type in line for model_type in MODEL_TYPES), line  # the types a checkpoint may have


@pytest.mark.slow
def test_a_model_type_without_a_keras_model_is_one_line_and_runs_no_repository_code(tmp_path):
    """The model is always qaexp's own Keras 3 model for config.json's model_type: a checkpoint of another type
    is refused with the supported types, and model.trust_remote_code=true does not import the repository's
    modeling code in its place (it only reaches the tokenizer)."""
    checkpoint = custom_checkpoint(tmp_path / "custom")
    run_dir = tmp_path / "run"
    result = qaexp(["experiment=quickstart", "data.num_train=20", "data.num_validation=8", "trainer.epochs=0",
                    f"model.checkpoint={checkpoint}", "model.trust_remote_code=true"], run_dir)
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("qaexp: error: "), last
    assert_names_the_model_types(last)
    assert not (checkpoint / "IMPORTED").exists()
    assert metrics(run_dir)["status"] == "failed"


def test_a_model_type_without_a_keras_model_is_refused_without_trust_too(tmp_path):
    """model.trust_remote_code=false, in this process: the tokenizer and model loaders a run calls refuse the
    checkpoint with the QAExpError the CLI prints as its one line (the test above shows the CLI printing it)."""
    from omegaconf import OmegaConf

    from qaexp.errors import QAExpError
    from qaexp.model import build

    checkpoint = custom_checkpoint(tmp_path / "custom")
    model_cfg = OmegaConf.create({"checkpoint": str(checkpoint), "revision": None, "trust_remote_code": False,
                                  "random_init": False, "padding_side": "right"})
    with pytest.raises(QAExpError) as info:
        build.build_model(model_cfg, build.build_tokenizer(model_cfg))
    message = str(info.value)
    assert len(message.splitlines()) == 1, message
    assert_names_the_model_types(message)
    assert not (checkpoint / "IMPORTED").exists()


# ---- runs that train ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def train_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "train.jsonl"
    records = [record(n) for n in range(1500)]
    # Within the first 200 (the training records of completed_run), after the first 40 (its evaluation records).
    records[100]["question"] = "Where " + "did Ada really " * 40 + "grow up?"
    path.write_text(jsonl(records))
    return path


def data_args(train_file, eval_samples=40):
    return ["data=json", f"data.train_file={train_file}", f"data.validation_file={train_file}",
            f"data.max_eval_samples={eval_samples}"]


# Keras 3's progress bar: "step/steps" (bold on a terminal's escape codes) then the bar's "━" characters.
KERAS_PROGRESS = r"\d+/\d+(\x1b\[[0-9;]*m)* (\x1b\[[0-9;]*m)*━"


class Output:
    """Collects a process's stdout in the background so the test can wait for a pattern in it."""

    def __init__(self, stream):
        self.text, self._stream = "", stream
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self):
        for chunk in iter(lambda: self._stream.read1(4096), b""):
            self.text += chunk.decode("utf-8", "replace")

    def wait_for(self, pattern, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if re.search(pattern, self.text):
                return True
            time.sleep(0.2)
        return False


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_interrupted_run_saves_a_checkpoint_and_says_so(tmp_path, train_file, signum):
    run_dir = tmp_path / "run"
    # 100 epochs: an epoch of the tiny model takes seconds, so the run is still training when the signal comes.
    args = [*TINY, *data_args(train_file), "trainer.batch_size=4", "trainer.epochs=100", "trainer.verbose=1",
            "logger=none"]
    process = popen_cli(["-m", "qaexp", *args, f"hydra.run.dir={run_dir}"], text=False)
    stdout, errors = Output(process.stdout), Output(process.stderr)
    try:
        assert stdout.wait_for(KERAS_PROGRESS, timeout=240), "training never started:\n" + stdout.text[-2000:]
        process.send_signal(signum)
        process.wait(timeout=120)
    finally:
        process.kill()
    errors.wait_for(r"interrupted by", timeout=5)  # the reader thread may lag the exit a little
    stderr = errors.text
    assert process.returncode == 128 + signum, stderr[-2000:]
    assert "Traceback" not in stderr
    assert f"qaexp: interrupted by {signum.name}" in stderr.strip().splitlines()[-1]
    outcome = metrics(run_dir)
    assert outcome["status"] == "interrupted" and outcome["signal"] == signum.name
    assert "train" not in outcome["seconds"], "the interrupted stage was recorded as finished"
    assert os.path.exists(outcome["checkpoint"] + ".index")
    assert outcome["optimizer_steps"] >= 1
    assert "trainer.resume=true" in outcome["resume"]
    assert not (run_dir / "model").exists() and not (run_dir / "predictions.json").exists()
    assert not list(run_dir.rglob(".tmp-*")), "a temporary file or directory was left behind"
    # the tokenizer saved for resuming, before training began, is whole
    assert (run_dir / "checkpoints" / "tokenizer" / "tokenizer.json").stat().st_size > 0


@pytest.mark.slow
def test_divergence_stops_with_a_clear_message(tmp_path, train_file):
    run_dir = tmp_path / "run"
    # lr=1e30 overflows the attention scores on the second step: the loss becomes NaN at once.
    result = qaexp([*TINY, *data_args(train_file), "optimizer.lr=1e30", "trainer.verbose=0"], run_dir)
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    assert re.search(r"training diverged: the loss became (nan|inf) at epoch 1, step \d+; lower optimizer.lr",
                     result.stderr)
    outcome = metrics(run_dir)
    assert outcome["status"] == "diverged" and "optimizer.lr" in outcome["error"]
    assert not (run_dir / "model").exists() and not (run_dir / "predictions.json").exists()


@pytest.fixture(scope="module")
def completed_run(tmp_path_factory, train_file):
    """One short run with secrets in the environment, W&B (offline), fp16 on a CPU and an over-long question."""
    run_dir = tmp_path_factory.mktemp("completed") / "run"
    args = [*TINY, *data_args(train_file), "data.max_train_samples=200", "precision=mixed_float16",
            "logger=wandb", "logger.mode=offline", "trainer.verbose=0"]
    result = qaexp(args, run_dir, env=SECRETS)
    assert result.returncode == 0, result.stderr[-3000:]
    return run_dir, result


@pytest.mark.slow
def test_completed_run_records_completion(completed_run):
    run_dir, _ = completed_run
    assert metrics(run_dir)["status"] == "completed"
    assert (run_dir / "model" / "config.json").exists()


@pytest.mark.slow
def test_secrets_are_written_nowhere(completed_run):
    run_dir, result = completed_run
    written = [path for path in run_dir.rglob("*") if path.is_file()]
    assert any("wandb" in path.parts for path in written), "the W&B run wrote nothing: the test checks too little"
    assert (run_dir / ".hydra" / "config.yaml") in written and (run_dir / "model" / "README.md") in written
    for secret in SECRETS.values():
        assert secret not in result.stdout and secret not in result.stderr
        for path in written:
            assert secret.encode() not in path.read_bytes(), f"{secret} leaked into {path}"


@pytest.mark.slow
def test_overlong_question_is_truncated_with_a_warning(completed_run):
    _, result = completed_run
    warnings = re.findall(r"(\d+) question\(s\) longer than \d+ tokens were truncated", result.stdout)
    assert warnings == ["1"], result.stdout[-3000:]  # the training split; the evaluation split is cut to 40


@pytest.mark.slow
def test_fp16_without_a_gpu_warns_and_still_runs(completed_run):
    run_dir, result = completed_run
    assert "precision=mixed_float16 requested but no GPU is visible" in result.stdout
    assert metrics(run_dir)["status"] == "completed"


@pytest.mark.parametrize("value, first_line", [
    # zsh (and bash in POSIX mode) passes '~' on as it is: Hydra's grammar refused it and qaexp advised quoting
    ("~/run", "qaexp: error: hydra.run.dir=~/run: Hydra does not expand '~' (this shell passed it on as it is): "
              "write the home directory as $HOME, hydra.run.dir=$HOME/run, which the shell expands"),
    # quoted, Hydra makes a folder named '~' here, while the check for an earlier run looked in the home directory
    ('"~/run"', "qaexp: error: hydra.run.dir=~/run: Hydra does not expand '~' (the run would go to a folder named "
                "'~' in CWD): write hydra.run.dir=$HOME/run on the command line (the shell expands it), or "
                "${oc.env:HOME}/run in a config file"),
])
def test_a_run_directory_under_an_unexpanded_home_is_one_line_that_names_home(tmp_path, value, first_line):
    home = tmp_path / "home"
    home.mkdir()
    result = run_cli(["-m", "qaexp", "experiment=quickstart", f"hydra.run.dir={value}"], cwd=tmp_path,
                     env={"HOME": str(home)}, timeout=120)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.strip().splitlines() == [first_line.replace("CWD", str(tmp_path))]
    assert sorted(os.listdir(tmp_path)) == ["home"] and os.listdir(home) == []


def test_a_quoted_run_directory_is_made_where_hydra_makes_it_without_the_quotes(tmp_path):
    """The output root was made from the command line's text, quotes and all: a stray folder named '"runs'."""
    result = run_cli(["-m", "qaexp", "experiment=quickstart", "data=json", "data.train_file=absent.json",
                      'hydra.run.dir="runs/a b"'], cwd=tmp_path, timeout=120)
    assert result.returncode == 2 and "absent.json" in result.stderr
    assert os.listdir(tmp_path) == ["runs"] and os.listdir(tmp_path / "runs") == ["a b"]
    assert json.loads((tmp_path / "runs" / "a b" / "metrics.json").read_text())["status"] == "failed"


@pytest.mark.parametrize("multirun", [False, True], ids=["run", "sweep"])
def test_an_output_directory_under_home_in_a_users_config_file_is_the_same_one_line(tmp_path, multirun):
    key = "sweep" if multirun else "run"
    (tmp_path / "mine" / "experiment").mkdir(parents=True)
    (tmp_path / "mine" / "experiment" / "home.yaml").write_text(
        f"# @package _global_\ndefaults:\n  - quickstart\n  - _self_\nhydra:\n  {key}:\n    dir: ~/runs\n")
    result = run_cli(["-m", "qaexp", *(["-m"] if multirun else []), "--config-dir", str(tmp_path / "mine"),
                      "experiment=home"], cwd=tmp_path, timeout=120)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        f"qaexp: error: hydra.{key}.dir=~/runs: Hydra does not expand '~' (the run would go to a folder named '~' in "
        f"{tmp_path}): write hydra.{key}.dir=$HOME/runs on the command line (the shell expands it), or "
        "${oc.env:HOME}/runs in a config file")
    assert sorted(os.listdir(tmp_path)) == ["mine"]
