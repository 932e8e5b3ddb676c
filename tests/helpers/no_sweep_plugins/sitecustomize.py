"""On PYTHONPATH: this interpreter behaves as if no Hydra plugin were installed (none of qaexp's sweep extra:
tests/cli/test_everyday.py). Hydra finds plugins under the hydra_plugins namespace package, which this hides."""
import sys


class _NoHydraPlugins:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "hydra_plugins":
            raise ModuleNotFoundError(f"No module named {name!r}")
        return None


sys.meta_path.insert(0, _NoHydraPlugins())
