"""What the tests import (conftest.py imports from here too, never the other way): the CLI runner (cli), Hydra
composition (config), the repository's paths (repo), the session-wide runs (shared_runs, state_runs), the hub-cache
plugin and builders (hub_cache, hub_dataset_cache), tiny offline QA pieces and a reader of offline W&B runs."""
