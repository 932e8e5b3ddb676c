"""Model: the tokenizer and the TF question-answering model, from the hub, a local directory or scratch."""
