"""Model cards (README.md in the Hugging Face Hub's format) for saved model directories.

The YAML header is built with huggingface_hub's ModelCardData/EvalResult, so the Hub reads its model-index
(EM/F1) as evaluation results; the body holds a description, usage, the training hyperparameters from the
resolved config (secret-looking values masked), the per-epoch results and the framework versions.
"""
from __future__ import annotations

import os
import platform
from importlib import metadata
from typing import Optional

from omegaconf import DictConfig, OmegaConf

from qaexp.config.schema import DataSource
from qaexp.model.locations import looks_like_local_path
from qaexp.output.files import write_text_atomic
from qaexp.output.shared_config import plain_config

CARD_NAME = "README.md"
CONFIG_SECTIONS = ("model", "data", "optimizer", "precision", "trainer")
FRAMEWORKS = ("qaexp", "keras", "tensorflow", "transformers", "tokenizers", "datasets", "huggingface-hub")
EPOCH_COLUMNS = (("loss", "Training loss", ".4f"), ("val_loss", "Validation loss", ".4f"),
                 ("val_exact_match", "Exact match", ".2f"), ("val_f1", "F1", ".2f"))


def write_model_card(model_dir: str, cfg: DictConfig, summary: dict) -> str:
    path = os.path.join(model_dir, CARD_NAME)
    write_text_atomic(path, render_model_card(cfg, summary))
    return path


def render_model_card(cfg: DictConfig, summary: dict) -> str:
    header = card_metadata(cfg, summary).to_yaml()
    sections = [f"# {model_name(cfg)}", _description(cfg, summary), _results(cfg, summary), _extra_results(summary),
                _usage(cfg, summary),
                _hyperparameters(cfg, summary), _epoch_table(summary.get("history") or {}), _versions()]
    return f"---\n{header}\n---\n\n" + "\n\n".join(s for s in sections if s) + "\n"


def model_name(cfg: DictConfig) -> str:
    return cfg.hub.repo_id or f"qaexp-{cfg.experiment_name}"


def base_model(model_cfg: DictConfig) -> Optional[str]:
    """The hub id of the pretrained weights, or None (trained from scratch, random init, or unknown local files)."""
    if model_cfg.from_scratch or model_cfg.random_init or not model_cfg.checkpoint:
        return None
    if model_cfg.base_model:
        return model_cfg.base_model
    checkpoint = model_cfg.checkpoint
    return None if looks_like_local_path(checkpoint) or os.path.exists(checkpoint) else checkpoint


def dataset_info(data_cfg: DictConfig) -> dict:
    """Name, type and split of the evaluation data, as the model-index describes it."""
    if data_cfg.source == DataSource.hub:
        return {"dataset_name": data_cfg.name, "dataset_type": data_cfg.name,
                "dataset_config": data_cfg.config_name, "dataset_split": data_cfg.validation_split}
    if data_cfg.source == DataSource.synthetic:
        return {"dataset_name": f"qaexp synthetic ({data_cfg.difficulty})", "dataset_type": "qaexp-synthetic",
                "dataset_split": "validation"}
    return {"dataset_name": os.path.basename(data_cfg.validation_file or "local data"), "dataset_type": "json",
            "dataset_split": "validation"}


def card_metadata(cfg: DictConfig, summary: dict):
    from huggingface_hub import EvalResult, ModelCardData

    data = dataset_info(cfg.data)
    results = [EvalResult(task_type="question-answering", task_name="Extractive question answering",
                          metric_type=metric, metric_name=name, metric_value=round(float(summary[metric]), 2),
                          **data)
               for metric, name in (("exact_match", "Exact match"), ("f1", "F1"))]
    return ModelCardData(
        model_name=model_name(cfg), license=cfg.model.license, base_model=base_model(cfg.model),
        datasets=[cfg.data.name] if cfg.data.source == DataSource.hub else None, metrics=["exact_match", "f1"],
        tags=["question-answering", "extractive-qa", "tensorflow", "qaexp", cfg.model.family],
        library_name="transformers", pipeline_tag="question-answering", eval_results=results)


def training_data(data_cfg: DictConfig) -> str:
    """The data the model was trained on, named as a reader finds it (dataset_info names the evaluation data)."""
    if data_cfg.source == DataSource.hub:
        return f"{data_cfg.name} ({data_cfg.train_split} split)"
    if data_cfg.source == DataSource.synthetic:
        return f"qaexp synthetic ({data_cfg.difficulty}) questions (train split)"
    return os.path.basename(data_cfg.train_file or "local data")


