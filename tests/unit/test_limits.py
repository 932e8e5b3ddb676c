"""Every numeric config key at 0, negative, NaN, inf and absurdly large, and every directory key at a file, a
missing path and an unwritable place: allowed, or one ConfigError naming the key and its valid range.

The expectations below are written out by hand (what each key means), not read from qaexp/config/limits.py's table,
so a row that is missing or wrong there fails here.
"""
import math

import pytest
from omegaconf import OmegaConf

from qaexp.config.validation import validate
from helpers.config import compose, numeric_schema_keys
from qaexp.errors import ConfigError
from qaexp.config.limits import NUMBERS, directory_problem

# Keys for which the value is meaningful: 0 / a negative number / a huge one (1e12 and more).
ZERO_OK = {"trainer.epochs", "trainer.seed", "trainer.verbose", "optimizer.weight_decay", "optimizer.warmup_ratio",
           "optimizer.beta_1", "optimizer.beta_2", "data.unanswerable_fraction", "data.null_score_diff_threshold",
           "data.seed"}
NEGATIVE_OK = {"data.null_score_diff_threshold", "data.seed"}
HUGE_OK = {"data.null_score_diff_threshold", "data.seed", "optimizer.lr", "model.lr", "optimizer.weight_decay",
           "optimizer.epsilon", "optimizer.clipnorm"}


@pytest.fixture(scope="module")
def base():
    cfg = compose(["model=tiny", "data=synthetic"])
    validate(cfg)
    return cfg


def with_value(cfg, key, value):
    changed = cfg.copy()
    OmegaConf.update(changed, key, value, merge=False)
    return changed




def test_every_numeric_key_of_the_schema_has_a_range():
    assert set(numeric_schema_keys()) == set(NUMBERS)


def edge_values(kind):
    values = [("zero", 0), ("negative", -1), ("huge", 10 ** 12), ("huge negative", -10 ** 12)]
    if kind is int:  # a float key cannot hold it: OmegaConf converts to float at once
        values.append(("400 digits", 10 ** 400))
    if kind is float:
        values += [("nan", math.nan), ("inf", math.inf), ("-inf", -math.inf)]
    return values


EDGES = [(key, label, value) for key, kind in sorted(numeric_schema_keys().items())
         for label, value in edge_values(kind)]


def meaningful(key, label):
    if label in ("nan", "inf", "-inf"):
        return False
    if label == "zero":
        return key in ZERO_OK
    if label == "negative":
        return key in NEGATIVE_OK
    if label in ("huge", "400 digits"):
        return key in HUGE_OK
    return key in NEGATIVE_OK and key in HUGE_OK  # huge negative


@pytest.mark.parametrize("key, label, value", EDGES, ids=[f"{k}={label}" for k, label, _ in EDGES])
def test_numeric_key_at_its_edges(base, key, label, value):
    cfg = with_value(base, key, value)
    if meaningful(key, label):
        validate(cfg)
        return
    with pytest.raises(ConfigError) as caught:
        validate(cfg)
    message = str(caught.value)
    assert message.startswith(f"{key}=") and "valid: " in message and "\n" not in message, message


@pytest.mark.parametrize("name, value", [("hidden_size", 0), ("hidden_size", 10 ** 9), ("num_hidden_layers", -1),
                                         ("num_attention_heads", 2.5), ("intermediate_size", "big"),
                                         ("hidden_dropout_prob", 1.0), ("attention_probs_dropout_prob", math.nan)])
def test_architecture_sizes_at_their_edges(base, name, value):
    with pytest.raises(ConfigError, match=rf"^model\.architecture\.{name}=.* \(valid: "):
        validate(with_value(base, f"model.architecture.{name}", value))


def test_messages_name_the_range(base):
    cases = {("optimizer.lr", math.nan): "optimizer.lr=nan must be a finite number (valid: (0, inf))",
             ("trainer.seed", -1): "trainer.seed=-1 must be >= 0 (valid: [0, 4294967295])",
             ("trainer.batch_size", 10 ** 12): "trainer.batch_size=1000000000000 must be <= 65536 (valid: [1, 65536])",
             ("trainer.threads", 0): "trainer.threads=0 must be >= 1 (valid: [1, 4096], or null for TensorFlow's "
                                     "default)"}
    for (key, value), message in cases.items():
        with pytest.raises(ConfigError) as caught:
            validate(with_value(base, key, value))
        assert str(caught.value) == message


# ---- directory keys ----------------------------------------------------------------------------------------


def permissions_block_writes(directory) -> bool:
    """False when this process writes through a read-only mode anyway (root, some containers)."""
    probe = directory / "probe"
    try:
        probe.write_text("x")
    except PermissionError:
        return True
    probe.unlink()
    return False


@pytest.mark.parametrize("key, extra", [("data.cache_dir", []), ("logger.log_dir", ["logger=tensorboard"])])
def test_directory_keys_at_a_file_a_missing_path_and_below_a_file(tmp_path, key, extra):
    a_file = tmp_path / "a_file"
    a_file.write_text("")  # an empty file is still a file
    cfg = compose(["model=tiny", "data=synthetic", *extra])
    with pytest.raises(ConfigError, match=rf"^{key}={a_file} is a file, not a directory: set it to a directory"):
        validate(with_value(cfg, key, str(a_file)))
    with pytest.raises(ConfigError, match=rf"{key}={a_file}/sub cannot be created: {a_file} is a file"):
        validate(with_value(cfg, key, str(a_file / "sub")))
    validate(with_value(cfg, key, str(tmp_path / "missing" / "made later")))  # created by the run
    assert not (tmp_path / "missing").exists()


def test_unused_directory_keys_are_not_checked(tmp_path, base):
    a_file = tmp_path / "a_file"
    a_file.write_text("")
    validate(with_value(with_value(base, "data.cache", False), "data.cache_dir", str(a_file)))
    validate(with_value(base, "logger.log_dir", str(a_file)))  # logger=none writes no logs


def test_an_unwritable_directory_is_named(tmp_path, base, caplog):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if not permissions_block_writes(locked):
            pytest.skip("this process writes through read-only permissions (running as root): nothing to detect")
        assert directory_problem(str(locked / "cache")) == f"is not writable: permission denied on {locked}"
        with pytest.raises(ConfigError, match=rf"^logger.log_dir={locked} is not writable"):
            validate(with_value(with_value(base, "logger.name", "tensorboard"), "logger.log_dir", str(locked)))
        validate(with_value(base, "data.cache_dir", str(locked)))  # a read-only cache is still read
        assert f"data.cache_dir={locked} is not writable" in caplog.text
    finally:
        locked.chmod(0o700)
    assert directory_problem(str(locked / "cache")) is None


def test_a_read_only_cache_directory_is_a_warning_not_an_error(base, caplog, monkeypatch):
    """What the test above checks where permissions do block writes, with os.access answering as for a user."""
    import qaexp.config.limits as limits

    from qaexp.data import cache_store

    monkeypatch.setattr(limits.os, "access", lambda path, mode: False)
    monkeypatch.setattr(cache_store, "_told_unlockable", set())
    validate(with_value(base, "data.cache_dir", "/tmp"))
    assert "data.cache_dir=/tmp is not writable: permission denied on /tmp: entries found there are read" in caplog.text
    assert cache_store._told_unlockable == {"/tmp"}  # that warning is the one: entries there do not warn again
    with pytest.raises(ConfigError, match=r"^logger.log_dir=/tmp is not writable: permission denied on /tmp: set it"):
        validate(with_value(with_value(base, "logger.name", "tensorboard"), "logger.log_dir", "/tmp"))
