"""Property-based tests (hypothesis): SQuAD-shaped records and config overrides, generated, through the reader,
the data validation and the config validation.

Every input either loads (and then its windows and labels are consistent) or raises qaexp's own one-line
error; nothing else escapes. The default runs are derandomized and small; the `slow` ones are larger and seeded.
"""
import functools
import json
import math
import os
import tempfile

import pytest
from hypothesis import HealthCheck, event, given, seed, settings
from hypothesis import strategies as st
from omegaconf import OmegaConf, open_dict

from helpers.window_checks import assert_windows_consistent
from qaexp.data.checks import UNPLACED
from qaexp.errors import QAExpError

FAST = settings(max_examples=60, derandomize=True, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
LARGE = settings(max_examples=200, deadline=None, database=None,
                 suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
MAX_LENGTH, STRIDE = 48, 12

# ---- records ----------------------------------------------------------------------------------------------

# Text with the characters that break readers: NUL and control characters, separators that str.splitlines
# splits at, a byte-order mark, combining marks, right-to-left text, astral characters, spaces of every kind.
EDGE_CHARACTERS = "\x00\x01\x07\x1b\x7f\x85\u00a0\u2028\u2029\ufeff\u200b\u0301\u05d0\U0001f600\u3000\t\r\n\\\""
text = st.text(alphabet=st.one_of(st.sampled_from(EDGE_CHARACTERS), st.characters(codec="utf-8"),
                                  st.sampled_from("Ada grew up in Lyon ")), max_size=60)
any_json = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | text,
                        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text, inner, max_size=3),
                        max_leaves=6)


def mostly(draw, usual, unusual, percent=85):
    """A value of `usual` most of the time, so that many generated files load and reach the windows."""
    return draw(usual if draw(st.integers(0, 99)) < percent else unusual)


@st.composite
def answers(draw, context):
    """Answers as SQuAD writes them (dict of lists, or a list of dicts), mostly right, sometimes anything."""
    texts, starts = [], []
    for _ in range(mostly(draw, st.just(1), st.integers(0, 3))):
        if context and mostly(draw, st.just(True), st.just(False)):  # a real span
            lo = draw(st.integers(0, len(context) - 1))
            hi = draw(st.integers(lo + 1, min(len(context), lo + 12)))
            texts.append(context[lo:hi])
            starts.append(mostly(draw, st.just(lo), st.sampled_from([lo + 3, -1, len(context) + 5, str(lo),
                                                                     float(lo), None])))
        else:
            texts.append(draw(st.one_of(text, any_json)))
            starts.append(draw(st.one_of(st.integers(-10, 500), any_json)))
    shape = mostly(draw, st.sampled_from(["dict", "list"]), st.just("wrong"))
    if shape == "dict":
        return {"text": texts, "answer_start": starts}
    if shape == "list":
        return [{"text": t, "answer_start": s} for t, s in zip(texts, starts)]
    return draw(any_json)


def context_text(draw):
    return mostly(draw, st.builds(lambda a, b: f"{a}Ada grew up in Lyon.{b}", text, text), st.one_of(text, any_json))


@st.composite
def flat_record(draw, index=0):
    context = context_text(draw)
    fields = {"id": mostly(draw, st.just(f"q{index}"), st.one_of(st.just("q0"), any_json)),
              "title": mostly(draw, text, any_json), "context": context,
              "question": mostly(draw, st.builds(lambda t: "Where" + t, text), st.one_of(text, any_json)),
              "answers": draw(answers(context if isinstance(context, str) else ""))}
    dropped = mostly(draw, st.just(set()), st.sets(st.sampled_from(sorted(fields)), max_size=2))
    return {key: value for key, value in fields.items() if key not in dropped}


@st.composite
def flat_records(draw):
    return [draw(flat_record(index)) for index in range(draw(st.integers(1, 4)))]


@st.composite
def nested_document(draw):
    def question(context, index):
        qa = {"id": mostly(draw, st.just(f"n{index}"), any_json),
              "question": mostly(draw, st.builds(lambda t: "Who" + t, text), text), "answers": draw(answers(context))}
        if draw(st.booleans()):
            qa["is_impossible"] = draw(st.booleans())
        return qa

    paragraphs, index = [], 0
    for _ in range(draw(st.integers(0, 2))):
        context = context_text(draw)
        qas = []
        for _ in range(draw(st.integers(0, 3))):
            qas.append(question(context if isinstance(context, str) else "", index))
            index += 1
        paragraphs.append({"context": context, "qas": qas})
    document = {"version": "1.1", "data": [{"title": draw(text), "paragraphs": paragraphs}]}
    return mostly(draw, st.just(document), st.sampled_from([{"data": document["data"][0]}, {"data": [paragraphs]}]))


files = st.one_of(
    st.tuples(st.just(".jsonl"), flat_records()),
    st.tuples(st.just(".json"), flat_records()),
    st.tuples(st.just(".json"), nested_document()),
)


def write(suffix, content, ascii_only, crlf, bom) -> str:
    if suffix == ".jsonl":
        body = "".join(json.dumps(r, ensure_ascii=ascii_only) + ("\r\n" if crlf else "\n") for r in content)
    else:
        body = json.dumps(content, ensure_ascii=ascii_only)
    fd, path = tempfile.mkstemp(suffix=suffix)
    with os.fdopen(fd, "wb") as f:
        f.write(("\ufeff" if bom else "").encode() + body.encode("utf-8", "surrogatepass"))
    return path


