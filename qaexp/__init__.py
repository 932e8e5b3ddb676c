"""qaexp: configuration-driven experiments for extractive question answering."""
import os

# transformers' TF models need Keras 2; this must happen before TensorFlow is imported.
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

from qaexp.quiet import set_quiet_environment  # noqa: E402  (the libraries' notices off; QAEXP_VERBOSE=1 shows them)

set_quiet_environment()

__version__ = "0.1.0"
