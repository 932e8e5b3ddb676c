"""SQuAD v2: the official script's figures from the null odds, the threshold tuned and carried to inference,
extra evaluation sets, evaluation-only runs without training data."""
import collections
import json
import math
import re
import string

import numpy as np
import pytest
from omegaconf import OmegaConf

from helpers.cli import run_cli
from qaexp.evaluation.inference import Evaluation, score_answers
from qaexp.evaluation.postprocess import postprocess_predictions
from qaexp.evaluation.threshold import settle_threshold


# ---- an independent reference: the official SQuAD v2.0 evaluation script's documented algorithm --------------

def _ref_normalize(text):
    text = "".join(ch for ch in text.lower() if ch not in set(string.punctuation))
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def _ref_f1(gold, pred):
    gold_toks, pred_toks = _ref_normalize(gold).split(), _ref_normalize(pred).split()
    if not gold_toks or not pred_toks:
        return float(gold_toks == pred_toks)
    same = sum((collections.Counter(gold_toks) & collections.Counter(pred_toks)).values())
    if same == 0:
        return 0.0
    precision, recall = same / len(pred_toks), same / len(gold_toks)
    return 2 * precision * recall / (precision + recall)


def official_v2(examples, preds, na_probs, thresh):
    """EM/F1 at `thresh`, HasAns/NoAns, best_exact/best_f1 and their thresholds, as the official v2 script does."""
    has_ans = {e["id"]: bool(e["answers"]["text"]) for e in examples}
    exact, f1 = {}, {}
    for e in examples:
        golds = [a for a in e["answers"]["text"] if _ref_normalize(a)] or [""]
        exact[e["id"]] = max(float(_ref_normalize(g) == _ref_normalize(preds[e["id"]])) for g in golds)
        f1[e["id"]] = max(_ref_f1(g, preds[e["id"]]) for g in golds)

    def thresholded(scores):
        return {q: float(not has_ans[q]) if na_probs[q] > thresh else s for q, s in scores.items()}

    def best(scores):
        score = best_score = sum(1 for q in has_ans if not has_ans[q])
        best_thresh = 0.0
        for q in sorted(na_probs, key=lambda k: na_probs[k]):
            if q not in scores:  # the na-prob file may name questions outside the data
                continue
            score += scores[q] if has_ans[q] else (-1 if preds[q] else 0)
            if score > best_score:
                best_score, best_thresh = score, na_probs[q]
        return 100.0 * best_score / len(scores), best_thresh

    ex, f = thresholded(exact), thresholded(f1)
    out = {"exact": 100.0 * sum(ex.values()) / len(ex), "f1": 100.0 * sum(f.values()) / len(f), "total": len(ex)}
    for name, want in (("HasAns", True), ("NoAns", False)):
        ids = [q for q in has_ans if has_ans[q] == want]
        out.update({f"{name}_exact": 100.0 * sum(ex[q] for q in ids) / len(ids),
                    f"{name}_f1": 100.0 * sum(f[q] for q in ids) / len(ids), f"{name}_total": len(ids)})
    out["best_exact"], out["best_exact_thresh"] = best(exact)
    out["best_f1"], out["best_f1_thresh"] = best(f1)
    return out


# ---- fuzzed examples and logits ----------------------------------------------------------------------------

WORDS = "the a an Ada Lyon river 1871 north old , . red stone bridge city of".split()
CONTENT_WORDS = "Ada Lyon river 1871 north old red stone bridge city".split()  # no gold normalises to ""


