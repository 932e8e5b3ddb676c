"""qaexp: configuration-driven experiments for extractive question answering."""
# First of all: in a qaexp command (`qaexp ...`, `python -m qaexp ...`), SIGINT and SIGTERM end it with one line
# from here on (qaexp/runtime/signals.py); imported by anything else, this leaves the handlers alone.
from qaexp.runtime.signals import end_this_command_on_signals
from qaexp.tools import TOOLS

end_this_command_on_signals(TOOLS)

# Keras 3 (the `keras` package) is qaexp's Keras, on the TensorFlow backend unless KERAS_BACKEND says otherwise;
# a run's trainer.backend replaces this default before Keras is imported (qaexp/backend.py).
from qaexp.backend import set_default  # noqa: E402

set_default()

from qaexp.quiet import set_quiet_environment  # noqa: E402  (the libraries' notices off; QAEXP_VERBOSE=1 shows them)

set_quiet_environment()

__version__ = "0.1.0"
