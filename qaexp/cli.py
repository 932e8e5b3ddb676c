"""The `qaexp` console script (and `python -m qaexp`): `qaexp [overrides]` trains; `qaexp TOOL ...` runs the tool
qaexp.tools.TOOLS names.

Every tool is the module qaexp/tools/<command>.py with a `main(argv=None) -> int`, reached through this one
dispatch, whether as `qaexp predict ...` or as `python -m qaexp.predict ...`. `python -m` needs a module of that
name, so qaexp/predict.py, evaluate.py, report.py, serve.py, export.py, analyze.py and hub.py exist only for it:
each is one call of `run_as_main` with its own name (the README documents both spellings).
"""
from __future__ import annotations

import sys

from qaexp.tools import run_named_tool, run_tool


def run_as_main(module_name: str, tool: str) -> None:
    """A `python -m qaexp.TOOL` alias module's one line: run the tool when the module is run, not when imported."""
    if module_name == "__main__":
        sys.exit(run_tool(tool))


def main() -> None:
    run_named_tool(sys.argv)
    from qaexp.__main__ import entry  # here: a tool's start-up does not import Hydra's app and the run's modules

    entry()
