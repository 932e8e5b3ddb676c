"""The `qaexp` console script: `qaexp [overrides]` trains; `qaexp predict|evaluate|report ...` run the other tools."""
import importlib
import sys

SUBCOMMANDS = {"predict": "qaexp.tools.predict", "evaluate": "qaexp.tools.score", "report": "qaexp.tools.report"}


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] in SUBCOMMANDS:
        module = importlib.import_module(SUBCOMMANDS[sys.argv.pop(1)])
        sys.exit(module.main())
    from qaexp.__main__ import entry

    entry()
