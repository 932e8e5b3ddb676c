"""On PYTHONPATH: this interpreter behaves as if the packages HIDDEN_PACKAGES names (comma-separated, e.g.
"jax,jaxlib" or "fastapi,uvicorn") were not installed: importing them, or asking importlib for them, fails.

helpers/cli.without_packages(*packages) is the environment a test gives run_cli for that."""
import os
import sys

HIDDEN = {name for name in os.environ.get("HIDDEN_PACKAGES", "").split(",") if name}


class _Hidden:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in HIDDEN:
            raise ModuleNotFoundError(f"No module named {name!r}")
        return None


sys.meta_path.insert(0, _Hidden())
