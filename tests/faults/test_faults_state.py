"""Damaged stored state, through the real CLIs: a damaged cache entry is rebuilt with one warning and the run gets
the results of a clean one; a damaged checkpoint or saved model stops with one line naming the file and what to
do. Never a traceback, never a run that goes on with random or damaged weights.

One reference run (trained, checkpoints kept, its own cache) is copied for each case and the copy damaged; the
CLI cases run two at a time. Each kind of failure (a rebuilt cache entry, a checkpoint that cannot be resumed, a
model that cannot be loaded, for training and for qaexp.predict) has at least one case through the CLI, which
shows that the run turns the error into one line, exit status 2 and a failed metrics.json; the other cases of a
kind call the function the run calls on the damaged files (the checkpoint and tokenizer readers, the model
loader) in this process and check the error it raises, which is what the CLI prints.
"""
from __future__ import annotations

import shutil
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pytest

from helpers.cli import run_cli
from helpers.repo import FIXTURES
from helpers.state_runs import RUN, metrics, results

pytestmark = pytest.mark.slow  # each case is a CLI process that imports TensorFlow


@pytest.fixture(scope="module")
def reference(reference_run) -> Path:
    """A completed run that kept its checkpoints; its window and tokenizer cache is `<root>/cache` (conftest)."""
    return reference_run


# ---- ways to damage a file --------------------------------------------------------------------------------------

def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def flip_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def window_entries(cache: Path) -> list[Path]:
    return [entry for entry in cache.iterdir() if entry.is_dir() and entry.name != "tokenizers"]


def tokenizer_entry(cache: Path) -> Path:
    (entry,) = [e for e in (cache / "tokenizers").iterdir() if e.is_dir()]
    return entry


# ---- model directories that qaexp did not save (no checksums): the loader's own checks ----------------------------

SHARD_BYTES = 40_000  # the tiny model's ~200 kB of weights in several shards


def save_sharded(tensors: dict, directory: Path) -> None:
    """`tensors` as transformers' save_pretrained shards them: model-0000i-of-0000N.safetensors and
    model.safetensors.index.json mapping every tensor to its shard."""
    import json

    from safetensors.numpy import save_file

    shards: list[dict] = [{}]
    for name, value in tensors.items():
        if shards[-1] and sum(v.nbytes for v in shards[-1].values()) + value.nbytes > SHARD_BYTES:
            shards.append({})
        shards[-1][name] = value
    weight_map = {}
    for i, shard in enumerate(shards, 1):
        file = f"model-{i:05d}-of-{len(shards):05d}.safetensors"
        save_file(shard, str(directory / file), metadata={"format": "pt"})
        weight_map.update(dict.fromkeys(shard, file))
    index = {"metadata": {"total_size": sum(v.nbytes for v in tensors.values())}, "weight_map": weight_map}
    (directory / "model.safetensors.index.json").write_text(json.dumps(index, indent=2))


@pytest.fixture(scope="module")
def other_models(reference, tmp_path_factory) -> Path:
    """Variants of the reference model that qaexp did not save (no qaexp-manifest.json, so only the loader's own
    checks stand between them and a model): its weights as a plain model.safetensors, the same weights sharded as
    transformers shards them, and a model.safetensors of another architecture (the DistilBERT that transformers 5
    saved for tests/fixtures/parity) beside the reference's config.json."""
    from safetensors.numpy import save_file

    from qaexp.model.families.weights import export_weights
    from qaexp.model.pretrained import load_qa_model

    root, source = tmp_path_factory.mktemp("other_models"), reference / "run" / "model"
    tensors = export_weights(load_qa_model(str(source)))
    small_files = [p for p in source.iterdir() if p.suffix in (".json", ".txt") and p.name != "qaexp-manifest.json"]
    distilbert = FIXTURES / "parity" / "distilbert" / "model.safetensors"
    for name, save in {
            "safetensors": lambda d: save_file(tensors, str(d / "model.safetensors"), metadata={"format": "pt"}),
            "sharded": lambda d: save_sharded(tensors, d),
            "other_arch": lambda d: shutil.copy(distilbert, d / "model.safetensors")}.items():
        directory = root / name
        directory.mkdir()
        save(directory)
        for path in small_files:
            shutil.copy(path, directory / path.name)
    assert len(list((root / "sharded").glob("model-*.safetensors"))) > 1, "the model was not sharded"
    # The undamaged variants load: each case below fails because of its damage alone.
    for name in ("safetensors", "sharded"):
        assert load_qa_model(str(root / name)) is not None
    return root


# ---- the table --------------------------------------------------------------------------------------------------

