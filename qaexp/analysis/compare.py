"""Two runs scored on the same questions: per-slice differences, the questions only one of them gets right, and
the paired bootstrap of the F1 difference (B - A)."""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Sequence

from qaexp.analysis import plots
from qaexp.analysis.bootstrap import BootstrapResult, paired_bootstrap
from qaexp.analysis.questions import Question, overall
from qaexp.analysis.report import snippet, table_cell
from qaexp.analysis.slices import SLICINGS, groups, slice_row
from qaexp.errors import InputError
from qaexp.output.files import storage_errors, write_text_atomic

COMPARE_FILE = "compare.md"
COMPARE_PLOT = "compare_slices.png"
LISTED = 20  # questions listed per direction


@dataclass
class Comparison:
    a: list[Question]  # aligned: a[i] and b[i] are the same question
    b: list[Question]
    bootstrap: BootstrapResult
    slices: list[tuple[str, str, int, float, float]]  # slicing, slice, count, F1 of A, F1 of B
    only_a: list[int]  # indices of questions A gets exactly right and B does not
    only_b: list[int]


def align(a: Sequence[Question], b: Sequence[Question]) -> tuple[list[Question], list[Question]]:
    """The questions both runs answered, in A's order; an error when they share none or their golds differ."""
    by_id = {q.id: q for q in b}
    shared = [q for q in a if q.id in by_id]
    if not shared:
        raise InputError("the two runs share no evaluation question: compare runs evaluated on the same data")
    differing = [q.id for q in shared if q.gold != by_id[q.id].gold]
    if differing:
        raise InputError(f"{len(differing)} shared question ids have different gold answers (e.g. {differing[0]!r}): "
                         "the runs were evaluated on different data")
    return shared, [by_id[q.id] for q in shared]


def compare(a: Sequence[Question], b: Sequence[Question], samples: int, seed: int) -> Comparison:
    a, b = align(a, b)
    result = paired_bootstrap([q.f1 for q in a], [q.f1 for q in b], samples=samples, seed=seed)
    b_of = {q.id: q for q in b}
    rows = []
    for slicing in SLICINGS:
        for name, members in groups(a, slicing).items():
            row_a = slice_row(slicing.title, name, members)
            row_b = slice_row(slicing.title, name, [b_of[q.id] for q in members])
            rows.append((slicing.title, name, row_a.count, row_a.f1, row_b.f1))
    only_a = [i for i in range(len(a)) if a[i].exact and not b[i].exact]
    only_b = [i for i in range(len(a)) if b[i].exact and not a[i].exact]
    return Comparison(a, b, result, rows, only_a, only_b)


def write_comparison(directory: str, comparison: Comparison, name_a: str, name_b: str) -> list[str]:
    with storage_errors(directory):
        os.makedirs(directory, exist_ok=True)
    plot = os.path.join(directory, COMPARE_PLOT)
    plots.plot_differences([(s, n, c, fb - fa) for s, n, c, fa, fb in comparison.slices], plot,
                           "F1 per slice: B minus A")
    path = os.path.join(directory, COMPARE_FILE)
    write_text_atomic(path, render_comparison(comparison, name_a, name_b))
    return [path, plot]


def render_comparison(c: Comparison, name_a: str, name_b: str) -> str:
    total_a, total_b, boot = overall(c.a), overall(c.b), c.bootstrap
    parts = [
        "# Comparison of two runs", f"- A: `{name_a}`\n- B: `{name_b}`",
        f"On the {len(c.a)} questions both answered: A EM {total_a['exact_match']:.2f} F1 {total_a['f1']:.2f}; "
        f"B EM {total_b['exact_match']:.2f} F1 {total_b['f1']:.2f}.",
        f"**F1 difference B - A: {boot.difference:+.2f}, 95% interval [{boot.low:+.2f}, {boot.high:+.2f}]; B beats A "
        f"in {100 * boot.b_wins:.1f}% of {boot.samples} paired bootstrap resamples** (questions drawn with "
        f"replacement, the same draw for both runs; seed {boot.seed}). An interval that contains 0 means the "
        "difference may be chance.",
        _slice_differences(c), f"![F1 per slice, B minus A]({COMPARE_PLOT})",
        _listing(c, c.only_a, "A gets right and B does not"), _listing(c, c.only_b, "B gets right and A does not")]
    return "\n\n".join(parts) + "\n"


def _slice_differences(c: Comparison) -> str:
    lines = ["## Per slice", "", "| slicing | slice | questions | F1 A | F1 B | B - A |", "|---|---|---:|---:|---:|---:|"]
    lines += [f"| {s} | {n} | {count} | {fa:.1f} | {fb:.1f} | {fb - fa:+.1f} |" for s, n, count, fa, fb in c.slices]
    return "\n".join(lines)


def _listing(c: Comparison, indices: list[int], what: str) -> str:
    lines = [f"## {len(indices)} questions {what} (exact match)", ""]
    if not indices:
        return lines[0]
    lines += ["| id | question | context | gold | A | B |", "|---|---|---|---|---|---|"]
    for i in indices[:LISTED]:
        qa, qb = c.a[i], c.b[i]
        gold = " / ".join(dict.fromkeys(qa.gold)) if qa.gold else ""
        lines.append(f"| {qa.id} | {table_cell(qa.question)} | {table_cell(snippet(qa))} | {table_cell(gold)} | "
                     f"{table_cell(qa.prediction)} | {table_cell(qb.prediction)} |")
    if len(indices) > LISTED:
        lines.append(f"\n(the first {LISTED} of {len(indices)})")
    return "\n".join(lines)
