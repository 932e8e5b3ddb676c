"""On PYTHONPATH: this interpreter behaves as if jax and jaxlib were not installed (tests/training/test_backends.py)."""
import sys


class _NoJax:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("jax", "jaxlib"):
            raise ModuleNotFoundError(f"No module named {name!r}")
        return None


sys.meta_path.insert(0, _NoJax())
