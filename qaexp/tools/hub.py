"""`qaexp hub RUN_DIR/model USER/NAME [--public]` (or `python -m qaexp.hub`): upload a saved model directory (again)."""
from __future__ import annotations

import argparse

from qaexp.errors import HubPushError, report_error
from qaexp.output.hub import TOKEN_VARIABLE, push_model_dir


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m qaexp.hub", description="Upload a saved model directory "
                                     f"to the Hugging Face Hub (token: the {TOKEN_VARIABLE} environment variable).")
    parser.add_argument("model_dir", help="a model directory written by a qaexp run (RUN_DIR/model)")
    parser.add_argument("repo_id", help="USER/NAME on the hub")
    parser.add_argument("--public", action="store_true", help="create the repository as public (default: private)")
    args = parser.parse_args(argv)
    try:
        url = push_model_dir(args.model_dir, args.repo_id, private=not args.public)
    except HubPushError as err:
        return report_error(err, "hub")
    print(url)
    return 0

