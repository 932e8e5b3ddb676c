"""SIGINT (Ctrl-C) and SIGTERM: every qaexp command stops in an orderly way, from its first line to its last.

The one rule: the signal ends the command with one line, `COMMAND: interrupted by SIGINT...`, exit status 128 +
the signal number (130, 143), no traceback. Two phases:

- from the first line of qaexp/__init__.py until the command's own handling starts (the seconds of importing
  Hydra and the run's or the tool's modules), `end_this_command_on_signals`: the handler prints the line and raises
  SystemExit, which unwinds through every `finally` (restored file descriptors, removed temporary files)
  without a traceback. Installed whatever the inherited handler was: a command started with SIGINT ignored (a
  background job of a shell without job control) used to ignore it until the run took over, then obey it.
  Only the interpreter's own start-up (tens of milliseconds) comes before.
- while a run or a tool works, `signals_as_interrupts`: the signal raises RunInterrupted (a KeyboardInterrupt),
  so that the run can record metrics.json and save a checkpoint before the command prints its line.
"""
from __future__ import annotations

import os
import signal
import sys
from contextlib import contextmanager  # (site imported contextlib already)
from qaexp.errors import RunInterrupted

TYPE_CHECKING = False  # typing's, without importing typing or threading before the handler: milliseconds sooner
if TYPE_CHECKING:
    from typing import Callable, Iterator, Optional

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
BEFORE_THE_RUN = " before the run started"
TOOL_DETAIL = " before it finished: run it again (files it writes appear whole or not at all)"


def interrupted_line(signum: int, command: str = "qaexp", detail: str = "") -> str:
    return f"{command}: interrupted by {signal.Signals(signum).name}{detail}"


def report_interrupted(err: BaseException, command: str = "qaexp", detail: str = "") -> int:
    """Print the one line for the interrupt `err` (RunInterrupted, or Python's own KeyboardInterrupt for SIGINT);
    returns the exit status, 128 + the signal number."""
    signum = getattr(err, "signum", signal.SIGINT)
    print(interrupted_line(signum, command, detail), file=sys.stderr, flush=True)
    return 128 + signum


# Signals that arrived inside `interrupts_deferred` blocks, raised when the outermost one ends. A list, not a flag:
# one block may nest in another (a checkpoint saved while the run's outcome is recorded).
_deferring: list[int] = []
_deferred: list[int] = []


def interrupt(signum: int) -> None:
    """What an interrupt signal's handler does: raise RunInterrupted now, or at the end of the
    `interrupts_deferred` block the main thread is in."""
    if _deferring:
        _deferred.append(signum)
        return
    raise RunInterrupted(signum)


@contextmanager
def interrupts_deferred() -> Iterator[None]:
    """For a block that must not stop half-way: a checkpoint being written. An exception raised from a signal
    handler inside TensorFlow's saving code leaves its device scopes half-entered, and the next save (the one
    the interrupted run makes) fails with "Exiting device scope without proper scope nesting": the run would end
    `failed`, not `interrupted` with its checkpoint. The first signal that arrives meanwhile interrupts right
    after the block instead (seconds at most); a block that fails ends the run with its own error."""
    _deferring.append(1)
    pending = None
    try:
        yield
    finally:
        _deferring.pop()
        if not _deferring:
            pending = _deferred[0] if _deferred else None
            _deferred.clear()
    if pending is not None:
        raise RunInterrupted(pending)


def _interrupt(signum, frame):
    interrupt(signum)


@contextmanager
def _handling(handler: Callable) -> Iterator[None]:
    import threading

    if threading.current_thread() is not threading.main_thread():  # only the main thread may set handlers
        yield
        return
    previous = {signum: signal.signal(signum, handler) for signum in STOP_SIGNALS}
    try:
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)


def signals_as_interrupts():
    """For the block: SIGINT and SIGTERM raise RunInterrupted (the previous handlers come back afterwards)."""
    return _handling(_interrupt)


def _ending_at_once(command: str, detail: str) -> Callable:
    """A handler that prints the command's line and ends it (SystemExit, 128 + the signal)."""

    def end(signum, frame):
        raise SystemExit(report_interrupted(RunInterrupted(signum), command, detail))

    return end


def this_command(argv: list[str], orig_argv: list[str], tools: tuple[str, ...]) -> Optional[tuple[str, str]]:
    """(the name its line starts with, what the line adds) when this process is a qaexp command: the `qaexp`
    console script, `python -m qaexp [TOOL]`, `python -m qaexp.TOOL`; None for anything else that imports qaexp
    (a script, a notebook, the tests, a submitit job). `argv` is sys.argv while qaexp/__init__.py runs: "-m" then,
    under `python -m` (the module is found in `orig_argv`, the interpreter's own command line)."""
    if argv[:1] == ["-m"] and "-m" in orig_argv:
        at = orig_argv.index("-m")
        module, rest = (orig_argv[at + 1:at + 2] or [""])[0], orig_argv[at + 2:]
    elif argv and os.path.basename(argv[0]) == "qaexp":
        module, rest = "qaexp", argv[1:]
    else:
        return None
    tool = module[len("qaexp."):] if module.startswith("qaexp.") else (rest[0] if module == "qaexp" and rest else "")
    if tool in tools:
        return f"qaexp {tool}", TOOL_DETAIL
    return ("qaexp", BEFORE_THE_RUN) if module == "qaexp" else None


def end_this_command_on_signals(tools: tuple[str, ...]) -> None:
    """Called first by qaexp/__init__.py: when this process is a qaexp command, SIGINT and SIGTERM end it with its
    line from here until the command's own handling takes over (that phase is the process's whole life, so the
    handlers are not restored)."""
    command = this_command(sys.argv, getattr(sys, "orig_argv", []), tools)
    if command is not None:  # (a command's module-level code runs in the main thread)
        for signum in STOP_SIGNALS:
            signal.signal(signum, _ending_at_once(*command))
