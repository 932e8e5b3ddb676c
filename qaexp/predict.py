"""`python -m qaexp.predict` = `qaexp predict` (qaexp/tools/predict.py); qaexp/cli.py says why this module exists."""
from qaexp.cli import run_as_main

run_as_main(__name__, "predict")
