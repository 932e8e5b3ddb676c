"""`python -m qaexp.report DIR [DIR ...]` (or `qaexp report`): one table and one plot for a sweep's jobs.

DIR is a multirun directory (its job directories are found below it) or a run directory. Each job is read from
its `.hydra/config.yaml`, `.hydra/overrides.yaml` and `metrics.json`; a job without metrics.json is `incomplete`
(still running, or killed). Jobs that differ only in their seed form one configuration (seed_stats). Writes
results.csv, results.md, configurations.csv, f1_vs_lr.png, f1_by_configuration.png and f1_vs_train_time.png, and
prints the tables.
"""
from __future__ import annotations

import argparse
import csv
import os
from collections import defaultdict
from typing import Optional

from omegaconf import OmegaConf

from qaexp import rundir
from qaexp.analysis import seed_stats, sweep_plots
from qaexp.analysis.sweep_jobs import Job, find_job_dirs, load_job, natural_key
from qaexp.errors import QAExpError, report_error
from qaexp.output.figures import new_figure, save_png
from qaexp.output.files import atomic_file, storage_errors, write_text_atomic
from qaexp.tools import parser as tool_parser

OWN_COLUMNS = ("model", "optimizer.lr")  # overrides shown in their own columns


def varying_keys(jobs: list[Job]) -> list[str]:
    """Override keys whose value is not the same in every job (model and lr have columns of their own)."""
    keys = sorted({key for job in jobs for key in job.overrides} - set(OWN_COLUMNS))
    return [key for key in keys if len({job.overrides.get(key) for job in jobs}) > 1]


def sort_by_f1(jobs: list[Job]) -> list[Job]:
    return sorted(jobs, key=lambda job: (not job.completed, -(job.f1 or 0.0), natural_key(job.name)))


def table(jobs: list[Job], keys: list[str]) -> tuple[list[str], list[list[str]]]:
    header = ["job", "model", "lr", *keys, "EM", "F1", "val loss", "train s", "windows/s", "status"]
    rows = [[job.name, job.model, _fmt(job.lr, ".3g"), *(_short(job.overrides.get(k, "")) for k in keys),
             _fmt(job.exact_match, ".2f"), _fmt(job.f1, ".2f"), _fmt(job.val_loss, ".4f"),
             _fmt(job.train_seconds, ".1f"), _fmt(job.windows_per_second, ".1f"), job.status] for job in jobs]
    return header, rows


def _fmt(value: Optional[float], spec: str) -> str:
    return "" if value is None else format(value, spec)


def _short(value: str) -> str:
    """Sampled floats (Optuna's 0.19014286128198324) to 4 significant digits; anything else as it is."""
    try:
        number = float(value)
    except ValueError:
        return value
    return value if number.is_integer() and "." not in value else format(number, ".4g")


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(cell) for cell in column) for column in zip(header, *rows)]

    def line(cells):
        return "| " + " | ".join(cell.ljust(width) for cell, width in zip(cells, widths)) + " |"

    return "\n".join([line(header), line(["-" * width for width in widths]), *(line(row) for row in rows)])


def failures_text(jobs: list[Job], keys: list[str]) -> list[str]:
    """One line per job that did not complete: what set it apart, its status and error."""
    return [f"job {job.name} ({_label(job, keys)}): {job.status}" + (f": {job.error}" if job.error else "")
            for job in jobs if not job.completed]


def _label(job: Job, keys: list[str]) -> str:
    parts = [f"model={job.model}", f"lr={_fmt(job.lr, '.3g')}"]
    return ", ".join(parts + [f"{key}={_short(job.overrides[key])}" for key in keys if key in job.overrides])


def write_csv(jobs: list[Job], keys: list[str], path: str) -> None:
    with storage_errors(path), atomic_file(path, "w") as f:
        writer = csv.writer(f)
        writer.writerow(["job", "model", "lr", *keys, "exact_match", "f1", "val_loss", "train_seconds",
                         "windows_per_second", "status", "error", "path"])
        for job in jobs:
            writer.writerow([job.name, job.model, job.lr, *(job.overrides.get(k, "") for k in keys), job.exact_match,
                             job.f1, job.val_loss, job.train_seconds, job.windows_per_second, job.status,
                             job.error or "", job.path])


def write_rows(header: list[str], rows: list[list], path: str) -> None:
    with storage_errors(path), atomic_file(path, "w") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)


def sweep_command(paths: list[str]) -> Optional[str]:
    """The command line of a multirun directory's sweep, from the multirun.yaml Hydra writes there."""
    multirun = os.path.join(paths[0], "multirun.yaml")
    if len(paths) != 1 or not os.path.isfile(multirun):
        return None
    overrides = OmegaConf.select(rundir.read_yaml(multirun), "hydra.overrides.task", default=None)
    return "python -m qaexp -m " + " ".join(overrides) if overrides else None


def extra_eval_table(jobs: list[Job]) -> str:
    """One row per job and data.extra_eval set (in-domain figures are the main table's); "" without any."""
    rows = [[job.name, name, _fmt(scores.get("exact_match"), ".2f"), _fmt(scores.get("f1"), ".2f"),
             str(scores.get("eval_examples", ""))]
            for job in jobs for name, scores in job.extra_eval.items()]
    return markdown_table(["job", "evaluation set", "EM", "F1", "questions"], rows) if rows else ""


