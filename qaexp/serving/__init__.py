"""The local inference service behind `python -m qaexp.serve`: settings, answers with spans, batching, the app."""