@functools.lru_cache(maxsize=1)
def tokenizer():
    from qaexp.model.build import train_wordpiece_tokenizer

    texts = ["Ada grew up in Lyon and moved to Paris.", "Where did Ada grow up? Who?"] * 10
    return train_wordpiece_tokenizer(texts, vocab_size=150, lowercase=False)


def assert_one_line(err: QAExpError) -> None:
    message = str(err)
    assert message.strip() and "\n" not in message and "\r" not in message, repr(message)


def load_or_explain(file, ascii_only, crlf, bom, version_2, policy):
    """The property: loads and windows consistently, or raises a one-line QAExpError."""
    from qaexp.data.squad import load_splits
    from qaexp.data.windows import tokenize_windows

    path = write(*file, ascii_only, crlf, bom)
    cfg = OmegaConf.create({"source": "json", "train_file": path, "validation_file": path, "on_bad_answer": policy,
                            "max_train_samples": None, "max_eval_samples": None,
                            "version_2_with_negative": version_2})
    try:
        splits = load_splits(cfg)
    except QAExpError as err:
        assert_one_line(err)
        event("rejected with one line")
        return
    finally:
        os.unlink(path)
    event("loaded and windowed")
    for records, scored in ((splits.train, False), (splits.validation, True)):
        for record in records:
            assert isinstance(record["id"], str) and isinstance(record["context"], str)
            for answer, start in zip(record["answers"]["text"], record["answers"]["answer_start"]):
                if start == UNPLACED and scored:  # kept for scoring by its text (data/checks.py)
                    assert policy != "error" and answer
                    continue
                assert record["context"][start:start + len(answer)] == answer, "an answer not at its start loaded"
        windows = tokenize_windows(records, tokenizer(), MAX_LENGTH, STRIDE, progress=False)
        assert_windows_consistent(records, windows, MAX_LENGTH)


record_inputs = dict(file=files, ascii_only=st.booleans(), crlf=st.booleans(), bom=st.booleans(),
                     version_2=st.booleans(), policy=st.sampled_from(["error", "skip", "fix"]))


@FAST
@given(**record_inputs)
def test_generated_records_load_consistently_or_fail_in_one_line(file, ascii_only, crlf, bom, version_2, policy):
    load_or_explain(file, ascii_only, crlf, bom, version_2, policy)


@pytest.mark.slow
@seed(20261202)
@LARGE
@given(**record_inputs)
def test_generated_records_larger_seeded_run(file, ascii_only, crlf, bom, version_2, policy):
    load_or_explain(file, ascii_only, crlf, bom, version_2, policy)


# ---- config overrides -------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def base_config():
    from helpers.config import compose

    return compose(["model=tiny", "data=synthetic"])


def schema_keys():
    from helpers.config import numeric_schema_keys

    return numeric_schema_keys()


ints = st.one_of(st.integers(-3, 3), st.integers(-2 ** 70, 2 ** 70), st.sampled_from([2 ** 31, 2 ** 32, 10 ** 12]))
floats = st.one_of(ints, st.floats(), st.sampled_from([0.0, -0.0, 1.0, math.nan, math.inf, -math.inf, 1e308]))
choice_keys = ["data.on_bad_answer", "trainer.padding", "precision.policy", "optimizer.name", "trainer.strategy"]


@st.composite
def overrides(draw):
    keys = schema_keys()
    chosen = draw(st.lists(st.sampled_from(sorted(keys)), min_size=1, max_size=4, unique=True))
    changes = {key: draw(ints if keys[key] is int else floats) for key in chosen}
    if draw(st.booleans()):
        changes[draw(st.sampled_from(choice_keys))] = draw(st.one_of(text, st.sampled_from(["fix", "dynamic"])))
    if draw(st.booleans()):
        name = draw(st.sampled_from(["hidden_size", "num_attention_heads", "hidden_dropout_prob", "layer_norm_eps"]))
        changes[f"model.architecture.{name}"] = draw(st.one_of(ints, floats, any_json))
    if draw(st.booleans()):
        changes["data.cache_dir"] = draw(st.sampled_from(["/dev/null", "/dev/null/sub", "/proc/1", "relative/dir"]))
    return changes


def validate_or_explain(changes):
    from qaexp.config.validation import validate
    from qaexp.errors import ConfigError

    cfg = base_config().copy()
    with open_dict(cfg):  # as `+model.architecture.layer_norm_eps=...` does on the command line
        for key, value in changes.items():
            OmegaConf.update(cfg, key, value, merge=False)
    try:
        validate(cfg)
    except ConfigError as err:
        assert_one_line(err)
        event("rejected with one line")
        named = str(err).split("=", 1)[0]
        assert any(named == key or key.startswith(named) or named.startswith("data.doc_stride")
                   or named.startswith(("trainer.grad_accum_steps", "data.max_length", "model.architecture"))
                   for key in changes), f"the error names {named}, which was not changed: {err}"
        return
    event("accepted")
    for key, value in changes.items():
        if isinstance(value, float):
            assert math.isfinite(value), f"{key}={value} was accepted"


@FAST
@given(changes=overrides())
def test_generated_config_overrides_validate_or_fail_in_one_line(changes):
    validate_or_explain(changes)


@pytest.mark.slow
@seed(20261202)
@LARGE
@given(changes=overrides())
def test_generated_config_overrides_larger_seeded_run(changes):
    validate_or_explain(changes)
