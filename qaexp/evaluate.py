"""`python -m qaexp.evaluate` = `qaexp evaluate` (qaexp/tools/evaluate.py); qaexp/cli.py says why this module exists."""
from qaexp.cli import run_as_main

run_as_main(__name__, "evaluate")
