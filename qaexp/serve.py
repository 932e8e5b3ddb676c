"""`python -m qaexp.serve` = `qaexp serve` (qaexp/tools/serve.py); qaexp/cli.py says why this module exists."""
from qaexp.cli import run_as_main

run_as_main(__name__, "serve")
