"""The `qaexp` console script: `qaexp [overrides]` trains; `qaexp predict|evaluate|report|serve|export|analyze ...` run the other tools."""
from __future__ import annotations

import importlib
import sys

EXIT_BAD_INPUT = 2  # a bad input: config, data, paths (Hydra's own config errors exit with 1)
SUBCOMMANDS = {"predict": "qaexp.tools.predict", "evaluate": "qaexp.tools.score", "report": "qaexp.tools.report",
               "serve": "qaexp.tools.serve", "export": "qaexp.tools.export", "analyze": "qaexp.tools.analyze"}


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] in SUBCOMMANDS:
        module = importlib.import_module(SUBCOMMANDS[sys.argv.pop(1)])
        sys.exit(module.main())
    from qaexp.__main__ import entry

    entry()


def report_error(error: BaseException | str, tool: str | None = None) -> int:
    """Print the one-line error every qaexp command uses (`qaexp [tool]: error: ...`); returns its exit status, 2."""
    print(f"qaexp{' ' + tool if tool else ''}: error: {error}", file=sys.stderr)
    return EXIT_BAD_INPUT
