"""qaexp.tools.predict: file mode against the evaluation CLI, the saved model as a transformers checkpoint, input
errors."""
import json

import pytest

from helpers.repo import FIXTURES
from helpers.cli import run_cli
from qaexp.model.saved import load_saved
from qaexp.tools import predict

QUICK_RUN = ["experiment=quickstart", "data.num_train=300", "data.num_validation=40"]  # as trained_tiny_model


def quick_data_config():
    from helpers.config import compose

    return compose(QUICK_RUN).data


def validation_records() -> list[dict]:
    from qaexp.data.squad import load_splits

    return load_splits(quick_data_config()).validation


def window_args() -> list[str]:
    """The run's window and span settings, so predict reproduces the run's own predictions."""
    data = quick_data_config()
    return ["--max-length", str(data.max_length), "--doc-stride", str(data.doc_stride),
            "--max-answer-length", str(data.max_answer_length)]


def write_squad(records: list[dict], path) -> None:
    """Official nested SQuAD format, one paragraph per record."""
    articles = [{"title": r["title"], "paragraphs": [{"context": r["context"], "qas": [{
        "id": r["id"], "question": r["question"],
        "answers": [{"text": t, "answer_start": s} for t, s in zip(r["answers"]["text"], r["answers"]["answer_start"])],
    }]}]} for r in records]
    path.write_text(json.dumps({"version": "1.1", "data": articles}))


@pytest.mark.slow
def test_file_mode_scored_by_the_evaluation_cli_matches_the_run(trained_tiny_model, tmp_path):
    data = tmp_path / "dev.json"
    write_squad(validation_records(), data)
    (tmp_path / "pred.json").write_text("{}")  # an earlier output: --overwrite replaces it
    result = run_cli(["-m", "qaexp.predict", str(trained_tiny_model / "model"), "--file", str(data),
                      "--output", str(tmp_path / "detailed.json"), "--official-output", str(tmp_path / "pred.json"),
                      "--overwrite", "--top-k", "3", "--batch-size", "7", *window_args()])
    assert result.returncode == 0, result.stderr[-3000:]
    assert "answered 40 questions" in result.stderr
    official = json.loads((tmp_path / "pred.json").read_text())
    assert official == json.loads((trained_tiny_model / "predictions.json").read_text())

    scored = run_cli(["-m", "qaexp.evaluate", str(data), str(tmp_path / "pred.json")])
    assert scored.returncode == 0, scored.stderr
    metrics = json.loads((trained_tiny_model / "metrics.json").read_text())
    assert json.loads(scored.stdout) == pytest.approx({"exact_match": metrics["exact_match"], "f1": metrics["f1"]})

    detailed = json.loads((tmp_path / "detailed.json").read_text())
    assert detailed.keys() == official.keys()
    for qid, entry in detailed.items():
        assert entry["answer"] == official[qid] == entry["answers"][0]["text"]
        assert entry["no_answer"] is (official[qid] == "")
        scores = [a["score"] for a in entry["answers"]]
        assert 1 <= len(scores) <= 3 and scores == sorted(scores, reverse=True)


@pytest.mark.slow
def test_json_lines_input_gives_the_same_answers(trained_tiny_model, tmp_path, capsys):
    records = validation_records()[:10]
    lines = tmp_path / "questions.jsonl"
    # Questions to answer need no gold answers: empty ones, or no "answers" key at all.
    unlabelled = [{**r, "answers": []} if n % 2 else {k: v for k, v in r.items() if k != "answers"}
                  for n, r in enumerate(records)]
    lines.write_text("".join(json.dumps(r) + "\n" for r in unlabelled))
    assert predict.main([str(trained_tiny_model / "model"), "--file", str(lines), *window_args()]) == 0
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    run_predictions = json.loads((trained_tiny_model / "predictions.json").read_text())
    assert {qid: entry["answer"] for qid, entry in printed.items()} == {r["id"]: run_predictions[r["id"]]
                                                                       for r in records}


