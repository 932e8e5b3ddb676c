"""qaexp.rundir: every file of a run directory named in one place, and read with one checked reader (a damaged file
is one line that names it and says what to do, wherever it is read)."""
from __future__ import annotations

import json
import re

import pytest

from qaexp import rundir
from qaexp.errors import InputError

NAMED = {name: getattr(rundir, name) for name in ("CONFIG", "OVERRIDES", "HYDRA", "METRICS", "PREDICTIONS", "NBEST",
                                                  "NULL_ODDS", "JOB", "EXTRA_EVAL", "LOG", "MODEL", "SETTINGS",
                                                  "CHECKPOINTS", "TOKENIZER")}


def test_the_docstring_table_names_every_file_constant():
    table = rundir.__doc__
    for name, path in NAMED.items():
        assert re.search(rf"\b{name}\b", table), f"{name} is missing from rundir's table"
        assert path.split("/")[-1] in table, path


def test_a_real_run_writes_the_files_under_the_names_given_here(tiny_run):
    run = tiny_run / "run"
    for name in ("CONFIG", "OVERRIDES", "HYDRA", "METRICS", "PREDICTIONS", "NBEST", "LOG", "MODEL"):
        assert (run / NAMED[name]).exists(), f"{name} ({NAMED[name]}) not in a finished run"
    assert (run / rundir.MODEL / rundir.SETTINGS).is_file()
    assert not (run / rundir.CHECKPOINTS).exists()  # removed once the model is saved
    assert rundir.is_run_directory(str(run)) and rundir.read_config(str(run)).model is not None
    assert rundir.read_json(str(run / rundir.METRICS))["status"] == "completed"


def test_a_directory_that_is_not_a_run_is_one_line_or_none_when_optional(tmp_path):
    with pytest.raises(InputError, match=r"is not a qaexp run directory \(no \.hydra/config\.yaml\)"):
        rundir.read_config(str(tmp_path))
    assert rundir.read_config(str(tmp_path), optional=True) is None


@pytest.mark.parametrize("content, reason", [("{not json", "Expecting property name"), ("[1, 2]", "not a JSON object")])
def test_a_damaged_json_file_is_one_line_naming_it_with_the_fix_of_its_reader(tmp_path, content, reason):
    path = tmp_path / "metrics.json"
    path.write_text(content)
    with pytest.raises(InputError) as info:
        rundir.read_json(str(path))
    line = str(info.value)
    assert "\n" not in line and line.startswith(f"{path} is damaged (") and reason in line
    assert line.endswith("restore it, or leave its run directory out")
    with pytest.raises(InputError, match="delete it to fall back to the run config$"):
        rundir.read_json(str(path), fix="delete it to fall back to the run config")


def test_a_missing_file_reads_as_unreadable_not_as_a_traceback(tmp_path):
    with pytest.raises(InputError, match=r"is damaged \(.*No such file"):
        rundir.read_json(str(tmp_path / "absent.json"))


def test_each_reader_of_a_run_file_gives_the_same_line_for_the_same_damage(tmp_path):
    """metrics.json (the report, the sweep resume), model/qaexp.json (predict, serve, export) and predictions.json
    (the error analysis) all go through rundir.read_json."""
    from qaexp.analysis.run import _read_predictions
    from qaexp.model.saved import saved_settings
    from qaexp.run.outcome import load_outcome, read_outcome

    (tmp_path / rundir.METRICS).write_text("{")
    with pytest.raises(InputError, match=r"metrics\.json is damaged \("):
        load_outcome(str(tmp_path))
    assert read_outcome(str(tmp_path)) is None  # a run killed while writing it: no outcome yet, no error

    model = tmp_path / rundir.MODEL
    model.mkdir()
    (model / rundir.SETTINGS).write_text("{")
    with pytest.raises(InputError, match=r"qaexp\.json is damaged \(.*\): delete it to fall back to the run config$"):
        saved_settings(str(model))

    predictions = tmp_path / rundir.PREDICTIONS
    predictions.write_text(json.dumps(["not", "a", "mapping"]))
    with pytest.raises(InputError, match=r"predictions\.json is damaged \(not a JSON object\): run the evaluation"):
        _read_predictions(str(predictions))
