"""A sweep's jobs grouped into configurations: jobs that differ only in their seed (`trainer.seed`, or the keys
`qaexp report --seed-keys` names) are one configuration, summarised by n, the mean and standard deviation of
EM and F1 and a 95% interval of the mean F1 (Student's t). One seed gives no spread, and the table says so.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Optional, Sequence

from qaexp.config.schema import NOT_CONFIGURING

if TYPE_CHECKING:
    from qaexp.analysis.sweep_jobs import Job

DEFAULT_SEED_KEYS = ("trainer.seed",)
ONE_SEED = "1 seed: no spread"


@dataclass
class Configuration:
    label: str  # the overrides that set it apart from the sweep's other configurations
    jobs: list = field(default_factory=list)  # every job of the configuration, completed or not

    @property
    def scored(self) -> list:
        return [job for job in self.jobs if job.completed]

    @property
    def n(self) -> int:
        return len(self.scored)

    def mean(self, metric: str) -> Optional[float]:
        values = [getattr(job, metric) for job in self.scored]
        return sum(values) / len(values) if values else None

    def std(self, metric: str) -> Optional[float]:
        """Sample standard deviation (n - 1); None below two seeds."""
        values = [getattr(job, metric) for job in self.scored]
        if len(values) < 2:
            return None
        mean = sum(values) / len(values)
        return math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))

    def interval(self, metric: str = "f1", level: float = 0.95) -> Optional[tuple[float, float]]:
        """The `level` confidence interval of the mean (t distribution, n - 1 degrees of freedom)."""
        spread = self.std(metric)
        if spread is None:
            return None
        from scipy.stats import t

        half = float(t.ppf(0.5 + level / 2, self.n - 1)) * spread / math.sqrt(self.n)
        mean = self.mean(metric)
        return mean - half, mean + half

    def median_train_seconds(self) -> Optional[float]:
        seconds = sorted(job.train_seconds for job in self.scored if job.train_seconds is not None)
        if not seconds:
            return None
        middle = len(seconds) // 2
        return seconds[middle] if len(seconds) % 2 else (seconds[middle - 1] + seconds[middle]) / 2


def identity(job: Job, seed_keys: Sequence[str]) -> tuple:
    """What makes the job's configuration: its model and every override but the seeds and the run settings."""
    kept = {key: value for key, value in job.overrides.items()
            if key not in seed_keys and not key.lstrip("+~").startswith(NOT_CONFIGURING)}
    return (("model", job.model), *sorted(kept.items()))


def group(jobs: Sequence[Job], seed_keys: Sequence[str] = DEFAULT_SEED_KEYS) -> list[Configuration]:
    """Jobs grouped into configurations, ranked by mean F1 (configurations with no completed job last)."""
    groups: dict[tuple, list] = {}
    for job in jobs:
        groups.setdefault(identity(job, seed_keys), []).append(job)
    varying = _varying_parts(list(groups))
    configs = [Configuration(_label(key, varying), members) for key, members in groups.items()]
    return sorted(configs, key=lambda c: (c.n == 0, -(c.mean("f1") or 0.0), c.label))


def _varying_parts(keys: list[tuple]) -> list[str]:
    """The names whose values differ between configurations: what the labels show."""
    names = sorted({name for key in keys for name, _ in key})
    return [name for name in names if len({dict(key).get(name) for key in keys}) > 1]


def _label(key: tuple, varying: list[str]) -> str:
    values = dict(key)
    parts = [f"{name}={values[name]}" for name in varying if name in values]
    return ",".join(parts) or "all jobs"


def table(configs: list[Configuration]) -> tuple[list[str], list[list[str]]]:
    header = ["configuration", "n", "F1 mean", "F1 std", "F1 95% CI", "EM mean", "EM std", "train s (median)",
              "not completed"]
    rows = []
    for config in configs:
        interval = config.interval("f1")
        single = config.n == 1
        rows.append([config.label, str(config.n), _fmt(config.mean("f1")),
                     ONE_SEED if single else _fmt(config.std("f1")),
                     ONE_SEED if single else ("" if interval is None else f"[{interval[0]:.2f}, {interval[1]:.2f}]"),
                     _fmt(config.mean("exact_match")), ONE_SEED if single else _fmt(config.std("exact_match")),
                     _fmt(config.median_train_seconds(), ".1f"), str(len(config.jobs) - config.n)])
    return header, rows


def csv_rows(configs: list[Configuration]) -> tuple[list[str], list[list]]:
    header = ["configuration", "n", "f1_mean", "f1_std", "f1_ci95_low", "f1_ci95_high", "em_mean", "em_std",
              "train_seconds_median", "not_completed", "jobs"]
    rows = []
    for config in configs:
        low, high = config.interval("f1") or (None, None)
        rows.append([config.label, config.n, config.mean("f1"), config.std("f1"), low, high,
                     config.mean("exact_match"), config.std("exact_match"), config.median_train_seconds(),
                     len(config.jobs) - config.n, " ".join(job.name for job in config.jobs)])
    return header, rows


def _fmt(value: Optional[float], spec: str = ".2f") -> str:
    return "" if value is None else format(value, spec)