def _description(cfg: DictConfig, summary: dict) -> str:
    evaluation = dataset_info(cfg.data)
    evaluated = f"{evaluation['dataset_name']} ({evaluation['dataset_split']} split)"
    origin = base_model(cfg.model)
    if origin:
        start = f"fine-tuned from [{origin}](https://huggingface.co/{origin})"
    elif cfg.model.random_init or cfg.model.from_scratch:
        start = f"trained from randomly initialised weights ({cfg.model.family} architecture)"
    else:
        start = f"fine-tuned from the local checkpoint `{os.path.basename(str(cfg.model.checkpoint))}`"
    if summary.get("train_examples"):
        trained = f"{start} on {training_data(cfg.data)} ({summary['train_examples']} questions)"
    elif origin or not (cfg.model.random_init or cfg.model.from_scratch):  # an evaluation-only run of a checkpoint
        trained = f"{start.replace('fine-tuned from', 'taken from', 1)}, not trained further here"
    else:  # random weights evaluated as they are: a baseline
        trained = f"with randomly initialised weights ({cfg.model.family} architecture), not trained"
    return (f"An extractive question-answering model (SQuAD-style answer spans) {trained}, evaluated on "
            f"{evaluated}, with qaexp (Keras 3 on TensorFlow).")


def _results(cfg: DictConfig, summary: dict) -> str:
    data = dataset_info(cfg.data)
    table = (f"## Evaluation results\n\nOn {data['dataset_name']} ({data['dataset_split']} split, "
             f"{summary.get('eval_examples', '?')} questions):\n\n"
             f"| Exact match | F1 |\n|---|---|\n| {summary['exact_match']:.2f} | {summary['f1']:.2f} |")
    return table + _threshold_note(summary)


def _threshold_note(summary: dict) -> str:
    """SQuAD v2: the no-answer threshold these figures use, how it was chosen, the best-threshold figures."""
    threshold, v2 = summary.get("null_threshold"), summary.get("squad_v2")
    if not threshold or not v2:
        return ""
    how = f"tuned on {threshold['tuned_on']}" if threshold["source"] == "tuned" else "configured"
    note = (f"\n\nSQuAD v2: no answer when the null score exceeds the best span's by more than "
            f"{threshold['value']:.4g} ({how}). Has-answer F1 {v2.get('HasAns_f1', float('nan')):.2f}, "
            f"no-answer F1 {v2.get('NoAns_f1', float('nan')):.2f}; at the best threshold (official script): "
            f"EM {v2['best_exact']:.2f}, F1 {v2['best_f1']:.2f}.")
    held_out = threshold.get("held_out")
    if held_out:
        note += (f" On the {held_out['questions']} held-out questions the threshold was not tuned on: "
                 f"EM {held_out['exact_match']:.2f}, F1 {held_out['f1']:.2f}.")
    return note


def _extra_results(summary: dict) -> str:
    """data.extra_eval: one row per further evaluation set."""
    extra = summary.get("extra_eval") or {}
    if not extra:
        return ""
    rows = [f"| {name} | {scores['eval_examples']} | {scores['exact_match']:.2f} | {scores['f1']:.2f} |"
            for name, scores in extra.items()]
    return ("## Other evaluation sets\n\n| Set | Questions | Exact match | F1 |\n|---|---|---|---|\n"
            + "\n".join(rows))


