"""Training: padded batches -> the Keras model that fit trains, with checkpoints and resuming."""