@dataclass
class Case:
    damage: Callable[["Workspace"], None]
    kind: str  # through the CLI: "resume" (trainer.resume=true in the copied run), "evaluate" (epochs=0 on a model
    #            directory), "scratch" (epochs=0, tokenizer trained from scratch), "predict" (qaexp.predict on a
    #            model); in this process (IN_PROCESS): "read_checkpoint" (what resume reads first, the latest
    #            checkpoint), "read_tokenizer" (the tokenizer a resumed run reads), "load_model" (the loader of
    #            model.checkpoint directories)
    words: list[str]  # the one line (or, for rebuilt entries, the warning) must contain each
    rebuilt: bool = False  # True: the run completes with one warning; False: exit 2 with one line
    model: str = "run/model"  # for evaluate/predict: the model directory, relative to the workspace
    overrides: list[str] = field(default_factory=list)


@dataclass
class Workspace:
    root: Path

    @property
    def run(self) -> Path:
        return self.root / "run"

    @property
    def cache(self) -> Path:
        return self.root / "cache"

    @property
    def checkpoints(self) -> Path:
        return self.run / "checkpoints"


def record_settings(ws: "Workspace", overrides: list[str]) -> None:
    """Write `overrides` (KEY=INT) into the run's .hydra/config.yaml, as if the run had been made with them."""
    from omegaconf import OmegaConf

    path = ws.run / ".hydra" / "config.yaml"
    config = OmegaConf.load(path)
    for override in overrides:
        key, value = override.split("=")
        OmegaConf.update(config, key, int(value))
    OmegaConf.save(config, path)


ANOTHER_ARCHITECTURE = ["model.architecture.hidden_size=64", "model.architecture.intermediate_size=128"]
LATEST_DATA = "latest/ckpt-13.data-00000-of-00001"  # 200 questions -> 13 steps of 16
CASES = {
    "window cache entry truncated": Case(
        lambda ws: [truncate(e / "input_input_ids.npy") for e in window_entries(ws.cache)], "evaluate",
        ["ignoring the damaged window cache entry", "input_input_ids.npy"], rebuilt=True),
    "window cache entry corrupted": Case(
        lambda ws: [flip_byte(e / "offsets.npy") for e in window_entries(ws.cache)], "read_windows",
        ["ignoring the damaged window cache entry", "SHA-256"], rebuilt=True),
    "window cache entry half-written": Case(
        lambda ws: [(e / "qaexp-manifest.json").unlink() for e in window_entries(ws.cache)], "read_windows",
        ["ignoring the damaged window cache entry", "not written completely"], rebuilt=True),
    "tokenizer cache entry truncated": Case(
        lambda ws: truncate(tokenizer_entry(ws.cache) / "tokenizer.json"), "scratch",
        ["ignoring the damaged tokenizer cache entry", "tokenizer.json"], rebuilt=True),
    "checkpoint data truncated": Case(
        lambda ws: truncate(ws.checkpoints / LATEST_DATA), "resume",
        ["cannot resume from", "ckpt-13", "damaged", "to train from the start"]),
    "checkpoint data corrupted": Case(
        lambda ws: flip_byte(ws.checkpoints / LATEST_DATA), "read_checkpoint",
        ["cannot resume from", "ckpt-13", "Checksum does not match", "to train from the start"]),
    "checkpoint index missing": Case(
        lambda ws: (ws.checkpoints / "latest" / "ckpt-13.index").unlink(), "read_checkpoint",
        ["latest", "names a checkpoint that is missing", "trainer.resume=true"]),
    "checkpoint state file garbage": Case(
        lambda ws: (ws.checkpoints / "latest" / "checkpoint").write_text("model_checkpoint_path: {{{"),
        "read_checkpoint",
        ["latest", "'checkpoint' file is damaged", "trainer.resume=true"]),
    "saved tokenizer damaged": Case(
        lambda ws: truncate(ws.checkpoints / "tokenizer" / "tokenizer.json"), "read_tokenizer",
        ["tokenizer saved in", "checkpoints/tokenizer", "damaged", "to train from the start"]),
    # the run's recorded settings name another model than its checkpoint (a checkpoint copied in from another run),
    # so the settings the command asks for match the run's and only the checkpoint can tell
    "checkpoint of another architecture": Case(
        lambda ws: record_settings(ws, ANOTHER_ARCHITECTURE), "resume",
        ["cannot resume from", "different model", ".hydra/config.yaml"], overrides=ANOTHER_ARCHITECTURE),
    # a run's saved model (qaexp-manifest.json lists its weights' size and SHA-256)
    "saved model.safetensors truncated": Case(
        lambda ws: truncate(ws.run / "model" / "model.safetensors"), "evaluate",
        ["model.safetensors", "bytes", "damaged"]),
    "saved model.safetensors corrupted (predict)": Case(
        lambda ws: flip_byte(ws.run / "model" / "model.safetensors"), "predict",
        ["model.safetensors", "SHA-256", "damaged"]),
    # model directories without a manifest (other_models)
    "model.safetensors truncated": Case(
        lambda ws: truncate(ws.root / "models" / "safetensors" / "model.safetensors"), "load_model",
        ["model.safetensors", "damaged"], model="models/safetensors"),
    "weight shard missing": Case(
        lambda ws: sorted((ws.root / "models" / "sharded").glob("model-*.safetensors"))[-1].unlink(), "load_model",
        ["model-0000", "listed in model.safetensors.index.json is missing"], model="models/sharded"),
    "weight shard index damaged": Case(
        lambda ws: truncate(ws.root / "models" / "sharded" / "model.safetensors.index.json"), "load_model",
        ["model.safetensors.index.json", "damaged"], model="models/sharded"),
    "weights of another architecture": Case(
        lambda ws: None, "load_model",
        ["model.safetensors", "roformer encoder", "distilbert", "another architecture"], model="models/other_arch"),
}
IN_PROCESS = {"read_checkpoint", "read_tokenizer", "load_model", "read_windows"}
CLI_CASES = [name for name, case in CASES.items() if case.kind not in IN_PROCESS]


