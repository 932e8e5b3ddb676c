"""A saved model's tokenizer files are checked like its weights: a missing or altered one stops predict, serve,
export and an evaluation run with one line naming the file and the directory, where transformers would otherwise
load a tokenizer that knows only its special tokens and the model would answer wrongly with exit status 0.

Each case damages a copy of the shared tiny model (trained_tiny_model). predict is run through its CLI once; the
other cases call what every tool loads a model directory with (model.saved.load_saved: predict, serve, export;
model.build.build_tokenizer: a run's model.checkpoint=) in this process.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from helpers.cli import run_cli
from qaexp.errors import QAExpError
from qaexp.model import build
from qaexp.model.saved import load_saved
from qaexp.output.manifest import MANIFEST, write_manifest

TOKENIZER_FILES = ["tokenizer.json", "tokenizer_config.json"]  # what the tiny model's tokenizer.save_pretrained writes


def model_copy(trained_tiny_model: Path, root: Path) -> Path:
    directory = root / "model"
    shutil.copytree(trained_tiny_model / "model", directory)
    return directory


def flip_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def one_line_error(read) -> str:
    with pytest.raises(QAExpError) as raised:  # the tools print a QAExpError as their one line, exit status 2
        read()
    message = str(raised.value)
    assert "\n" not in message, message
    return message


def tokenizer_of(directory: Path):
    """What a run with model.checkpoint=DIRECTORY loads its tokenizer with."""
    return build.build_tokenizer(OmegaConf.create({"checkpoint": str(directory), "padding_side": "right",
                                                   "trust_remote_code": False}))


def test_the_saved_model_lists_its_tokenizer_files_beside_its_weights(trained_tiny_model):
    listed = json.loads((trained_tiny_model / "model" / MANIFEST).read_text())["files"]
    assert sorted(listed) == sorted(["model.safetensors", *TOKENIZER_FILES])


def test_predict_with_the_tokenizer_json_missing_is_one_line_naming_it(trained_tiny_model, tmp_path):
    model = model_copy(trained_tiny_model, tmp_path)
    (model / "tokenizer.json").unlink()
    result = run_cli(["-m", "qaexp.predict", str(model), "--question", "Where did Ada grow up?",
                      "--context", "Ada grew up in Lyon."])
    assert result.returncode == 2 and result.stdout == "", result.stdout + result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(f"qaexp predict: error: {model}: tokenizer.json is missing: the saved model is damaged")


@pytest.mark.parametrize("reader", ["load_saved", "build_tokenizer"])
def test_an_altered_tokenizer_file_is_refused_by_every_tool_s_loader(trained_tiny_model, tmp_path, reader):
    model = model_copy(trained_tiny_model, tmp_path)
    flip_byte(model / "tokenizer_config.json")
    read = {"load_saved": lambda: load_saved(str(model)), "build_tokenizer": lambda: tokenizer_of(model)}[reader]
    message = one_line_error(read)
    assert message.startswith(f"{model}: tokenizer_config.json differs from what was written"), message


@pytest.mark.parametrize("manifest", ["weights only (saved before the tokenizer was listed)", "none (not qaexp's)"])
def test_older_and_foreign_model_directories_still_load(trained_tiny_model, tmp_path, manifest):
    model = model_copy(trained_tiny_model, tmp_path)
    (model / MANIFEST).unlink()
    if manifest.startswith("weights only"):
        write_manifest(str(model), ["model.safetensors"])
    saved = load_saved(str(model))
    assert len(saved.tokenizer) == len(tokenizer_of(trained_tiny_model / "model")) > 5


@pytest.mark.parametrize("missing, words", [
    ("tokenizer.json", ["knows only its 5 special tokens", "it has no tokenizer.json"]),
    ("tokenizer_config.json", ["it has no tokenizer_config.json", "model_type 'roformer'"]),
])
def test_a_tokenizer_file_missing_without_a_manifest_is_named(trained_tiny_model, tmp_path, missing, words):
    """Without checksums to compare, what transformers does without the file is caught: a vocabulary of the special
    tokens alone, or a fallback class whose package it asks to install (rjieba), which is not the problem."""
    model = model_copy(trained_tiny_model, tmp_path)
    (model / MANIFEST).unlink()
    (model / missing).unlink()
    message = one_line_error(lambda: tokenizer_of(model))
    assert str(model) in message and "pip install" not in message and "rjieba" not in message, message
    for word in words:
        assert word in message, message
