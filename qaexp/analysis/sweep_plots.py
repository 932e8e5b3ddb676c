"""The report's plots of configurations over seeds and of quality against cost (F1 against training time)."""
from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

from qaexp.output.figures import new_figure, save_png

if TYPE_CHECKING:
    from qaexp.analysis.sweep_jobs import Job
    from qaexp.analysis.seed_stats import Configuration

DPI = 120  # the report's plots (report.py's too)


def plot_seeds(configs: Sequence[Configuration], path: str) -> None:
    """Per configuration (best mean F1 first): the mean with its 95% interval as an error bar, each seed a dot."""
    scored = [config for config in configs if config.n]
    figure = new_figure(max(6.0, 1.1 * len(scored) + 2.5), 5.0)
    axes = figure.add_subplot()
    for x, config in enumerate(scored):
        mean, interval = config.mean("f1"), config.interval("f1")
        error = [[mean - interval[0]], [interval[1] - mean]] if interval else None
        axes.errorbar([x], [mean], yerr=error, fmt="o", color="black", capsize=6, markersize=8, zorder=3,
                      label="mean, 95% CI" if x == 0 else None)
        seeds = [job.f1 for job in config.scored]
        axes.scatter([x + 0.12] * len(seeds), seeds, color="tab:blue", alpha=0.6, s=22, zorder=2,
                     label="one seed" if x == 0 else None)
        if config.n == 1:
            axes.annotate("1 seed", (x, mean), textcoords="offset points", xytext=(8, -12), fontsize=8)
    axes.set_xticks(range(len(scored)), [_wrap(config.label) for config in scored], fontsize=8)
    axes.set_xlim(-0.7, max(len(scored), 1) - 0.3)
    axes.set_ylabel("validation F1")
    axes.set_title("F1 per configuration over seeds (best mean first)")
    axes.grid(True, axis="y", alpha=0.3)
    if scored:
        axes.legend(loc="best", fontsize=8)
    else:
        axes.text(0.5, 0.5, "no completed jobs", ha="center", va="center", transform=axes.transAxes)
    figure.tight_layout()
    save_png(figure, path, DPI)


def _wrap(label: str) -> str:
    return label.replace(",", "\n")


def pareto_front(jobs: Sequence[Job]) -> list[Job]:
    """The completed jobs no other job beats on both F1 (higher) and training time (lower), fastest first."""
    timed = sorted((job for job in jobs if job.completed and job.train_seconds is not None),
                   key=lambda job: (job.train_seconds, -job.f1))
    front, best = [], float("-inf")
    for job in timed:
        if job.f1 > best:
            front.append(job)
            best = job.f1
    return front


def plot_cost(configs: Sequence[Configuration], path: str) -> None:
    """F1 against training seconds, one colour per configuration, the Pareto front drawn as a step line."""
    figure = new_figure(7.0, 4.5)
    axes = figure.add_subplot()
    for config in configs:
        points = [(job.train_seconds, job.f1) for job in config.scored if job.train_seconds is not None]
        if points:
            axes.scatter(*zip(*points), s=28, alpha=0.8, label=config.label)
    front = pareto_front([job for config in configs for job in config.jobs])
    if front:
        axes.step([job.train_seconds for job in front], [job.f1 for job in front], where="post", color="black",
                  linewidth=1, label="Pareto front")
        axes.scatter([job.train_seconds for job in front], [job.f1 for job in front], facecolors="none",
                     edgecolors="black", s=90, linewidths=1.2)
        axes.legend(title="configuration", fontsize=8)
    else:
        axes.text(0.5, 0.5, "no completed jobs with a training time", ha="center", va="center",
                  transform=axes.transAxes)
    axes.set_xlabel("training time (s)")
    axes.set_ylabel("validation F1")
    axes.set_title("F1 against training time (circled: the Pareto front)")
    axes.grid(True, alpha=0.3)
    figure.tight_layout()
    save_png(figure, path, DPI)
