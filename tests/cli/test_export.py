"""qaexp.export: each format round-trips the tiny trained model and is verified beside the original."""
import json
import sys

import numpy as np
import pytest

from helpers.repo import FIXTURES
from qaexp.evaluation import export_check
from qaexp.tools import export

SAMPLE = ["--sample-size", "24"]


def exported(model_dir, fmt: str, output, *extra, capsys) -> dict:
    code = export.main([str(model_dir), "--format", fmt, "--output", str(output), *SAMPLE, "--json", *extra])
    captured = capsys.readouterr()
    assert code == 0, captured.err[-3000:]
    return json.loads(captured.out.strip().splitlines()[-1])


def assert_identical_to_the_original(report: dict) -> None:
    assert report["questions"] == 24 and report["identical_answers"] == 24
    assert report["export"] == report["original"]
    assert report["inputs"] == ["input_ids", "token_type_ids", "attention_mask"]  # BERT-style tokenizer: all three


@pytest.mark.slow
def test_saved_model_has_a_serving_signature_and_the_same_answers(trained_tiny_model, tmp_path, capsys):
    import tensorflow as tf

    output = tmp_path / "saved_model"
    report = exported(trained_tiny_model / "model", "saved_model", output, capsys=capsys)
    assert_identical_to_the_original(report)
    assert report["max_logit_difference"] < 1e-5  # the same TensorFlow graph (oneDNN may fuse ops differently)

    serving = tf.saved_model.load(str(output)).signatures["serving_default"]
    _, inputs = serving.structured_input_signature
    assert {name: (spec.dtype, spec.shape.as_list()) for name, spec in inputs.items()} == {
        name: (tf.int32, [None, None]) for name in ("input_ids", "attention_mask", "token_type_ids")}
    ids = tf.constant([[2, 10, 11, 3, 12, 13, 3]], tf.int32)
    out = serving(input_ids=ids, attention_mask=tf.ones_like(ids), token_type_ids=tf.zeros_like(ids))
    assert set(out) == {"start_logits", "end_logits"} and out["start_logits"].shape == (1, 7)


@pytest.mark.slow
def test_tflite_float32_gives_the_same_answers_and_int8_reports_its_change(trained_tiny_model, tmp_path, capfd):
    """capfd: TF Lite writes its XNNPACK INFO line to file descriptor 2 itself (once per process: the first
    interpreter run here), which qaexp hides like TensorFlow's other notices."""
    capsys = capfd
    model_dir = trained_tiny_model / "model"
    (tmp_path / "model.tflite").write_bytes(b"an earlier export")  # replaced: --overwrite
    float32 = exported(model_dir, "tflite", tmp_path / "model.tflite", "--overwrite", capsys=capsys)
    assert_identical_to_the_original(float32)
    assert float32["format"] == "tflite float32" and float32["max_logit_difference"] < 1e-4

    code = export.main([str(model_dir), "--format", "tflite", "--quantize", "--output", str(tmp_path / "int8.tflite"),
                        *SAMPLE])
    captured = capsys.readouterr()
    text = captured.out
    assert code == 0 and "XNNPACK" not in captured.err, captured.err[-3000:]
    assert "exported tflite int8 (dynamic range)" in text and "quantisation changed EM by" in text
    assert "x the original's time" in text and "vs the original weights'" in text
    # int8 weights: about a quarter of the float32 file
    assert (tmp_path / "int8.tflite").stat().st_size < 0.5 * (tmp_path / "model.tflite").stat().st_size


@pytest.mark.slow
def test_onnx_gives_the_same_answers(trained_tiny_model, tmp_path, capsys):
    pytest.importorskip("tf2onnx")
    onnxruntime = pytest.importorskip("onnxruntime")
    output = tmp_path / "model.onnx"
    report = exported(trained_tiny_model / "model", "onnx", output, capsys=capsys)
    assert_identical_to_the_original(report)
    session = onnxruntime.InferenceSession(str(output), providers=["CPUExecutionProvider"])
    assert sorted(i.name for i in session.get_inputs()) == ["attention_mask", "input_ids", "token_type_ids"]
    ids = np.array([[2, 10, 11, 3, 12, 3]], np.int32)
    start, end = session.run(["start_logits", "end_logits"], {"input_ids": ids, "attention_mask": np.ones_like(ids),
                                                              "token_type_ids": np.zeros_like(ids)})
    assert start.shape == end.shape == (1, 6)


@pytest.mark.slow
def test_verification_on_a_given_file(trained_tiny_model, tmp_path, capsys):
    from qaexp.data.synthetic import generate_examples

    data = tmp_path / "dev.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in generate_examples(30, seed=5, split="test")))
    code = export.main([str(trained_tiny_model / "model"), "--format", "tflite", "--output",
                        str(tmp_path / "m.tflite"), "--eval-file", str(data), "--max-questions", "12"])
    text = capsys.readouterr().out
    assert code == 0 and f"verified on 12 questions of {data}" in text
    assert "answers identical for 12 of 12 questions" in text


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("qaexp export: error: "), err
    return err


