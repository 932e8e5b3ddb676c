"""`qaexp hub RUN_DIR/model USER/NAME [--public]` (or `python -m qaexp.hub`): upload a saved model directory (again)."""
from __future__ import annotations

from qaexp.errors import HubPushError, report_error
from qaexp.output.hub import TOKEN_VARIABLE, push_model_dir
from qaexp.tools import parser as tool_parser


def main(argv=None) -> int:
    parser = tool_parser("hub", "Upload a saved model directory to the Hugging Face Hub (token: the "
                         f"{TOKEN_VARIABLE} environment variable).", model_dir=True)
    parser.add_argument("repo_id", help="USER/NAME on the hub")
    parser.add_argument("--public", action="store_true", help="create the repository as public (default: private)")
    args = parser.parse_args(argv)
    try:
        url = push_model_dir(args.model_dir, args.repo_id, private=not args.public)
    except HubPushError as err:
        return report_error(err, "hub")
    print(url)
    return 0

