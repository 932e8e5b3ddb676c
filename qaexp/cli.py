"""The `qaexp` console script: `qaexp [overrides]` trains; `qaexp TOOL ...` runs the tool TOOLS names.

Every tool is the module qaexp/tools/<command>.py with a `main(argv=None) -> int`, reached through this one
dispatch, whether as `qaexp predict ...` or as `python -m qaexp.predict ...`. `python -m` needs a module of that
name, so qaexp/predict.py, evaluate.py, report.py, serve.py, export.py, analyze.py and hub.py exist only for it:
each is one call of `run_as_main` with its own name (the README documents both spellings).
"""
from __future__ import annotations

import importlib
import sys
from typing import Callable, Optional

TOOLS = ("predict", "evaluate", "report", "serve", "export", "analyze", "hub")


def tool_main(name: str) -> Callable[[Optional[list[str]]], int]:
    """The `main` of the tool `qaexp NAME` runs: qaexp/tools/NAME.py."""
    return importlib.import_module(f"qaexp.tools.{name}").main


def run_as_main(module_name: str, tool: str) -> None:
    """A `python -m qaexp.TOOL` alias module's one line: run the tool when the module is run, not when imported."""
    if module_name == "__main__":
        sys.exit(tool_main(tool)())


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] in TOOLS:
        sys.exit(tool_main(sys.argv.pop(1))())
    from qaexp.__main__ import entry  # here: a tool's start-up does not import Hydra's app and the run's modules

    entry()