def workspace(reference: Path, other_models: Path, root: Path, name: str) -> Workspace:
    """A copy of the reference run, its cache and the other models, damaged as case `name` says."""
    ws = Workspace(root)
    shutil.copytree(reference / "run", ws.run)
    shutil.copytree(reference / "cache", ws.cache)
    shutil.copytree(other_models, ws.root / "models")
    if CASES[name].kind == "resume":  # a completed run has nothing to resume: make it one killed while training
        (ws.run / "metrics.json").unlink()
    CASES[name].damage(ws)
    return ws


def command(case: Case, ws: Workspace) -> tuple[str, list[str]]:
    """(module, arguments) of the case's CLI call."""
    if case.kind == "predict":
        return "qaexp.predict", [str(ws.root / case.model), "--question", "Where did Ada grow up?",
                                 "--context", "Ada grew up in Lyon."]
    common = [*RUN, f"data.cache_dir={ws.cache}", *case.overrides]
    if case.kind == "resume":
        # the reference run's own settings: a resume with others is refused before the checkpoint is read
        return "qaexp", [*common, "trainer.keep_checkpoints=true", "trainer.resume=true", f"hydra.run.dir={ws.run}"]
    model = [f"model.checkpoint={ws.root / case.model}"] if case.kind == "evaluate" else []
    return "qaexp", [*common, *model, "trainer.epochs=0", f"hydra.run.dir={ws.root / 'out'}"]


@pytest.fixture(scope="module")
def fault_runs(reference, other_models, tmp_path_factory):
    """{case: (workspace, CompletedProcess)}, every case run on its own damaged copy, two at a time."""
    def run(name):
        ws = workspace(reference, other_models, tmp_path_factory.mktemp("case"), name)
        module, args = command(CASES[name], ws)
        return ws, run_cli(["-m", module, *args])

    with ThreadPoolExecutor(2) as pool:
        return dict(zip(CLI_CASES, pool.map(run, CLI_CASES)))


@pytest.mark.parametrize("name", CLI_CASES)
def test_damaged_state_is_detected(fault_runs, reference, name):
    case, (ws, result) = CASES[name], fault_runs[name]
    output = result.stdout + result.stderr
    assert "Traceback" not in output, output[-3000:]
    if case.rebuilt:
        assert result.returncode == 0, output[-3000:]
        warnings = [line for line in output.splitlines() if "ignoring the damaged" in line]
        entries = window_entries(ws.cache) if name.startswith("window") else [tokenizer_entry(ws.cache)]
        read = [entry for entry in entries if any(str(entry) in line for line in warnings)]
        # Every entry is damaged; each one the run read is rebuilt with exactly one warning (an evaluation with
        # trainer.epochs=0 does not read the training split's entry).
        assert len(read) >= 1 and len(warnings) == len(read), warnings
        for word in case.words:
            assert word in warnings[0], f"{word!r} not in: {warnings[0]}"
        assert_same_as_the_clean_run(case, ws, reference, read)
        return
    assert result.returncode == 2, output[-3000:]
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(("qaexp: error: ", "qaexp predict: error: ")), result.stderr[-3000:]
    for word in case.words:
        assert word in last, f"{word!r} not in: {last}"
    if case.kind != "predict":
        run_dir = ws.run if case.kind == "resume" else ws.root / "out"
        assert metrics(run_dir)["status"] == "failed" and metrics(run_dir)["error"] in last
        assert not (ws.root / "out" / "predictions.json").exists()


