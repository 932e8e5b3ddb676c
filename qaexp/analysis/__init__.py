"""Error analysis of a run and comparison of two runs: per-question features, slices, bootstrap, plots."""
