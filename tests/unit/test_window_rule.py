"""One window rule and one set of defaults: training and every tool refuse the same doc_stride with the same line."""
import logging

import pytest

from helpers import tiny_qa
from helpers.cli import run_cli
from qaexp.data import window_rule
from qaexp.errors import ConfigError
from qaexp.model.saved import DEFAULTS, answer_settings

MAX_LENGTH = 384
# Allowed: the question keeps 8 tokens after 4 special tokens and more than doc_stride context tokens.
LARGEST_ALLOWED = MAX_LENGTH - window_rule.SPECIAL_TOKENS_ALLOWANCE - window_rule.MIN_QUESTION_TOKENS - 1

# Each command as a user types it, up to the window flags; every one stops before a model (or TensorFlow) loads.
COMMANDS = {
    "train": lambda model_dir, tmp, stride: ["qaexp", "data=synthetic", f"data.max_length={MAX_LENGTH}",
                                             f"data.doc_stride={stride}", f"hydra.run.dir={tmp / 'run'}"],
    "predict": lambda model_dir, tmp, stride: ["qaexp.predict", model_dir, "--question", "Who?", "--context",
                                               "Ada did.", "--max-length", str(MAX_LENGTH), "--doc-stride", str(stride)],
    "serve": lambda model_dir, tmp, stride: ["qaexp.serve", model_dir, "--port", "0", "--max-length", str(MAX_LENGTH),
                                             "--doc-stride", str(stride)],
    "export": lambda model_dir, tmp, stride: ["qaexp.export", model_dir, "--format", "onnx", "--output",
                                              str(tmp / "model.onnx"), "--max-length", str(MAX_LENGTH),
                                              "--doc-stride", str(stride)],
}


def refusal(max_length: int, doc_stride: int) -> str:
    with pytest.raises(ConfigError) as refused:
        window_rule.check_window(max_length, doc_stride)
    return str(refused.value)


@pytest.fixture
def model_dir(tmp_path):
    """A directory the tools take for a saved model; the window check refuses the settings before it is read."""
    (tmp_path / "config.json").write_text("{}")
    return str(tmp_path)


@pytest.mark.parametrize("stride", [LARGEST_ALLOWED + 1, MAX_LENGTH, 0], ids=["no-room", "not-below-max", "zero"])
@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_training_and_every_tool_refuse_the_same_doc_stride_with_the_same_line(command, stride, model_dir,
                                                                                 tmp_path):
    result = run_cli(["-m", *COMMANDS[command](model_dir, tmp_path, stride)], timeout=120)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    message = lines[0].split(": error: ", 1)[1]
    if stride == 0:  # out of its range: the range table's line (limits.NUMBERS), also shared
        assert message == "data.doc_stride=0 must be > 0 (valid: (0, 131072])"
    else:
        assert message == refusal(MAX_LENGTH, stride)
        assert "--doc-stride" in message  # the tools' users are told their flag


def test_the_rule_allows_up_to_eight_question_tokens_beside_four_special_tokens(model_dir):
    window_rule.check_window(MAX_LENGTH, LARGEST_ALLOWED)
    assert answer_settings(model_dir, {"doc_stride": LARGEST_ALLOWED}).doc_stride == LARGEST_ALLOWED
    assert "it must be < 372 (max_length - 4 special tokens - 8 question tokens)" in refusal(MAX_LENGTH, 372)
    # The tools used to accept anything below max_length; training never did.
    with pytest.raises(ConfigError, match="no room for the question"):
        answer_settings(model_dir, {"doc_stride": MAX_LENGTH - 1})


def test_a_saved_models_own_settings_are_held_to_the_rule(model_dir, tmp_path):
    (tmp_path / "qaexp.json").write_text('{"max_length": 128, "doc_stride": 120}')
    with pytest.raises(ConfigError) as refused:
        answer_settings(model_dir, {})
    assert str(refused.value) == refusal(128, 120)


