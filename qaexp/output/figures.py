"""The PNG plots of the report and the error analysis: one way to draw a figure and one way to save it.

A figure is drawn on matplotlib's Agg canvas without pyplot (no display needed, no global list of open figures to
close) and saved through output/files' atomic write, so a plot appears whole or not at all.
"""
from __future__ import annotations

from qaexp.output.files import atomic_file, storage_errors


def new_figure(width: float, height: float):
    """An empty figure of width x height inches on an Agg canvas."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height))
    FigureCanvasAgg(figure)
    return figure


def save_png(figure, path: str, dpi: int) -> None:
    """`figure` as a PNG file at `path`, written atomically (a failed write: one StorageError naming the path)."""
    with storage_errors(path), atomic_file(path, "wb") as f:
        figure.savefig(f, format="png", dpi=dpi)
