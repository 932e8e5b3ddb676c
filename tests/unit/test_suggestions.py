""""Did you mean": a mistyped key or group option on the command line names the nearest valid one."""
import pytest

from helpers.cli import run_cli
from qaexp.config.suggestions import for_overrides, nearest_key


@pytest.mark.parametrize("override, suggestion", [
    ("trainer.epoch=1", "did you mean trainer.epochs=1?"),
    ("+trainer.epoch=1", "did you mean trainer.epochs=1?"),  # not Hydra's advice to add the key with +
    ("model=robeta-base", "did you mean model=roberta-base?"),
    ("experiment=quickstrt", "did you mean experiment=quickstart?"),
    ("modle=tiny", "did you mean model=tiny?"),
])
def test_a_typo_names_the_nearest_key_or_option(tmp_path, override, suggestion):
    result = run_cli(["-m", "qaexp", "model=tiny", "data=synthetic", override, f"hydra.run.dir={tmp_path}"],
                     timeout=300)
    assert result.returncode != 0
    assert suggestion in result.stderr.strip().splitlines()[-1], result.stderr[-2000:]


def test_no_suggestion_for_valid_overrides_or_far_off_names():
    options = {"model": ["roberta-base", "tiny"]}.get
    assert for_overrides(["model=tiny", "trainer.epochs=2", "model.architecture.anything=1",
                          "hydra.run.dir=x", "model=tiny,roberta-base"], lambda group: options(group, [])) is None
    assert for_overrides(["model=zzzzzz"], lambda group: options(group, [])) is None
    assert nearest_key("model.architecture.hidden_sise") is None  # a free-form dict: any key is valid
    assert nearest_key("data.validation_fle") == "data.validation_file"
    assert for_overrides(["model=tiny,robeta-base"], lambda group: options(group, [])) \
        == "did you mean model=tiny,roberta-base?"
