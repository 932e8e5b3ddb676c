"""qaexp: configuration-driven experiments for extractive question answering."""
# Keras 3 (the `keras` package) is qaexp's Keras, on the TensorFlow backend unless KERAS_BACKEND says otherwise;
# a run's trainer.backend replaces this default before Keras is imported (qaexp/backend.py).
from qaexp.backend import set_default

set_default()

from qaexp.quiet import set_quiet_environment  # noqa: E402  (the libraries' notices off; QAEXP_VERBOSE=1 shows them)

set_quiet_environment()

__version__ = "0.1.0"
