"""The tests' fork server (tests/helpers/forkserver.py) stands in for a new interpreter: a qaexp command run as a
fork of it prints, exits, answers signals and trains exactly as the same command started fresh."""
from __future__ import annotations

import os
import pathlib
import signal
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from helpers import cli
from helpers.state_runs import RUN, results


def through_the_fork_server(process) -> bool:
    return str(cli.FORKSERVER) in map(str, process.args)


def closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("args", [
    ["-m", "qaexp", "trainer.epoch=1"],  # a config error: one line, exit 2
    ["-m", "qaexp", "predict", "--help"],  # a tool's help on stdout, exit 0
    ["-m", "qaexp", "predict", "no/such/model", "--question", "q", "--context", "c"],  # a tool's error
    [str(cli.REPO / "benchmarks" / "inference.py"), "--no-such-flag"],  # a script's argparse error (SystemExit 2)
])
def test_a_forked_command_prints_and_exits_as_a_new_interpreter(args, tmp_path):
    forked = cli.run_cli([*args], cwd=tmp_path, timeout=120)
    fresh = cli.run_cli([*args], cwd=tmp_path, timeout=120, fresh=True)
    assert through_the_fork_server(forked) and not through_the_fork_server(fresh)
    assert (forked.returncode, forked.stdout, forked.stderr) == (fresh.returncode, fresh.stdout, fresh.stderr)


def test_a_command_with_hugging_face_settings_of_its_own_reads_them_as_a_new_interpreter(tmp_path):
    """The tests run offline (HF_HUB_OFFLINE=1, read as huggingface_hub imports): a command that turns it off is
    forked from the lean server, and its line says the hub is unreachable, not that HF_HUB_OFFLINE=1 is set."""
    env = {"HF_HOME": str(tmp_path / "hf_home"), "HF_HUB_OFFLINE": "0",
           "HF_ENDPOINT": f"http://127.0.0.1:{closed_port()}"}
    args = ["-m", "qaexp", "model.checkpoint=qaexp-test/not-cached", "data=synthetic", "data.num_train=8",
            "data.num_validation=8"]
    forked = cli.run_cli([*args, f"hydra.run.dir={tmp_path / 'forked'}"], env=env, timeout=120)
    fresh = cli.run_cli([*args, f"hydra.run.dir={tmp_path / 'fresh'}"], env=env, timeout=120, fresh=True)
    assert cli.server_for(args, cli.user_environment(env), {}) == "lean" and through_the_fork_server(forked)
    assert forked.returncode == fresh.returncode == 2
    assert "HF_HUB_OFFLINE=1 is set" not in forked.stderr and "cannot be reached" in forked.stderr
    assert forked.stderr.replace("forked", "fresh") == fresh.stderr


@pytest.mark.slow
def test_a_forked_run_gives_the_numbers_and_answers_of_a_new_interpreter(tmp_path):
    """Single-threaded (helpers.state_runs.RUN), so two processes compute the same floats."""
    for name, fresh in (("forked", False), ("fresh", True)):
        done = cli.run_cli(["-m", "qaexp", *RUN, f"data.cache_dir={tmp_path / name / 'cache'}",
                            f"hydra.run.dir={tmp_path / name / 'run'}"], fresh=fresh)
        assert done.returncode == 0, done.stderr[-3000:]
        assert through_the_fork_server(done) != fresh
    assert results(tmp_path / "forked" / "run") == results(tmp_path / "fresh" / "run")


def _commands_of(server_pid: int) -> list[int]:
    """The server's live children (the commands it forked), from /proc."""
    found = []
    for entry in pathlib.Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == server_pid and fields[0] != "Z":
                found.append(int(entry.name))
    return found


@pytest.mark.parametrize("signum, status", [(signal.SIGTERM, 143), (signal.SIGKILL, -signal.SIGKILL)])
def test_a_signal_to_the_started_process_reaches_the_forked_command(signum, status, tmp_path):
    """SIGTERM is passed on (the command ends with its own status); SIGKILL cannot be, and the server then kills
    the command itself: nothing is left running."""
    marker = tmp_path / "reached"
    process = cli.popen_cli(["-m", "qaexp", *RUN, f"hydra.run.dir={tmp_path / 'run'}"],
                            env={"QAEXP_STAGE_HOOK": f"load_data:{marker}"})
    assert through_the_fork_server(process)
    try:
        deadline = time.monotonic() + 120
        while not marker.exists() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert marker.exists(), "the command never reached load_data"
        server = cli._server["process", "full"].pid
        assert len(_commands_of(server)) == 1
        os.kill(process.pid, signum)
        process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == status
    deadline = time.monotonic() + 10
    while _commands_of(server) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _commands_of(server) == []


def test_commands_started_from_threads_at_once_share_one_server(monkeypatch):
    """test_signals starts commands from two threads: before the lock, both could start a server of their own (and
    a command then ran under one the test did not know of)."""
    started = []

    def slow_start(kind):
        time.sleep(0.2)  # a server takes seconds to start: both threads arrive while the first is starting it
        started.append(1)
        return f"{kind}-socket-{len(started)}"

    monkeypatch.setattr(cli, "_server", {})
    monkeypatch.setattr(cli, "_start_fork_server", slow_start)
    with ThreadPoolExecutor(4) as pool:
        paths = list(pool.map(lambda _: cli._fork_server(), range(4)))
    assert started == [1] and paths == ["full-socket-1"] * 4
