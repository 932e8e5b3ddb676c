"""`python -m qaexp.report`: the table, CSV, Markdown and plot of a sweep, from job directories on disk."""
import csv

import pytest
import yaml
from matplotlib.image import imread

from helpers.sweep_jobs import completed, make_job
from qaexp.tools import report

@pytest.fixture
def sweep(tmp_path):
    sweep = tmp_path / "multirun"
    jobs = [("tiny", 1e-4, 1, completed(40.0)), ("tiny", 1e-4, 2, completed(44.0)),
            ("tiny", 1e-3, 1, completed(60.0)), ("tiny", 1e-3, 2, completed(58.0)),
            ("small", 1e-3, 1, completed(70.0)), ("small", 1e-2, 1, completed(65.0)),
            ("small", -1.0, 1, {"status": "failed", "error": "optimizer.lr=-1.0 must be > 0", "seconds": {}}),
            ("small", 1e-2, 2, None)]
    for num, (model, lr, seed, metrics) in enumerate(jobs):
        make_job(sweep, num, model, lr, seed, metrics)
    (sweep / "multirun.yaml").write_text(yaml.safe_dump(
        {"hydra": {"overrides": {"task": ["model=tiny,small", "optimizer.lr=1e-4,1e-3,1e-2,-1", "trainer.seed=1,2"]}}}))
    return sweep


def test_report_tables_every_job_sorted_by_f1_with_failures_last(sweep, capsys):
    assert report.main([str(sweep)]) == 0

    with open(sweep / "results.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [row["job"] for row in rows] == ["4", "5", "2", "3", "1", "0", "6", "7"]
    assert [row["status"] for row in rows][-2:] == ["failed", "incomplete"]
    assert rows[0]["model"] == "small" and float(rows[0]["lr"]) == 1e-3 and float(rows[0]["f1"]) == 70.0
    # varying overrides get columns; the ones every job shares, and model/lr (own columns), do not
    assert "trainer.seed" in rows[0] and "data.num_train" not in rows[0] and "optimizer.lr" not in rows[0]
    assert rows[-2]["error"] == "optimizer.lr=-1.0 must be > 0"

    markdown = (sweep / "results.md").read_text()
    assert "`python -m qaexp -m model=tiny,small optimizer.lr=1e-4,1e-3,1e-2,-1 trainer.seed=1,2`" in markdown
    jobs_section = markdown.split("## Jobs", 1)[1]
    table_lines = [line for line in jobs_section.splitlines() if line.startswith("| ")]
    assert len(table_lines) == 2 + 8  # header, rule, one row per job
    assert "## Failed jobs" in markdown and "job 6 (" in markdown and "must be > 0" in markdown
    assert "job 7 (" in markdown and "incomplete" in markdown

    printed = capsys.readouterr().out
    assert table_lines[0] in printed and "not completed: job 6" in printed


def test_report_plot_is_a_real_image(sweep):
    report.main([str(sweep), "--out", str(sweep / "report")])
    png = sweep / "report" / "f1_vs_lr.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert png.stat().st_size > 20_000
    height, width, _ = imread(png).shape
    assert width >= 600 and height >= 400


def test_report_accepts_several_run_directories(sweep, tmp_path):
    out = tmp_path / "out"
    assert report.main([str(sweep / "0"), str(sweep / "4"), "--out", str(out)]) == 0
    with open(out / "results.csv", newline="") as f:
        assert [row["job"] for row in csv.DictReader(f)] == ["4", "0"]


def test_report_of_a_directory_without_jobs_fails_with_one_line(tmp_path, capsys):
    assert report.main([str(tmp_path)]) == 2
    assert report.main([str(tmp_path / "absent")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"qaexp report: error: no job directories (with .hydra/config.yaml) under {tmp_path}",
                   f"qaexp report: error: {tmp_path / 'absent'} is not a directory"]


@pytest.mark.skipif(not __import__("os").path.isdir("/sys/kernel"), reason="needs Linux's sysfs, where no one writes")
def test_report_to_a_directory_it_cannot_write_says_what_to_do(sweep, capsys):
    """It printed the OSError alone ("[Errno 30] Read-only file system: '...'"); analyze --output is the same
    rule (output/files.storage_errors)."""
    assert report.main([str(sweep), "--out", "/sys/kernel/qaexp-report"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("qaexp report: error: cannot write /sys/kernel/qaexp-report: ")
    assert err[0].endswith("choose a location you can write to (a tool's --out/--output, a run's hydra.run.dir), "
                           "or fix its permissions")


@pytest.mark.parametrize("name, content, reason", [
    ("3/metrics.json", '{"status": "compl', "Unterminated string"),
    ("3/metrics.json", "[1, 2]", "not a JSON object"),
    ("3/.hydra/config.yaml", "model: [unclosed", "while parsing"),
    ("3/.hydra/config.yaml", "- a list\n- not settings", "not a mapping of settings"),
    ("3/.hydra/hydra.yaml", "hydra: {runtime: [", "while parsing"),
    ("3/.hydra/overrides.yaml", "model: tiny", "not a list"),
    ("multirun.yaml", "- not settings", "not a mapping of settings"),
])
def test_a_damaged_job_file_is_named_in_one_line(sweep, capsys, name, content, reason):
    (sweep / name).write_text(content)
    assert report.main([str(sweep)]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(f"qaexp report: error: {sweep / name} is damaged (") and reason in line, line
    assert not (sweep / "results.csv").exists()  # no report that looks complete
