"""Data: SQuAD-shaped records (files, hub, synthetic) -> tokenised windows, cached on disk -> padded batches."""
