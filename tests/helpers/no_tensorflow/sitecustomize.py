"""On PYTHONPATH: `import tensorflow` raises, as on a machine without TensorFlow, and every attempt is appended
to the file NO_TENSORFLOW_LOG names, with the stack that made it (tests/training/test_backends.py)."""
import os
import sys
import traceback


class _NoTensorFlow:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] != "tensorflow":
            return None
        log = os.environ.get("NO_TENSORFLOW_LOG")
        if log:
            with open(log, "a", encoding="utf-8") as f:
                f.write(f"import {name}\n{''.join(traceback.format_stack(limit=15))}\n")
        raise ModuleNotFoundError(f"No module named {name!r}")


sys.meta_path.insert(0, _NoTensorFlow())