def fuzzed(seed, n_examples=40, length=24, vocabulary=WORDS):
    """Examples with answerable and unanswerable questions, one or two windows each, and random logits."""
    rng = np.random.default_rng(seed)
    examples, index, offsets = [], [], []
    for i in range(n_examples):
        words = [vocabulary[j] for j in rng.integers(0, len(vocabulary), 18)]
        context = " ".join(words)
        starts = np.cumsum([0] + [len(w) + 1 for w in words[:-1]])
        a, b = sorted(rng.integers(0, len(words), 2))
        answerable = rng.random() < 0.6
        text = context[starts[a]:starts[b] + len(words[b])]
        examples.append({"id": f"q{i}", "context": context, "question": "q?",
                         "answers": {"text": [text] if answerable else [],
                                     "answer_start": [int(starts[a])] if answerable else []}})
        for first in ((0,) if rng.random() < 0.5 else (0, 9)):
            window = np.full((length, 2), -1)
            for t, w in enumerate(range(first, min(first + 12, len(words)))):
                window[2 + t] = (starts[w], starts[w] + len(words[w]))
            index.append(i)
            offsets.append(window)
    shape = (len(index), length)
    start, end = rng.normal(0, 2, shape).astype(np.float32), rng.normal(0, 2, shape).astype(np.float32)
    return examples, np.array(index), np.stack(offsets), start, end


@pytest.mark.parametrize("seed", range(6))
def test_v2_figures_equal_the_official_scripts_on_fuzzed_logits(seed):
    examples, index, offsets, start, end = fuzzed(seed, vocabulary=WORDS if seed < 3 else CONTENT_WORDS)
    answers = postprocess_predictions(examples, index, offsets, start, end, version_2=True, n_best_size=5,
                                      max_answer_length=8)
    finite = [o for o in answers.null_odds.values() if math.isfinite(o)]
    for threshold in (0.0, float(np.median(finite)), -1.5):
        ours = score_answers(examples, answers, True, threshold)
        reference = official_v2(examples, answers.span_answers, answers.null_odds, threshold)
        for key, value in reference.items():
            assert ours[key] == pytest.approx(value, abs=1e-9), (key, threshold)
        if seed < 3:
            continue  # golds like "the" normalise to "": the script scores "" right for them only without na-probs
        # the predictions written at that threshold score the same without the null odds
        at_threshold = answers.at_threshold(threshold).predictions
        plain = official_v2(examples, at_threshold, {q: 0.0 for q in at_threshold}, 1.0)
        assert ours["exact"] == pytest.approx(plain["exact"]) and ours["f1"] == pytest.approx(plain["f1"])


@pytest.mark.parametrize("seed", range(3))
def test_tuning_reaches_the_best_f1_and_split_tuning_reports_the_held_out_part(seed):
    examples, index, offsets, start, end = fuzzed(seed, n_examples=80)
    answers = postprocess_predictions(examples, index, offsets, start, end, version_2=True, n_best_size=5,
                                      max_answer_length=8)
    configured = Evaluation(0.0, score_answers(examples, answers, True, 0.0), answers)
    data = OmegaConf.create({"version_2_with_negative": True, "null_threshold_tuning": "eval",
                             "null_score_diff_threshold": 0.0, "null_tuning_fraction": 0.5})
    tuned, record = settle_threshold(examples, configured, data, seed=seed)
    assert record["source"] == "tuned"
    assert tuned.scores["f1"] == pytest.approx(official_v2(examples, answers.span_answers, answers.null_odds,
                                                           0.0)["best_f1"])
    assert tuned.answers.predictions == answers.at_threshold(record["value"]).predictions

    data.null_threshold_tuning = "split"
    _, split_record = settle_threshold(examples, configured, data, seed=seed)
    held_out = split_record["held_out"]
    assert held_out["questions"] == 40 and split_record["tuned_on"].startswith("40 of 80")
    order = np.random.default_rng(seed).permutation(80)  # the documented split: a seeded shuffle, first half tunes
    tuning = [examples[i] for i in sorted(order[:40])]
    held = [examples[i] for i in sorted(order[40:])]
    tuned_part = official_v2(tuning, answers.span_answers, answers.null_odds, 0.0)
    at_official = official_v2(tuning, answers.span_answers, answers.null_odds, tuned_part["best_f1_thresh"])
    if at_official["f1"] == pytest.approx(tuned_part["best_f1"]):  # the script's threshold reproduces its best F1
        assert split_record["value"] == tuned_part["best_f1_thresh"]
    else:  # its sweep's start, "no answer everywhere", was best: the threshold must say so
        assert all(answers.null_odds[e["id"]] > split_record["value"] for e in tuning)
    assert official_v2(tuning, answers.span_answers, answers.null_odds,
                       split_record["value"])["f1"] == pytest.approx(tuned_part["best_f1"])
    assert held_out["f1"] == pytest.approx(official_v2(held, answers.span_answers, answers.null_odds,
                                                       split_record["value"])["f1"])
    _, again = settle_threshold(examples, configured, data, seed=seed)
    assert again == split_record  # seeded