def write_markdown(table_md: str, failures: list[str], command: Optional[str], path: str,
                   configs_md: str = "", extra_md: str = "") -> None:
    parts = ["# Sweep results", "", *([f"`{command}`", ""] if command else [])]
    if configs_md:
        parts += ["## Configurations over seeds", "", "Ranked by mean validation F1; CI: 95% interval of the mean "
                  "(Student's t). ![F1 per configuration](f1_by_configuration.png)", "", configs_md, "",
                  "## Jobs", "", "![F1 against training time](f1_vs_train_time.png)", ""]
    parts += ["Sorted by validation F1.", "", table_md, ""]
    if extra_md:
        parts += ["## Other evaluation sets", "", extra_md, ""]
    if failures:
        parts += ["## Failed jobs", "", *(f"- {line}" for line in failures), ""]
    write_text_atomic(path, "\n".join(parts))


def plot_f1_vs_lr(jobs: list[Job], failures: list[str], path: str) -> None:
    """F1 against learning rate, one line per model through the mean over seeds, each job a point."""
    failure_inches = 0.16 * (len(failures) + 1) if failures else 0.0
    figure = new_figure(7, 4.5 + failure_inches)
    axes = figure.add_subplot()
    by_model: dict[str, dict[float, list[float]]] = defaultdict(lambda: defaultdict(list))
    for job in jobs:
        if job.completed and job.lr is not None and job.lr > 0:
            by_model[job.model][job.lr].append(job.f1)
    for model, by_lr in sorted(by_model.items()):
        rates = sorted(by_lr)
        line, = axes.plot(rates, [sum(by_lr[r]) / len(by_lr[r]) for r in rates], marker="o", label=model)
        points = [(r, f1) for r in rates for f1 in by_lr[r]]
        axes.scatter(*zip(*points), color=line.get_color(), alpha=0.4, s=18)
    axes.set_xscale("log")
    axes.set_xlabel("learning rate (optimizer.lr)")
    axes.set_ylabel("validation F1")
    axes.set_title("F1 against learning rate (line: mean over jobs; dots: jobs)")
    axes.grid(True, which="both", alpha=0.3)
    if by_model:
        axes.legend(title="model")
    else:
        axes.text(0.5, 0.5, "no completed jobs", ha="center", va="center", transform=axes.transAxes)
    if failures:
        figure.text(0.01, 0.01, "Not plotted:\n" + "\n".join(_shorten(line) for line in failures),
                    fontsize=8, va="bottom", color="firebrick")
        figure.subplots_adjust(bottom=(0.6 + failure_inches) / (4.5 + failure_inches))
    save_png(figure, path, sweep_plots.DPI)


def _shorten(text: str, limit: int = 110) -> str:
    return text if len(text) <= limit else text[:limit - 1] + "…"


def report(paths: list[str], out_dir: str, seed_keys: tuple[str, ...] = seed_stats.DEFAULT_SEED_KEYS) -> list[Job]:
    job_dirs = find_job_dirs(paths)
    root = paths[0] if len(paths) == 1 else os.path.commonpath([os.path.abspath(p) for p in paths])
    jobs = sort_by_f1([load_job(path, root) for path in job_dirs])
    keys = varying_keys(jobs)
    header, rows = table(jobs, keys)
    table_md = markdown_table(header, rows)
    failures = failures_text(jobs, keys)
    configs = seed_stats.group(jobs, seed_keys)
    configs_md = markdown_table(*seed_stats.table(configs))
    command = sweep_command(paths)  # read before anything is written: a damaged multirun.yaml leaves no report
    with storage_errors(out_dir):  # a read-only --out: one line with the fix, not the OSError's text
        os.makedirs(out_dir, exist_ok=True)
    write_csv(jobs, keys, os.path.join(out_dir, "results.csv"))
    write_rows(*seed_stats.csv_rows(configs), os.path.join(out_dir, "configurations.csv"))
    extra_md = extra_eval_table(jobs)
    write_markdown(table_md, failures, command, os.path.join(out_dir, "results.md"), configs_md, extra_md)
    plot_f1_vs_lr(jobs, failures, os.path.join(out_dir, "f1_vs_lr.png"))
    sweep_plots.plot_seeds(configs, os.path.join(out_dir, "f1_by_configuration.png"))
    sweep_plots.plot_cost(configs, os.path.join(out_dir, "f1_vs_train_time.png"))
    print(configs_md, table_md, sep="\n\n")
    if extra_md:
        print(f"\nOther evaluation sets:\n{extra_md}")
    for line in failures:
        print(f"not completed: {line}")
    print(f"wrote results.csv, configurations.csv, results.md, f1_vs_lr.png, f1_by_configuration.png and "
          f"f1_vs_train_time.png to {out_dir}")
    return jobs


def _parse_args(argv: Optional[list[str]]) -> argparse.Namespace:
    parser = tool_parser("report", __doc__.splitlines()[0])
    parser.add_argument("dirs", nargs="+", metavar="DIR", help="a multirun directory, or run directories")
    parser.add_argument("--out", help="where to write the report (default: DIR, or the DIRs' common parent)")
    parser.add_argument("--seed-keys", default=",".join(seed_stats.DEFAULT_SEED_KEYS), metavar="KEYS",
                        help="comma-separated override keys whose jobs are seeds of one configuration "
                             "(default: %(default)s)")
    return parser.parse_args(argv)


def main(argv: Optional[list[str]] = None) -> int:
    args = _parse_args(argv)
    out_dir = args.out or (args.dirs[0] if len(args.dirs) == 1 else os.path.commonpath(
        [os.path.abspath(p) for p in args.dirs]))
    try:
        report(args.dirs, out_dir, tuple(key.strip() for key in args.seed_keys.split(",") if key.strip()))
    except (QAExpError, OSError, ValueError) as err:
        return report_error(err, "report")
    return 0

