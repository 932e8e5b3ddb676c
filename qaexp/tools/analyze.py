"""Error analysis of a run, or a comparison of two runs on the same questions.

    python -m qaexp.analyze RUN_DIR [--output DIR]
    python -m qaexp.analyze --compare RUN_A RUN_B [--output DIR] [--samples N] [--seed S]

One run: analysis.md (EM/F1 by question word, answer type, answer length, context length in tokens and answer
position relative to the windows, with 95% intervals; the v2 answer/no-answer confusion matrix; the 20
worst-scoring questions) and PNG plots, in RUN_DIR unless --output says otherwise. Two runs: compare.md (per-slice
differences, the questions only one run gets right, the paired bootstrap of the F1 difference) and a plot,
in --output (default: RUN_B/compare_with_<name of RUN_A>).
"""
from __future__ import annotations

import os
import sys

from qaexp import tools
from qaexp.errors import QAExpError, report_error
from qaexp.output.files import storage_errors


def parse_args(argv):
    parser = tools.parser("analyze", __doc__)
    parser.add_argument("run_dir", nargs="?", help="the run directory to analyse")
    parser.add_argument("--compare", nargs=2, metavar=("RUN_A", "RUN_B"), help="compare two runs instead")
    parser.add_argument("--output", help="the directory to write into")
    parser.add_argument("--samples", type=int, default=1000, help="paired bootstrap resamples (default 1000)")
    parser.add_argument("--seed", type=int, default=0, help="the bootstrap's random seed (default 0)")
    args = parser.parse_args(argv)
    if (args.run_dir is None) == (args.compare is None):
        parser.error("give one RUN_DIR, or --compare RUN_A RUN_B")
    if args.samples < 1:
        parser.error("--samples must be >= 1")
    return args


def analyze(run_dir: str, output: str | None) -> list[str]:
    from qaexp.analysis.report import write_analysis
    from qaexp.analysis.run import load_run_questions

    loaded = load_run_questions(run_dir)
    directory = output or run_dir
    with storage_errors(directory):  # a read-only --output: one line with the fix, not the OSError's text
        os.makedirs(directory, exist_ok=True)
    return write_analysis(directory, loaded.questions, loaded.version_2, os.path.basename(os.path.normpath(run_dir)))


def compare_runs(run_a: str, run_b: str, output: str | None, samples: int, seed: int) -> tuple[list[str], object]:
    from qaexp.analysis.compare import compare, write_comparison
    from qaexp.analysis.run import load_run_questions

    a, b = load_run_questions(run_a), load_run_questions(run_b)
    comparison = compare(a.questions, b.questions, samples, seed)
    directory = output or os.path.join(run_b, f"compare_with_{os.path.basename(os.path.normpath(run_a))}")
    return write_comparison(directory, comparison, run_a, run_b), comparison


def main(argv=None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        if args.compare:
            written, comparison = compare_runs(*args.compare, args.output, args.samples, args.seed)
            boot = comparison.bootstrap
            print(f"F1 B - A {boot.difference:+.2f} [95% {boot.low:+.2f}, {boot.high:+.2f}], B beats A in "
                  f"{100 * boot.b_wins:.1f}% of {boot.samples} resamples ({boot.questions} questions)")
        else:
            written = analyze(args.run_dir, args.output)
    except (QAExpError, OSError) as err:
        return report_error(err, "analyze")
    print("wrote " + ", ".join(written))
    return 0