def test_load_splits_of_a_hub_dataset_without_a_training_split(tmp_path):
    from qaexp.data.squad import load_splits
    from qaexp.data.synthetic import generate_examples
    from qaexp.errors import DataError

    records = generate_examples(5, seed=1, split="validation")
    (tmp_path / "validation.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    cfg = OmegaConf.create({"source": "hub", "name": str(tmp_path), "config_name": None, "train_split": "train",
                            "validation_split": "validation", "on_bad_answer": "fix", "max_train_samples": None,
                            "max_eval_samples": None, "version_2_with_negative": False})
    splits = load_splits(cfg, with_train=False)
    assert splits.train is None and [r["id"] for r in splits.validation] == [r["id"] for r in records]
    with pytest.raises(DataError, match="no split 'train'"):
        load_splits(cfg)  # a training run does need it


# ---- the user's path: an evaluation-only v2 run of a saved model, then predict ------------------------------

@pytest.mark.slow
def test_a_v2_run_records_best_thresholds_every_evaluation_and_saves_the_tuned_threshold(v2_run):
    metrics = json.loads((v2_run / "metrics.json").read_text())
    history = metrics["history"]
    assert {"val_best_f1", "val_best_f1_thresh", "val_HasAns_f1", "val_NoAns_f1"} <= set(history)
    threshold = metrics["null_threshold"]
    assert threshold["source"] == "tuned" and threshold["tuned_on"].startswith("30 of 60")
    assert threshold["held_out"]["questions"] == 30
    v2 = metrics["squad_v2"]
    assert {"best_exact", "best_f1", "best_f1_thresh", "HasAns_f1", "NoAns_f1"} <= set(v2)
    saved = json.loads((v2_run / "model" / "qaexp.json").read_text())
    assert saved["null_score_diff_threshold"] == threshold["value"] and saved["version_2_with_negative"] is True
    assert (saved["max_length"], saved["doc_stride"]) == (256, 96)
    assert (v2_run / "analysis.md").exists() and (v2_run / "analysis_confusion.png").exists()


@pytest.mark.slow
def test_evaluation_only_run_needs_no_training_data(v2_run, tmp_path):
    run_dir = tmp_path / "run"
    result = run_cli(["-m", "qaexp", "experiment=quickstart", f"model.checkpoint={v2_run / 'model'}", "data=json",
                      f"data.train_file={tmp_path / 'missing-train.json'}",
                      f"data.validation_file={v2_run / 'validation.jsonl'}", "data.max_length=256",
                      "data.doc_stride=96", "data.version_2_with_negative=true", "trainer.epochs=0",
                      "trainer.verbose=0", "trainer.analyze=false", f"hydra.run.dir={run_dir}"])
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["status"] == "completed" and metrics["train_examples"] == 0 and metrics["train_windows"] == 0
    assert metrics["eval_examples"] == 60 and "tokenising train" not in (run_dir / "__main__.log").read_text()
    assert not (run_dir / "analysis.md").exists()  # trainer.analyze=false


@pytest.mark.slow
def test_predict_gives_the_runs_own_v2_answers_with_the_saved_threshold(v2_run, tmp_path):
    out = tmp_path / "pred.json"
    result = run_cli(["-m", "qaexp.predict", str(v2_run / "model"), "--file", str(v2_run / "validation.jsonl"),
                      "--official-output", str(out)])
    assert result.returncode == 0, result.stderr[-3000:]
    run_predictions = json.loads((v2_run / "predictions.json").read_text())
    assert json.loads(out.read_text()) == run_predictions
    # the threshold matters: exactly the questions whose null odds exceed the saved one get no answer
    odds = json.loads((v2_run / "null_odds.json").read_text())
    threshold = json.loads((v2_run / "model" / "qaexp.json").read_text())["null_score_diff_threshold"]
    assert 0 < sum(text == "" for text in run_predictions.values()) < len(run_predictions)
    assert {q for q, text in run_predictions.items() if text == ""} == \
        {q for q, o in odds.items() if o > threshold}