PARITY = FIXTURES / "parity"


def expected_tensors(family: str, config: dict) -> dict:
    """{name: shape} that transformers 5's `...ForQuestionAnswering` of `config` holds, from the family's parity
    fixture (saved by transformers 5 itself, make_fixtures.py): its layer-0 names repeated for every layer, its
    dimensions replaced by `config`'s."""
    import re

    from safetensors import safe_open

    fixture = json.loads((PARITY / family / "config.json").read_text())
    keys = ("vocab_size", "hidden_size", "intermediate_size", "max_position_embeddings")
    dims = {fixture[k]: config[k] for k in keys}
    head = fixture["hidden_size"] // fixture["num_attention_heads"]
    dims[head] = config["hidden_size"] // config["num_attention_heads"]
    # distinct fixture sizes (and 2 start/end logits = 2 token types), so each dimension maps to one size
    assert len(dims) == len(keys) + 1 and fixture["type_vocab_size"] == config["type_vocab_size"] == 2
    expected = {}
    with safe_open(str(PARITY / family / "model.safetensors"), "numpy") as f:
        for name in f.keys():
            shape = tuple(dims.get(d, d) for d in f.get_slice(name).get_shape())
            if re.search(r"\.layer\.\d+\.", name):
                if ".layer.0." in name:
                    expected.update({name.replace(".layer.0.", f".layer.{i}."): shape
                                     for i in range(config["num_hidden_layers"])})
            else:
                expected[name] = shape
    return expected


@pytest.mark.slow
def test_the_saved_model_is_a_transformers_checkpoint_that_reloads_exactly(trained_tiny_model, tmp_path):
    """A run's model directory is what transformers 5 loads as `AutoModelForQuestionAnswering` (config.json naming
    the class it maps the model_type to, PyTorch-named float32 safetensors of exactly that model's names and
    shapes), and qaexp reads it back as the same model. (transformers' question-answering pipeline, which this
    test used to compare answers with, has no TensorFlow version in transformers 5 and is gone from 5.3; loading
    in transformers 5 + torch is checked by tests/fixtures/parity/check_saved_models.py, the logits against
    transformers' by test_parity.)"""
    import numpy as np
    from safetensors import safe_open
    from transformers import AutoConfig
    from transformers.models.auto.modeling_auto import MODEL_FOR_QUESTION_ANSWERING_MAPPING_NAMES

    from qaexp.model.families.weights import save_checkpoint
    from qaexp.model.pretrained import load_pretrained

    model_dir = trained_tiny_model / "model"
    config = AutoConfig.from_pretrained(str(model_dir))  # transformers' own reading of config.json (torch-free)
    assert config.architectures == [MODEL_FOR_QUESTION_ANSWERING_MAPPING_NAMES[config.model_type]]
    with safe_open(str(model_dir / "model.safetensors"), "numpy") as f:
        assert f.metadata() == {"format": "pt"}  # transformers' PyTorch layout, not a TF model's
        saved = {name: f.get_tensor(name) for name in f.keys()}
    assert {name: value.shape for name, value in saved.items()} == expected_tensors(config.model_type,
                                                                                    config.to_dict())
    assert all(value.dtype == np.float32 for value in saved.values())

    model, report = load_pretrained(str(model_dir))
    assert report.new == [] and report.unused == [] and sorted(report.loaded) == sorted(saved)
    save_checkpoint(model, str(tmp_path))  # saved again: the very same tensors
    with safe_open(str(tmp_path / "model.safetensors"), "numpy") as f:
        assert set(f.keys()) == set(saved) and all(np.array_equal(f.get_tensor(n), saved[n]) for n in saved)

    saved_model = load_saved(str(model_dir))
    reloaded = saved_model.model
    batch = saved_model.tokenizer(["Where did Ada grow up?"], ["Ada grew up in Lyon."], return_tensors="np")
    first, second = model(model.select_inputs(dict(batch))), reloaded(reloaded.select_inputs(dict(batch)))
    for key in ("start_logits", "end_logits"):
        assert np.array_equal(np.asarray(first[key]), np.asarray(second[key]))