def _usage(cfg: DictConfig, summary: dict) -> str:
    """The card's snippet: transformers (PyTorch) as it is today. Since transformers 5.3 there is no
    "question-answering" pipeline, so the snippet scores spans itself, by qaexp's rule (evaluation/postprocess.py)
    for one window: the best start + end logit over spans of context tokens at most max_answer_length tokens long,
    the text cut from the context by the tokenizer's offsets, from its first non-space character; under SQuAD v2, no
    answer when the [CLS] score beats it by more than the model's threshold.
    tests/fixtures/parity/check_saved_models.py runs it as written."""
    data = cfg.data
    lines = ["import torch  # pip install transformers torch",
             "from transformers import AutoModelForQuestionAnswering, AutoTokenizer", "",
             'MODEL = "MODEL_DIR"  # this directory, or the hub repo it was pushed to',
             "tokenizer = AutoTokenizer.from_pretrained(MODEL)",
             "model = AutoModelForQuestionAnswering.from_pretrained(MODEL)", "",
             'question, context = "Who wrote it?", "It was written by Ada."',
             f'inputs = tokenizer(question, context, return_tensors="pt", truncation="only_second", '
             f"max_length={data.max_length},",
             "                   return_offsets_mapping=True)",
             'offsets = inputs.pop("offset_mapping")[0]',
             "with torch.no_grad():",
             "    out = model(**inputs)",
             "in_context = torch.tensor([s == 1 for s in inputs.sequence_ids(0)])  # answers come from the context",
             "scores = out.start_logits[0][:, None] + out.end_logits[0][None, :]  # [start, end]",
             "length = torch.arange(len(in_context))[None, :] - torch.arange(len(in_context))[:, None]",
             f"valid = in_context[:, None] & in_context[None, :] & (length >= 0) & (length < {data.max_answer_length})",
             "best = int(scores.masked_fill(~valid, -1e9).argmax())",
             "start, end = divmod(best, len(in_context))",
             "# .lstrip(): byte-level BPE and SentencePiece offsets cover the space before a word; qaexp's answers",
             "# start at its first character",
             "answer = context[int(offsets[start][0]):int(offsets[end][1])].lstrip()"]
    if data.version_2_with_negative:
        threshold = (summary.get("null_threshold") or {}).get("value", data.null_score_diff_threshold)
        lines += [f"THRESHOLD = {threshold!r}  # the no-answer threshold this model carries (MODEL_DIR/qaexp.json)",
                  "no_answer = out.start_logits[0, 0] + out.end_logits[0, 0]  # the score of [CLS]: no answer",
                  "if float(no_answer - scores[start, end]) > THRESHOLD:",
                  '    answer = ""']
    lines.append("print(answer)")
    return ("## How to use\n\n```python\n" + "\n".join(lines) + "\n```\n\n"
            "This scores one window (a context of up to about "
            f"{data.max_length} tokens); `python -m qaexp.predict MODEL_DIR --question Q --context C` "
            "(`--file F --output OUT` for a whole file) strides over longer contexts with the settings this model was "
            "trained with, read from MODEL_DIR/qaexp.json.")


def _hyperparameters(cfg: DictConfig, summary: dict) -> str:
    config = plain_config(cfg)
    opt, trainer, data = config["optimizer"], config["trainer"], config["data"]
    items = {
        "optimizer": f"{opt['name']} (lr {opt['lr']:g}, {opt['schedule']} schedule, warmup ratio "
                     f"{opt['warmup_ratio']:g}, weight decay {opt['weight_decay']:g})",
        "batch size": trainer["batch_size"], "epochs": trainer["epochs"], "max steps": trainer["max_steps"],
        "seed": trainer["seed"], "precision": config["precision"]["policy"],
        "max length / doc stride": f"{data['max_length']} / {data['doc_stride']}",
        "training examples / windows": f"{summary.get('train_examples')} / {summary.get('train_windows')}",
    }
    listed = "\n".join(f"- {key}: {value}" for key, value in items.items())
    resolved = OmegaConf.to_yaml(OmegaConf.create({k: config[k] for k in CONFIG_SECTIONS if k in config}))
    return (f"## Training hyperparameters\n\n{listed}\n\n<details><summary>Resolved configuration</summary>\n\n"
            f"```yaml\n{resolved}```\n\n</details>")


def _epoch_table(history: dict) -> str:
    columns = [c for c in EPOCH_COLUMNS if history.get(c[0])]
    if not columns:
        return ""
    epochs = max(len(history[key]) for key, _, _ in columns)
    rows = ["| Epoch | " + " | ".join(title for _, title, _ in columns) + " |",
            "|---" * (len(columns) + 1) + "|"]
    for epoch in range(epochs):
        cells = [_cell(history[key], epoch, fmt) for key, _, fmt in columns]
        rows.append(f"| {epoch + 1} | " + " | ".join(cells) + " |")
    return "## Training results\n\n" + "\n".join(rows)


def _cell(values: list, epoch: int, fmt: str) -> str:
    value = values[epoch] if epoch < len(values) else None
    return "" if value is None else format(value, fmt)


def _versions() -> str:
    lines = [f"- {name}: {_version(name)}" for name in FRAMEWORKS]
    lines.append(f"- Python: {platform.python_version()}")
    return "## Framework versions\n\n" + "\n".join(lines)


def _version(distribution: str) -> str:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "not installed"