@pytest.mark.slow
def test_extra_evaluation_set_in_metrics_report_and_model_card(v2_run, tmp_path):
    from qaexp.evaluation.metrics import evaluate_v1, gold_answers
    from qaexp.data.squad import read_records

    metrics = json.loads((v2_run / "metrics.json").read_text())
    hard = metrics["extra_eval"]["hard"]
    assert hard["eval_examples"] == 30 and hard["version_2_with_negative"] is False
    predictions = json.loads((v2_run / "extra_eval" / "hard" / "predictions.json").read_text())
    records = read_records(OmegaConf.load(v2_run / ".hydra" / "config.yaml").data.extra_eval[0].file)
    assert evaluate_v1(gold_answers(records), predictions)["f1"] == pytest.approx(hard["f1"])
    card = (v2_run / "model" / "README.md").read_text()
    assert "## Other evaluation sets" in card and f"| hard | 30 | {hard['exact_match']:.2f} | {hard['f1']:.2f} |" in card
    # the card's snippet applies the model's threshold to the [CLS] score (transformers 5 has no QA pipeline)
    assert f"THRESHOLD = {metrics['null_threshold']['value']!r}" in card and "> THRESHOLD:" in card
    result = run_cli(["-m", "qaexp.report", str(v2_run), "--out", str(tmp_path)])
    assert result.returncode == 0, result.stderr[-3000:]
    report = (tmp_path / "results.md").read_text()
    assert "## Other evaluation sets" in report and "hard" in report and f"{hard['f1']:.2f}" in report


def test_the_models_qaexp_json_wins_over_the_run_config_and_flags_win_over_both(tmp_path):
    from qaexp.model.saved import answer_settings, write_inference_settings

    (tmp_path / ".hydra").mkdir()
    (tmp_path / ".hydra" / "config.yaml").write_text(
        "data:\n  max_length: 200\n  doc_stride: 64\n  version_2_with_negative: true\n  null_score_diff_threshold: 0.0\n")
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    data = OmegaConf.create({"max_length": 200, "doc_stride": 64, "max_answer_length": 20,
                             "version_2_with_negative": True})
    write_inference_settings(str(model), data, -2.5, "tuned")
    settings = answer_settings(str(model), {})
    assert (settings.null_score_diff_threshold, settings.max_answer_length) == (-2.5, 20)
    assert answer_settings(str(model), {"null_score_diff_threshold": 1.0}).null_score_diff_threshold == 1.0


@pytest.mark.parametrize("overrides, words", [
    (["data.null_threshold_tuning=eval"], "needs data.version_2_with_negative=true"),
    (["data.version_2_with_negative=true", "data.null_threshold_tuning=best"], "is not one of off, eval, split"),
    (["data.version_2_with_negative=true", "data.null_tuning_fraction=1.0"], "valid: (0, 1)"),
    (["data.extra_eval=[{name:adv}]"], "(adv) needs file=PATH"),
    (["data.extra_eval=[{name:adv,source:hub}]"], "needs dataset=NAME"),
    (["data.extra_eval=[{name:a,file:x.json},{name:a,file:y.json}]"], "must be a unique name"),
])
def test_bad_evaluation_options_are_one_clear_error(overrides, words):
    from helpers.config import compose
    from qaexp.config.validation import validate
    from qaexp.errors import ConfigError

    cfg = compose(["experiment=quickstart", *overrides])
    with pytest.raises(ConfigError) as error:
        validate(cfg)
    assert words in str(error.value) and "\n" not in str(error.value)


def test_trackers_get_each_extra_sets_scores_as_eval_name_f1():
    from qaexp.run.tracking import summary_scalars

    scalars = summary_scalars({"status": "completed", "exact_match": 50.0, "f1": 60.0,
                               "extra_eval": {"adv": {"exact_match": 20.0, "f1": 30.5, "eval_examples": 9}}})
    assert scalars["eval/adv/f1"] == 30.5 and scalars["eval/adv/exact_match"] == 20.0 and scalars["f1"] == 60.0
