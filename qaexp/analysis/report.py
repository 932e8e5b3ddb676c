"""analysis.md and its plots for one run: slices with intervals, the v2 confusion matrix, the worst questions."""
from __future__ import annotations

import os
from typing import Sequence

from qaexp.analysis import plots
from qaexp.analysis.questions import Question, overall
from qaexp.analysis.slices import SliceRow, slice_table
from qaexp.output.files import write_text_atomic

ANALYSIS_FILE = "analysis.md"
SLICES_PLOT = "analysis_slices.png"
CONFUSION_PLOT = "analysis_confusion.png"
WORST = 20
SNIPPET = 90  # context characters shown on each side of the gold answer

INTERVALS_NOTE = ("Intervals are 95% Wilson score intervals: for EM, of the proportion of questions answered exactly; "
                  "for F1, of the mean per-question F1 (conservative there: a score in [0, 1] with mean m varies "
                  "at most as much as a 0/1 score with mean m). A slice of few questions has a wide interval: read "
                  "its count before its percentage.")


def write_analysis(directory: str, questions: Sequence[Question], version_2: bool, title: str) -> list[str]:
    """analysis.md, analysis_slices.png and (v2) analysis_confusion.png in `directory`; returns their paths."""
    rows = slice_table(questions)
    written = [os.path.join(directory, SLICES_PLOT)]
    plots.plot_slices(rows, written[0], f"F1 by slice: {title}")
    confusion = confusion_matrix(questions) if version_2 else None
    if confusion is not None:
        written.append(os.path.join(directory, CONFUSION_PLOT))
        plots.plot_confusion(confusion, written[-1])
    text = render_analysis(questions, rows, confusion, title)
    path = os.path.join(directory, ANALYSIS_FILE)
    write_text_atomic(path, text)
    return [path, *written]


def render_analysis(questions: Sequence[Question], rows: Sequence[SliceRow], confusion, title: str) -> str:
    total = overall(questions)
    parts = [f"# Error analysis: {title}",
             f"{total['questions']} questions: EM {total['exact_match']:.2f}, F1 {total['f1']:.2f} "
             "(recomputed from predictions.json with the official rules).",
             INTERVALS_NOTE, slice_markdown(rows), f"![F1 by slice]({SLICES_PLOT})"]
    if confusion is not None:
        parts += [confusion_markdown(confusion), f"![answer / no-answer confusion]({CONFUSION_PLOT})"]
    parts.append(worst_markdown(questions))
    return "\n\n".join(parts) + "\n"


def slice_markdown(rows: Sequence[SliceRow]) -> str:
    sections, current = [], None
    for row in rows:
        if row.slicing != current:
            current = row.slicing
            sections.append(f"\n## By {current}\n\n| slice | questions | EM [95% interval] | F1 [95% interval] |\n"
                            "|---|---:|---|---|")
        sections.append(f"| {row.name} | {row.count} | {row.exact_match:.1f} [{row.exact_interval[0]:.1f}, "
                        f"{row.exact_interval[1]:.1f}] | {row.f1:.1f} [{row.f1_interval[0]:.1f}, "
                        f"{row.f1_interval[1]:.1f}] |")
    return "\n".join(sections).strip()


def confusion_matrix(questions: Sequence[Question]) -> dict:
    """{gold: {predicted: count}} over "answer" / "no answer"."""
    matrix = {gold: {"answer": 0, "no answer": 0} for gold in ("answer", "no answer")}
    for q in questions:
        matrix["answer" if q.has_answer else "no answer"]["answer" if q.prediction else "no answer"] += 1
    return matrix


def confusion_markdown(matrix: dict) -> str:
    lines = ["## Answer / no-answer (SQuAD v2)", "", "| gold \\ predicted | answer | no answer |", "|---|---:|---:|"]
    lines += [f"| {gold} | {cells['answer']} | {cells['no answer']} |" for gold, cells in matrix.items()]
    return "\n".join(lines)


def snippet(question: Question) -> str:
    """The context around the gold answer (bold), or its start for unanswerable questions, on one line."""
    context, start = question.context, question.answer_start
    if start is None:
        return " ".join(context[:2 * SNIPPET].split()) + ("..." if len(context) > 2 * SNIPPET else "")
    end = start + len(question.gold[0])
    lo, hi = max(0, start - SNIPPET), min(len(context), end + SNIPPET)
    text = " ".join(f"{context[lo:start]}**{context[start:end].strip()}**{context[end:hi]}".split())
    return f"{'...' if lo else ''}{text}{'...' if hi < len(context) else ''}"


def table_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ") or "*(no answer)*"


def worst_markdown(questions: Sequence[Question], count: int = WORST) -> str:
    """The lowest-F1 questions (ties: lower EM, then the order of the data)."""
    worst = sorted(enumerate(questions), key=lambda item: (item[1].f1, item[1].exact, item[0]))[:count]
    lines = [f"## The {len(worst)} worst-scoring questions", "",
             "| id | question | context | gold | predicted | F1 |", "|---|---|---|---|---|---:|"]
    for _, q in worst:
        gold = " / ".join(dict.fromkeys(q.gold)) if q.gold else ""
        lines.append(f"| {q.id} | {table_cell(q.question)} | {table_cell(snippet(q))} | {table_cell(gold)} | "
                     f"{table_cell(q.prediction)} | {100 * q.f1:.0f} |")
    return "\n".join(lines)
