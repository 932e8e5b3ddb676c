"""Command-line tools beside training: predict with a saved model, score predictions, report a sweep.

Each tools/COMMAND.py is `qaexp COMMAND` (and `python -m qaexp.COMMAND`, through qaexp/cli.py's one dispatch):
argparse, one call into the library, its output, and errors as one line (errors.report_error).
"""
from __future__ import annotations

import argparse
import importlib
import sys
from typing import Callable, Optional

TOOLS = ("predict", "evaluate", "report", "serve", "export", "analyze", "hub")
MODEL_DIR_HELP = "a model directory written by a qaexp run (RUN_DIR/model)"


def parser(command: str, doc: str, *, model_dir: bool = False) -> argparse.ArgumentParser:
    """The parser of `qaexp COMMAND`: its module docstring as the help text (line breaks kept), and the saved
    model directory as the first argument where the command reads one."""
    made = argparse.ArgumentParser(prog=f"qaexp {command}", description=doc,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    if model_dir:
        made.add_argument("model_dir", help=MODEL_DIR_HELP)
    return made


def tool_main(name: str) -> Callable[[Optional[list[str]]], int]:
    """The `main` of the tool `qaexp NAME` runs: qaexp/tools/NAME.py."""
    return importlib.import_module(f"qaexp.tools.{name}").main


def run_tool(name: str, argv: Optional[list[str]] = None) -> int:
    """Run the tool `qaexp NAME` as a command; returns its exit status. SIGINT and SIGTERM, from the import of its
    module to its last line, end it with one line and 128 + the signal (runtime/signals.py's rule); whatever it
    writes is written whole or not at all (output/files.py), so nothing it leaves looks complete when it is not."""
    from qaexp.runtime import signals

    try:
        with signals.signals_as_interrupts():
            return tool_main(name)(argv)
    except KeyboardInterrupt as err:
        return signals.report_interrupted(err, f"qaexp {name}", signals.TOOL_DETAIL)


def run_named_tool(argv: list[str]) -> None:
    """`qaexp TOOL ...` and `python -m qaexp TOOL ...`: when argv[1] names a tool, run it and exit with its status
    (argv loses the tool's name, so the tool's usage reads `qaexp TOOL`); otherwise return (a training run)."""
    if len(argv) > 1 and argv[1] in TOOLS:
        sys.exit(run_tool(argv.pop(1)))
