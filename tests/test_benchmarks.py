"""The GPU benchmark cannot be measured on this CPU-only machine: its code path is checked with --allow-cpu."""
import json

import pytest

from conftest import REPO, run_cli

SCRIPT = str(REPO / "benchmarks" / "gpu_epoch.py")


def last_json_line(output: str) -> dict:
    return json.loads(output.strip().splitlines()[-1])


@pytest.mark.slow
def test_gpu_epoch_runs_both_configurations_on_the_cpu_when_allowed():
    done = run_cli([SCRIPT, "--allow-cpu", "--model", "tiny", "--steps", "2", "--batch-size", "4"],
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