def test_no_question_and_no_file_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exited:
        predict.main(["some/model"])
    assert exited.value.code == 2 and "give --question and --context, or --file" in capsys.readouterr().err


def test_output_without_file_is_a_usage_error(capsys):
    with pytest.raises(SystemExit):
        predict.main(["some/model", "--question", "q", "--context", "c", "--output", "o.json"])
    assert "--output and --official-output need --file" in capsys.readouterr().err


def test_missing_input_file_is_one_line(tmp_path, capsys):
    assert predict.main([str(tmp_path), "--file", str(tmp_path / "absent.json")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "absent.json" in err


def test_duplicate_ids_are_rejected_before_loading_the_model(tmp_path, capsys):
    record = {"id": "x", "context": "Ada wrote it.", "question": "Who wrote it?", "answers": []}
    path = tmp_path / "dup.jsonl"
    path.write_text(json.dumps(record) + "\n" + json.dumps(record) + "\n")
    assert predict.main([str(tmp_path / "no-model"), "--file", str(path)]) == 2
    assert "has duplicate id 'x': ids must be unique" in capsys.readouterr().err


def test_blank_question_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exited:
        predict.main(["some/model", "--question", "  ", "--context", "Ada wrote it."])
    assert exited.value.code == 2 and "--question is empty" in capsys.readouterr().err


def test_empty_context_is_one_line_before_loading_the_model(tmp_path, capsys):
    context = tmp_path / "passage.txt"
    context.write_text("\n")
    assert predict.main([str(tmp_path / "no-model"), "--question", "Who?", "--context", f"@{context}"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "the context is empty" in err


def test_missing_model_directory_is_one_line(tmp_path, capsys):
    assert predict.main([str(tmp_path / "no-model"), "--question", "Who?", "--context", "Ada wrote it."]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no-model is not a directory" in err


def test_an_empty_model_directory_is_one_line(tmp_path):
    result = run_cli(["-m", "qaexp.predict", str(tmp_path), "--question", "Who?", "--context", "Ada did."])
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("qaexp predict: error: ")
    assert "has no config.json" in result.stderr


def test_a_run_directory_given_for_its_model_is_one_line_naming_the_model(trained_tiny_model):
    result = run_cli(["-m", "qaexp", "predict", str(trained_tiny_model), "--question", "Who?", "--context", "Ada."])
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.strip().splitlines() == [
        f"qaexp predict: error: {trained_tiny_model} is a qaexp run directory, not a model directory: give its "
        f"model, {trained_tiny_model / 'model'}"]


def test_the_decided_answer_leads_the_ranking_even_when_it_is_not_among_the_n_best():
    from qaexp.evaluation.answering import decided_first

    nbest = [{"text": "Ada", "probability": 0.7, "start_logit": 2.0, "end_logit": 1.0},
             {"text": "", "probability": 0.2, "start_logit": 0.5, "end_logit": 0.5},
             {"text": "Lyon", "probability": 0.1, "start_logit": 0.1, "end_logit": 0.0}]
    assert [c["text"] for c in decided_first(nbest, "")] == ["", "Ada", "Lyon"]
    assert [c["text"] for c in decided_first(nbest, "Ada")] == ["Ada", "", "Lyon"]
    # v2: the threshold can pick "" when the null answer was not kept among the n best; it still comes first
    # (predict prints it, serve returns it with the empty span), with no probability of its own.
    spans_only = [nbest[0], nbest[2]]
    assert decided_first(spans_only, "")[0] == {"text": "", "probability": 0.0, "start_logit": 0.0, "end_logit": 0.0}
    assert [c["text"] for c in decided_first(spans_only, "")[1:]] == ["Ada", "Lyon"]


# ---- what predict may write over -------------------------------------------------------------------------------


@pytest.fixture
def questions(tmp_path):
    path = tmp_path / "questions.jsonl"
    path.write_text(json.dumps({"id": "q0", "context": "Ada wrote it.", "question": "Who wrote it?"}) + "\n")
    return path


@pytest.mark.parametrize("case", ["the input", "an earlier output"])
def test_an_output_over_the_input_or_an_existing_file_is_refused_before_anything_runs(case, questions, tmp_path):
    earlier = tmp_path / "pred.json"
    earlier.write_text('{"q0": "kept"}')
    target, extra = (questions, ["--overwrite"]) if case == "the input" else (earlier, [])
    before = target.read_text()
    result = run_cli(["-m", "qaexp.predict", str(tmp_path / "no-model"), "--file", str(questions),
                      "--official-output", str(target), *extra])
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    if case == "the input":  # even with --overwrite
        assert f"--official-output {target} is --file {questions} itself" in result.stderr
    else:
        assert f"--official-output {target} already exists: give a new path, or add --overwrite" in result.stderr
    assert target.read_text() == before


def test_a_hard_link_to_the_input_a_model_file_both_outputs_on_one_file_and_a_directory_are_refused(
        questions, tmp_path, capsys):
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    link = tmp_path / "link.jsonl"
    link.hardlink_to(questions)
    cases = {"is --file": ["--output", str(link), "--overwrite"],  # another name of the same file
             "is part of the model directory": ["--output", str(model / "config.json"), "--overwrite"],
             "name the same file": ["--output", str(tmp_path / "a.json"), "--official-output",
                                    str(tmp_path / "." / "a.json")],
             "is a directory: give the path of a file": ["--output", str(tmp_path)]}
    for expected, outputs in cases.items():
        assert predict.main([str(model), "--file", str(questions), *outputs]) == 2, expected
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and expected in err, err
    assert (model / "config.json").read_text() == "{}" and not (tmp_path / "a.json").exists()


def test_a_question_without_an_answer_prints_no_answer_not_an_empty_line(trained_tiny_model):
    """v2 settings whose threshold gives every question no answer: the text line says so (an empty text before
    the tab read as no output); --json keeps the empty string for scripts."""
    args = ["-m", "qaexp", "predict", str(trained_tiny_model / "model"), "--question", "Who wrote it?", "--context",
            "Ada Lovelace wrote it in 1843.", "--version-2", "--null-threshold", "-1e9"]  # (argparse took it for a flag)
    text = run_cli(args)
    assert text.returncode == 0, text.stderr[-2000:]
    answer, probability = text.stdout.splitlines()[0].split("\t")
    assert answer == "(no answer)" and 0 <= float(probability) <= 1
    printed = run_cli([*args, "--json"])
    assert json.loads(printed.stdout)[0]["text"] == ""


def test_a_tokenizer_larger_than_the_models_vocabulary_is_one_line_before_the_model_loads(trained_tiny_model,
                                                                                          tmp_path):
    """Another model's tokenizer beside config.json: its ids past vocab_size failed mid-run with TensorFlow's
    traceback (and give zeros on a GPU)."""
    import shutil

    model = tmp_path / "model"
    shutil.copytree(trained_tiny_model / "model", model)
    config = json.loads((model / "config.json").read_text())
    size = config["vocab_size"]
    (model / "config.json").write_text(json.dumps({**config, "vocab_size": size - 10}))
    result = run_cli(["-m", "qaexp", "predict", str(model), "--question", "Who?", "--context", "Ada."])
    assert result.returncode == 2 and result.stdout == ""
    line = result.stderr.strip().splitlines()
    assert len(line) == 1 and line[0].startswith(
        f"qaexp predict: error: the tokenizer in {model} has {size} tokens, more than the model's vocab_size "
        f"{size - 10} (config.json): it is another model's tokenizer"), line
