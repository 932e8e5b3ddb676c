"""The analysis' PNG plots (drawn and saved atomically as output/figures draws and saves every plot)."""
from __future__ import annotations

from typing import Sequence

from qaexp.analysis.slices import SliceRow
from qaexp.output.figures import new_figure, save_png

DPI = 110


def _by_slicing(rows: Sequence[SliceRow]) -> dict[str, list[SliceRow]]:
    grouped: dict[str, list[SliceRow]] = {}
    for row in rows:
        grouped.setdefault(row.slicing, []).append(row)
    return grouped


def plot_slices(rows: Sequence[SliceRow], path: str, title: str) -> None:
    """One panel per slicing: F1 per slice with its 95% interval, each bar labelled with its question count."""
    grouped = _by_slicing(rows)
    fig = new_figure(7.5, 1.2 + sum(0.38 * len(r) + 0.6 for r in grouped.values()))
    axes = fig.subplots(len(grouped), 1, gridspec_kw={"height_ratios": [len(r) + 1 for r in grouped.values()]},
                        squeeze=False)
    for ax, (slicing, members) in zip(axes[:, 0], grouped.items()):
        labels = [f"{row.name} (n={row.count})" for row in members]
        values = [row.f1 for row in members]
        # max(0, ...): rounding can put an interval's end a hair past its mean
        errors = [[max(0.0, row.f1 - row.f1_interval[0]) for row in members],
                  [max(0.0, row.f1_interval[1] - row.f1) for row in members]]
        ax.barh(range(len(members)), values, xerr=errors, color="#4c72b0", ecolor="#333333", capsize=3)
        ax.set_yticks(range(len(members)), labels, fontsize=8)
        ax.invert_yaxis()
        ax.set_xlim(0, 100)
        ax.set_title(slicing, fontsize=9, loc="left")
        ax.grid(axis="x", alpha=0.3)
    axes[-1, 0].set_xlabel("F1 (bars: 95% interval)")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    save_png(fig, path, DPI)


def plot_confusion(matrix: dict, path: str) -> None:
    """SQuAD v2: gold has an answer / not against predicted an answer / not."""
    cells = [[matrix["answer"]["answer"], matrix["answer"]["no answer"]],
             [matrix["no answer"]["answer"], matrix["no answer"]["no answer"]]]
    fig = new_figure(4.2, 3.6)
    ax = fig.subplots()
    ax.imshow(cells, cmap="Blues")
    for i in range(2):
        for j in range(2):
            ax.text(j, i, str(cells[i][j]), ha="center", va="center", fontsize=12)
    ax.set_xticks([0, 1], ["answer", "no answer"])
    ax.set_yticks([0, 1], ["answer", "no answer"])
    ax.set_xlabel("predicted")
    ax.set_ylabel("gold")
    ax.set_title("answer / no-answer confusion", fontsize=10)
    fig.tight_layout()
    save_png(fig, path, DPI)


def plot_differences(rows: Sequence[tuple[str, str, int, float]], path: str, title: str) -> None:
    """Per slice: F1 of B minus F1 of A (rows of slicing, slice, count, difference)."""
    labels = [f"{slicing}: {name} (n={count})" for slicing, name, count, _ in rows]
    values = [difference for *_, difference in rows]
    fig = new_figure(7.5, 1.0 + 0.28 * len(rows))
    ax = fig.subplots()
    ax.barh(range(len(rows)), values, color=["#55a868" if v >= 0 else "#c44e52" for v in values])
    ax.axvline(0, color="#333333", linewidth=0.8)
    ax.set_yticks(range(len(rows)), labels, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("F1 of B minus F1 of A")
    ax.set_title(title, fontsize=10)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    save_png(fig, path, DPI)