def validation_windows(run: Path, cache: Path):
    """What an evaluation of the run's model reads: its validation split's windows, through the window cache."""
    from omegaconf import OmegaConf
    from transformers import AutoTokenizer

    from qaexp.data import cache as window_cache
    from qaexp.data.squad import load_splits

    config = OmegaConf.load(run / ".hydra" / "config.yaml")
    records = load_splits(config.data, with_train=False).validation
    tokenizer = AutoTokenizer.from_pretrained(str(run / "model"))
    return window_cache.windows_for(records, tokenizer, config.data.max_length, config.data.doc_stride, str(cache),
                                     split="validation")


@pytest.mark.parametrize("name", [name for name in CASES if CASES[name].kind == "read_windows"])
def test_a_damaged_window_cache_entry_is_rebuilt_by_the_reader_the_run_uses(reference, other_models, tmp_path,
                                                                             caplog, name):
    """The other window-cache damages, through cache.windows_for (the CLI case above shows that the run prints
    its warning and gets the clean run's answers): one warning naming the entry, the same windows as the
    undamaged entry gives, and a whole entry in its place."""
    import logging

    import numpy as np

    from qaexp.output.manifest import verify_manifest

    case = CASES[name]
    ws = workspace(reference, other_models, tmp_path, name)
    with caplog.at_level(logging.WARNING):
        rebuilt = validation_windows(ws.run, ws.cache)
    warnings = [r.getMessage() for r in caplog.records if "ignoring the damaged" in r.getMessage()]
    (entry,) = [e for e in window_entries(ws.cache) if any(str(e) in w for w in warnings)]
    assert len(warnings) == 1, warnings
    for word in case.words:
        assert word in warnings[0], f"{word!r} not in: {warnings[0]}"
    clean = validation_windows(reference / "run", reference / "cache")
    rows, width = np.arange(len(clean)), int(clean.lengths.max())
    assert len(rebuilt) == len(clean) and rebuilt.lengths.tolist() == clean.lengths.tolist()
    for column, values in clean.inputs.items():
        np.testing.assert_array_equal(rebuilt.inputs[column].padded(rows, width, 0), values.padded(rows, width, 0))
    np.testing.assert_array_equal(rebuilt.padded_offsets(), clean.padded_offsets())
    np.testing.assert_array_equal(rebuilt.start_positions, clean.start_positions)
    verify_manifest(str(entry))  # the damaged entry was replaced by a whole one


@pytest.mark.parametrize("name", [name for name in CASES
                                  if name not in CLI_CASES and CASES[name].kind != "read_windows"])
def test_damaged_state_is_detected_by_the_reader_the_run_uses(reference, other_models, tmp_path, name):
    from qaexp.errors import QAExpError
    from qaexp.model.pretrained import load_qa_model
    from qaexp.training.state import readable_checkpoint, saved_tokenizer

    case = CASES[name]
    ws = workspace(reference, other_models, tmp_path, name)
    read = {"read_checkpoint": lambda: readable_checkpoint(str(ws.checkpoints / "latest")),
            "read_tokenizer": lambda: saved_tokenizer(str(ws.run)),
            "load_model": lambda: load_qa_model(str(ws.root / case.model))}[case.kind]
    with pytest.raises(QAExpError) as raised:  # the CLI prints a QAExpError as its one line, exit status 2
        read()
    message = str(raised.value)
    assert "\n" not in message, message
    for word in case.words:
        assert word in message, f"{word!r} not in: {message}"


def assert_same_as_the_clean_run(case: Case, ws: Workspace, reference: Path, rebuilt: list[Path]) -> None:
    out = ws.root / "out"
    if case.kind == "scratch":  # the rebuilt tokenizer is the one the clean run trained, byte for byte
        assert (out / "model" / "tokenizer.json").read_bytes() == \
            (reference / "run" / "model" / "tokenizer.json").read_bytes()
    else:  # the reference model on rebuilt windows answers as it did in its own run
        assert results(out)["predictions"] == results(reference / "run")["predictions"]
        assert results(out)["eval_windows"] == results(reference / "run")["eval_windows"]
    from qaexp.output.manifest import verify_manifest

    for entry in rebuilt:
        verify_manifest(str(entry))  # the damaged entry was replaced by a whole one


def test_the_table_covers_every_kind_of_stored_state():
    kinds = {name.split(" ")[0] for name in CASES}
    assert {"window", "tokenizer", "checkpoint", "saved", "model.safetensors", "weight", "weights"} <= kinds
    # a saved model's weights are damaged in the file a run now saves (model.safetensors, no tf_model.h5)
    assert any(name.startswith("saved model.safetensors") for name in CASES)
    # each kind of failure reaches the user through the CLI in at least one case
    assert {CASES[name].kind for name in CLI_CASES} == {"resume", "evaluate", "scratch", "predict"}