def test_tokenising_refuses_a_stride_its_tokenizer_leaves_no_question_room_for(caplog):
    from qaexp.data.windows import tokenize_windows

    examples = tiny_qa.records(4)
    tokenizer = tiny_qa.tokenizer_for(examples)
    special = tokenizer.num_special_tokens_to_add(pair=True)  # 3 for this BERT-style tokenizer
    largest = 64 - special - window_rule.MIN_QUESTION_TOKENS - 1
    with caplog.at_level(logging.WARNING, logger="qaexp.data.windows"):
        windows = tokenize_windows(examples, tokenizer, 64, largest, progress=False)
    assert windows.lengths.max() <= 64
    # Below 1 question token the cut used to index the offsets from the end; now it is the rule's one line.
    for stride in (largest + 1, 62):
        with pytest.raises(ConfigError, match=f"it must be < {largest + 1} \\(max_length - {special} special"):
            tokenize_windows(examples, tokenizer, 64, stride, progress=False)


def test_training_and_the_tools_share_one_set_of_defaults():
    from helpers.config import compose

    expected = (window_rule.MAX_LENGTH, window_rule.DOC_STRIDE, window_rule.MAX_ANSWER_LENGTH, window_rule.N_BEST_SIZE)
    for data in ("squad", "squad_v2", "json"):
        cfg = compose([f"data={data}"]).data
        assert (cfg.max_length, cfg.doc_stride, cfg.max_answer_length, cfg.n_best_size) == expected, data
    assert (DEFAULTS["max_length"], DEFAULTS["doc_stride"], DEFAULTS["max_answer_length"]) == expected[:3]
    result = run_cli(["-m", "qaexp.predict", "--help"], timeout=60)
    assert f"max_length {window_rule.MAX_LENGTH}, doc_stride {window_rule.DOC_STRIDE}" in result.stdout


def test_training_and_the_tools_answer_with_one_frozen_settings_value(model_dir):
    """Inference reads one type: a run's data config and a saved model's settings (here: the defaults, none saved)
    become equal AnswerSettings, with the config's types whatever the source gave."""
    import dataclasses

    from helpers.config import compose
    from qaexp.evaluation.settings import AnswerSettings

    trained = AnswerSettings.of(compose(["data=squad"]).data)
    tools = answer_settings(model_dir, {"null_score_diff_threshold": 0})  # an int, as a JSON file may hold it
    assert trained == tools
    assert type(tools.null_score_diff_threshold) is float and type(tools.version_2_with_negative) is bool
    with pytest.raises(dataclasses.FrozenInstanceError):
        tools.doc_stride = 64


# ---- the position rule: max_length against the model's position embeddings ------------------------------------


def with_positions(model_dir: str, model_type: str, positions: int) -> str:
    """`model_dir` with a config.json that names only what the position rule reads (no weights, no tokenizer: the
    tools refuse before they would load either)."""
    import json
    import pathlib

    (pathlib.Path(model_dir) / "config.json").write_text(json.dumps({"model_type": model_type,
                                                                      "max_position_embeddings": positions}))
    return model_dir


@pytest.mark.parametrize("command", ["predict", "serve", "export"])
def test_every_tool_refuses_a_max_length_beyond_the_models_positions_before_loading_it(command, model_dir, tmp_path):
    args = COMMANDS[command](with_positions(model_dir, "bert", 512), tmp_path, window_rule.DOC_STRIDE)
    args[args.index("--max-length") + 1] = "513"
    result = run_cli(["-m", *args], timeout=120)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    with pytest.raises(ConfigError) as training:  # training's rule and line, with where the limit came from
        window_rule.check_max_length(513, 512, f"max_position_embeddings of {model_dir}")
    assert lines[0] == f"qaexp {command}: error: {training.value}"
    assert "it must be in [1, 512]" in lines[0] and "--max-length" in lines[0]


def test_the_position_limit_counts_robertas_two_unused_positions_and_applies_to_the_models_own_settings(model_dir):
    with_positions(model_dir, "roberta", 514)
    assert answer_settings(model_dir, {"max_length": 512}).max_length == 512
    with pytest.raises(ConfigError, match=r"data.max_length=513 exceeds the model's position limit: it must be in "
                                          r"\[1, 512\]"):
        answer_settings(model_dir, {"max_length": 513})
    with_positions(model_dir, "bert", 128)  # a small model read with the default max_length, 384
    with pytest.raises(ConfigError, match=r"data.max_length=384 exceeds .* \[1, 128\]"):
        answer_settings(model_dir, {})
