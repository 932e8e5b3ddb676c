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
    # free-form in the schema: its keys are checked against the model type (validation.architecture_problem)
    assert nearest_key("model.architecture.hidden_sise") is None
    assert nearest_key("data.validation_fle") == "data.validation_file"
    assert for_overrides(["model=tiny,robeta-base"], lambda group: options(group, [])) \
        == "did you mean model=tiny,roberta-base?"


@pytest.mark.parametrize("word, fix", [
    # each element of a sweep or a dict value is quoted alone: the quoted forms still sweep and still are dicts
    ("data.train_file=/a/é.json,/b/#.json", """'data.train_file="/a/é.json","/b/#.json"'"""),
    ("data.extra_eval=[{name:adv,file:/é/adv.json}]", """'data.extra_eval=[{name:adv,file:"/é/adv.json"}]'"""),
    ("data.name=foo ü bar", """'data.name="foo ü bar"'"""),
])
def test_an_unquoted_character_outside_hydras_grammar_gets_the_quoted_override_that_parses(word, fix):
    from qaexp.config.suggestions import parse_overrides

    parsed, problem = parse_overrides([word])
    assert problem.endswith(f"quote the value, {fix} (the outer quotes are the shell's)")
    assert parse_overrides([fix[1:-1]])[1] is None


def test_a_key_or_a_value_hydras_grammar_cannot_read_is_one_line_without_a_wrong_fix():
    from qaexp.config.suggestions import parse_overrides

    assert parse_overrides(["data.extra_eval[0].nam=x"])[1].startswith(
        "'data.extra_eval[0].nam' is not a config key Hydra can override ('[' is outside its grammar)")
    assert parse_overrides(["data.extra_eval=[{name:a"])[1] == (
        "data.extra_eval=[{name:a cannot be read by Hydra's override grammar: no viable alternative at input "
        "'[{name:a' (see https://hydra.cc/docs/advanced/override_grammar/basic/)")
    assert "put the value in quotes" in parse_overrides(["data.train_file=C:\\é\\"])[1]  # no quoting keeps it