def test_a_bad_model_directory_is_one_line(tmp_path, capsys):
    assert export.main([str(tmp_path / "no-model"), "--format", "tflite", "--output", str(tmp_path / "m")]) == 2
    assert "no-model is not a directory" in one_line_error(capsys)
    (tmp_path / "empty").mkdir()
    assert export.main([str(tmp_path / "empty"), "--format", "tflite", "--output", str(tmp_path / "m")]) == 2
    assert "no config.json" in one_line_error(capsys)


def test_an_existing_output_is_refused_unless_overwrite_and_the_model_directory_never_before_loading(tmp_path,
                                                                                                       capsys):
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")  # no weights: every refusal comes before the model would load
    precious = tmp_path / "precious.txt"
    precious.write_text("mine")
    earlier = tmp_path / "earlier"  # an earlier SavedModel export
    (earlier / "variables").mkdir(parents=True)
    (earlier / "saved_model.pb").write_bytes(b"")
    others = tmp_path / "others"
    others.mkdir()
    (others / "notes.txt").write_text("mine")
    cases = [("tflite", precious, [], f"--output {precious} already exists: give a new path, or add --overwrite"),
             ("saved_model", earlier, [], "holds an earlier SavedModel export: give a new path, or add --overwrite"),
             ("saved_model", others, ["--overwrite"], "is a directory with other files in it"),
             ("saved_model", precious, ["--overwrite"], "is a file: a SavedModel is a directory"),
             ("saved_model", model, ["--overwrite"], f"is the model directory {model} itself"),
             ("tflite", model / "config.json", ["--overwrite"], "is part of the model directory")]
    for fmt, output, extra, expected in cases:
        assert export.main([str(model), "--format", fmt, "--output", str(output), *extra]) == 2, expected
        assert expected in one_line_error(capsys)
    assert precious.read_text() == "mine" and (others / "notes.txt").read_text() == "mine"


def test_an_unknown_format_is_one_line(tmp_path, capsys):
    assert export.main([str(tmp_path), "--format", "torchscript", "--output", str(tmp_path / "m")]) == 2
    assert "unknown format 'torchscript': choose saved_model, tflite or onnx" in one_line_error(capsys)


def test_onnx_without_its_packages_is_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "tf2onnx", None)  # as if not installed
    assert export.main([str(tmp_path), "--format", "onnx", "--output", str(tmp_path / "m.onnx")]) == 2
    assert "--format onnx needs tf2onnx, which is not installed: pip install tf2onnx onnxruntime" \
        in one_line_error(capsys)


def test_quantize_is_for_tflite_only(tmp_path, capsys):
    with pytest.raises(SystemExit) as exited:
        export.main([str(tmp_path), "--format", "onnx", "--quantize", "--output", str(tmp_path / "m.onnx")])
    assert exited.value.code == 2 and "--quantize applies to --format tflite only" in capsys.readouterr().err


def test_nan_logits_fail_the_verification_in_one_line(tmp_path, capsys, monkeypatch):
    start = np.zeros((3, 4), np.float32)
    end = start.copy()
    end[1, 2] = np.nan
    with pytest.raises(export_check.VerificationFailed, match="NaN or infinite logits for 1 of 3 windows"):
        export_check.check_finite(start, end, "onnx")

    def broken_export(args):
        export_check.check_finite(start, end, args.format)

    monkeypatch.setattr(export, "export", broken_export)
    assert export.main([str(tmp_path), "--format", "onnx", "--output", str(tmp_path / "m.onnx")]) == 1
    assert "verification failed: the onnx export gives NaN" in one_line_error(capsys)


def test_a_float32_export_that_changes_answers_fails(tmp_path, capsys, monkeypatch):
    report = {"questions": 10, "identical_answers": 9, "differing_ids": ["q7"], "original": {}, "export": {}}
    monkeypatch.setattr(export, "export", lambda args: report)
    assert export.main([str(tmp_path), "--format", "tflite", "--output", str(tmp_path / "m"), "--json"]) == 1
    assert "the float32 export changed 1 answers (first ids: q7)" in one_line_error(capsys)


PARITY = FIXTURES / "parity"


@pytest.mark.slow
@pytest.mark.parametrize("family", ["bert", "roformer", "distilbert", "roberta", "electra", "albert", "deberta-v2",
                                    "modernbert"])
def test_every_family_converts_to_tflite_with_the_same_logits(family, tmp_path):
    """Each Keras 3 family's graph is one TensorFlow Lite converts with its built-in ops (no indexing that adds
    axes, which it cannot convert) and whose weights it freezes (not uninitialised resource variables: NaN)."""
    from qaexp.model.pretrained import load_qa_model
    from qaexp.output.export_formats import tflite_runner, write_tflite

    model = load_qa_model(str(PARITY / family))
    data = np.load(PARITY / family / "inputs_logits.npz")
    names = [name for name in ("input_ids", "token_type_ids", "attention_mask") if name in model.input_names]
    batch = {name: data[name].astype(np.int32) for name in names}
    write_tflite(model, names, str(tmp_path / "model.tflite"), quantize=False)
    start, end = tflite_runner(str(tmp_path / "model.tflite"), names)(batch)
    original = model(batch)
    np.testing.assert_allclose(start, np.asarray(original["start_logits"]), atol=1e-4)
    np.testing.assert_allclose(end, np.asarray(original["end_logits"]), atol=1e-4)
