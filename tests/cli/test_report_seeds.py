"""The report's configurations over seeds (n, mean, std, 95% interval) and its cost columns and plot."""
import csv
import math

import pytest
from matplotlib.image import imread

from qaexp.analysis import sweep_plots
from qaexp.analysis.sweep_jobs import load_job
from qaexp.tools import report
from helpers.sweep_jobs import completed, make_job

# t quantiles for a two-sided 95% interval (statistical tables): 1 and 2 degrees of freedom
T_975 = {1: 12.7062, 2: 4.3027}


@pytest.fixture
def seeded_sweep(tmp_path):
    sweep = tmp_path / "multirun"
    jobs = [("tiny", 1e-3, 1, completed(60.0, 20.0)), ("tiny", 1e-3, 2, completed(58.0, 22.0)),
            ("tiny", 1e-3, 3, completed(62.0, 21.0)), ("tiny", 1e-4, 1, completed(40.0, 19.0)),
            ("tiny", 1e-4, 2, completed(44.0, 18.0)), ("small", 1e-3, 1, completed(70.0, 80.0)),
            ("small", 1e-3, 2, {"status": "failed", "error": "out of memory", "seconds": {}})]
    for num, (model, lr, seed, metrics) in enumerate(jobs):
        if metrics.get("status") == "completed":
            metrics.update(train_windows=300, epochs=2)
        make_job(sweep, num, model, lr, seed, metrics)
    return sweep


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_jobs_differing_only_in_seed_are_one_configuration_with_mean_std_and_interval(seeded_sweep, capsys):
    assert report.main([str(seeded_sweep)]) == 0
    rows = read_csv(seeded_sweep / "configurations.csv")
    assert [row["configuration"] for row in rows] == ["model=small,optimizer.lr=0.001", "model=tiny,optimizer.lr=0.001",
                                                      "model=tiny,optimizer.lr=0.0001"]
    small, tiny_3, tiny_4 = rows
    assert (small["n"], small["not_completed"], float(small["f1_mean"]), small["f1_std"]) == ("1", "1", 70.0, "")
    assert (tiny_3["n"], float(tiny_3["f1_mean"]), float(tiny_3["f1_std"])) == ("3", 60.0, pytest.approx(2.0))
    half = T_975[2] * 2.0 / math.sqrt(3)
    assert float(tiny_3["f1_ci95_low"]) == pytest.approx(60 - half, abs=1e-3)
    assert float(tiny_3["f1_ci95_high"]) == pytest.approx(60 + half, abs=1e-3)
    assert float(tiny_3["em_mean"]) == 55.0 and float(tiny_3["train_seconds_median"]) == 21.0
    assert float(tiny_4["f1_ci95_low"]) == pytest.approx(42 - T_975[1] * math.sqrt(8) / math.sqrt(2), abs=1e-3)

    markdown = (seeded_sweep / "results.md").read_text()
    section = markdown.split("## Configurations over seeds", 1)[1].split("## Jobs", 1)[0]
    small_line = next(line for line in section.splitlines() if "model=small" in line)
    cells = [cell.strip() for cell in small_line.strip("|").split("|")]
    assert cells.count("1 seed: no spread") == 3 and "0.00" not in cells  # not a spread of 0
    assert "[55.03, 64.97]" in section
    assert "model=small,optimizer.lr=0.001" in capsys.readouterr().out


def test_seed_keys_option_groups_by_other_keys(seeded_sweep):
    assert report.main([str(seeded_sweep), "--seed-keys", "trainer.seed,optimizer.lr"]) == 0
    rows = read_csv(seeded_sweep / "configurations.csv")
    assert [(row["configuration"], row["n"]) for row in rows] == [("model=small", "1"), ("model=tiny", "5")]


def test_cost_columns_and_the_pareto_front(seeded_sweep):
    assert report.main([str(seeded_sweep)]) == 0
    rows = {row["job"]: row for row in read_csv(seeded_sweep / "results.csv")}
    assert float(rows["0"]["windows_per_second"]) == pytest.approx(300 * 2 / 20.0)
    assert rows["6"]["windows_per_second"] == ""  # failed: no throughput

    jobs = [load_job(str(seeded_sweep / str(n)), str(seeded_sweep)) for n in range(7)]
    # fastest first: 18 s F1 44, then 20 s F1 60 (beats it), 21 s F1 62, then 80 s F1 70; 19 s/40, 22 s/58 dominated
    assert [job.name for job in sweep_plots.pareto_front(jobs)] == ["4", "0", "2", "5"]
    for name in ("f1_by_configuration.png", "f1_vs_train_time.png"):
        png = seeded_sweep / name
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000
        height, width, _ = imread(png).shape
        assert width >= 600 and height >= 400
