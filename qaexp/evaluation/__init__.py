"""Evaluation: logits over windows -> answer texts -> SQuAD exact match and F1."""
