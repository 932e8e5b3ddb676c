"""The command-line flags of the tools that use a saved model (predict, serve, export): each overrides one of the
model's own window and answer settings (model/saved.py)."""
from __future__ import annotations

import re

from qaexp.data import window_rule
from qaexp.model.saved import DEFAULTS


def add_setting_flags(parser) -> None:
    """The command-line flags that override the run's settings (shared by qaexp predict, serve and export)."""
    group = parser.add_argument_group(
        "window and answer settings (default: the model's qaexp.json, else its run's .hydra/config.yaml, else "
        f"max_length {window_rule.MAX_LENGTH}, doc_stride {window_rule.DOC_STRIDE}, max_answer_length "
        f"{window_rule.MAX_ANSWER_LENGTH}, SQuAD v1)")
    group.add_argument("--max-length", type=int,
                       help="tokens per window, at most the model's position limit (config.json)")
    group.add_argument("--doc-stride", type=int)
    group.add_argument("--max-answer-length", type=int)
    group.add_argument("--version-2", dest="version_2_with_negative", action="store_const", const=True,
                       help="allow the no-answer prediction (SQuAD v2)")
    group.add_argument("--version-1", dest="version_2_with_negative", action="store_const", const=False,
                       help="always answer (SQuAD v1)")
    group.add_argument("--null-threshold", dest="null_score_diff_threshold", type=float,
                       help="v2: predict no-answer when null score minus best span score exceeds this")
    # A threshold is often negative: Python < 3.13's argparse takes "-1e3" (unlike "-2.5") for an option and says
    # "expected one argument". Its matcher for negative numbers (private, hence the guard) learns the exponent form.
    if hasattr(parser, "_negative_number_matcher"):
        parser._negative_number_matcher = re.compile(r"^-(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$")


def setting_overrides(args) -> dict:
    return {key: getattr(args, key, None) for key in DEFAULTS}
