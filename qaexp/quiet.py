"""Quiet by default: the libraries' start-up notices are hidden, qaexp's own progress and warnings are not.

Hidden unless QAEXP_VERBOSE=1: TensorFlow's C++ log below FATAL (TF_CPP_MIN_LOG_LEVEL=3: cuInit, oneDNN,
instruction-set and CUDA notices), the notices its libraries print while loading (before TF_CPP_MIN_LOG_LEVEL
applies), absl's INFO lines (`Sharding callback duration`), matplotlib's first-run font cache notice, and transformers', datasets' and huggingface_hub's
warnings below ERROR ("TensorFlow and JAX classes are deprecated", "All model checkpoint layers were used",
retry warnings). A variable the user sets (TF_CPP_MIN_LOG_LEVEL=2, TRANSFORMERS_VERBOSITY=info, ...) wins.
"""
from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
import tempfile

VERBOSE_ENV = "QAEXP_VERBOSE"
QUIET_DEFAULTS = {
    "TF_CPP_MIN_LOG_LEVEL": "3",
    "TRANSFORMERS_VERBOSITY": "error",
    "DATASETS_VERBOSITY": "error",
    "HF_HUB_VERBOSITY": "error",
}
# What TensorFlow's shared libraries print while they load, before TF_CPP_MIN_LOG_LEVEL is read (all INFO-level).
LOAD_NOTICES = re.compile(r"absl::InitializeLog|oneDNN custom operations|Could not find cuda drivers|cuInit|"
                          r"optimized to use available CPU instructions|rebuild TensorFlow with the appropriate|"
                          r"Unable to register cu(DNN|FFT|BLAS) factory|TF-TRT Warning|computation placer|"
                          r"Created TensorFlow Lite XNNPACK delegate")  # (TF Lite's, on an interpreter's first run)


def verbose() -> bool:
    return os.environ.get(VERBOSE_ENV, "").strip().lower() in {"1", "true", "yes", "on"}


def set_quiet_environment() -> None:
    """The defaults above, before any of the libraries is imported (qaexp/__init__.py calls this)."""
    if verbose():
        return
    for name, value in QUIET_DEFAULTS.items():
        os.environ.setdefault(name, value)


def quiet_python_loggers() -> None:
    """absl's INFO lines off (Hydra's logging set-up would print them); call once logging is configured."""
    if not verbose():
        logging.getLogger("absl").setLevel(logging.WARNING)
        # JAX's INFO line for every platform it probes and does not find ("Unable to initialize backend 'tpu'")
        logging.getLogger("jax._src.xla_bridge").setLevel(logging.WARNING)
        # matplotlib's "generated new fontManager" on a user's first run (the analysis plots build its font cache)
        logging.getLogger("matplotlib.font_manager").setLevel(logging.WARNING)


def import_tensorflow():
    """`import tensorflow`, with the notices its libraries print while loading dropped (see the module)."""
    if "tensorflow" in sys.modules:
        import tensorflow
        return tensorflow
    with _jax_hidden():
        if verbose() or _tf_info_shown():
            import tensorflow
        else:
            with _stderr_filtered(LOAD_NOTICES):
                import tensorflow
    return tensorflow


class _jax_hidden:
    """JAX out of sight while TensorFlow loads, then back.

    TensorFlow's TFLite module imports jax whenever it is installed (for `experimental_from_jax`, which qaexp
    never calls), and the dev extra installs it: that import took 0.5-0.9 of the 4.3-4.9 CPU s of `import keras`
    on the TensorFlow backend (2-core VM, 2026-12-06). A None entry in sys.modules makes that one import fail as
    if jax were absent, which TFLite expects; the entry is removed afterwards, so a later `import jax` works."""

    def __enter__(self):
        self.hidden = "jax" not in sys.modules
        if self.hidden:
            sys.modules["jax"] = None
        return self

    def __exit__(self, *exc):
        if self.hidden and sys.modules.get("jax", 0) is None:
            del sys.modules["jax"]
        return False


def notices_hidden():
    """For a block that makes TensorFlow's libraries print their INFO notices (LOAD_NOTICES) straight to file
    descriptor 2, where TF_CPP_MIN_LOG_LEVEL does not reach (TF Lite's XNNPACK line): those lines dropped, unless
    QAEXP_VERBOSE=1 or TF_CPP_MIN_LOG_LEVEL=0 asks for them."""
    if verbose() or _tf_info_shown():
        return contextlib.nullcontext()
    return _stderr_filtered(LOAD_NOTICES)


def _tf_info_shown() -> bool:
    return os.environ.get("TF_CPP_MIN_LOG_LEVEL", "0").strip() in {"", "0"}


class _stderr_filtered:
    """Sends file descriptor 2 to a temporary file for the block, then writes back the lines not matching."""

    def __init__(self, pattern: re.Pattern):
        self.pattern = pattern

    def __enter__(self):
        sys.stderr.flush()
        self.captured = tempfile.TemporaryFile(mode="w+b")
        self.saved_fd = os.dup(2)
        os.dup2(self.captured.fileno(), 2)
        return self

    def __exit__(self, kind, err, tb):
        sys.stderr.flush()
        os.dup2(self.saved_fd, 2)
        os.close(self.saved_fd)
        self.captured.seek(0)
        lines = self.captured.read().decode(errors="replace").splitlines(keepends=True)
        self.captured.close()
        # An import that failed keeps every line (they may say why); one a signal stopped drops the notices too.
        failed = err is not None and isinstance(err, Exception)
        kept = lines if failed else [line for line in lines if not self.pattern.search(line)]
        sys.stderr.write("".join(kept))
        sys.stderr.flush()
        return False


# TensorFlow's warnings about the values a failed checkpoint restore left unrestored (logged when the garbage
# collector deletes the objects: during the run or at exit, after qaexp's one line for the failure).
UNRESTORED_VALUES = ("Detecting that an object or model or tf.train.Checkpoint is being deleted with unrestored values",
                     "Value in checkpoint could not be found in the restored object", "A checkpoint was restored (e.g.")


class _UnrestoredValues(logging.Filter):
    def filter(self, record):
        return not str(record.msg).startswith(UNRESTORED_VALUES)


def drop_unrestored_value_warnings() -> None:
    """UNRESTORED_VALUES off for the rest of this process (called once a restore has failed and been reported)."""
    tf_logger = logging.getLogger("tensorflow")
    if not any(isinstance(f, _UnrestoredValues) for f in tf_logger.filters):
        tf_logger.addFilter(_UnrestoredValues())
