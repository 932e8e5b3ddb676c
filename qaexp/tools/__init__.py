"""Command-line tools beside training: predict with a saved model, score predictions, report a sweep."""
