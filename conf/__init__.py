"""qaexp's Hydra configs. Installed, this directory is the package qaexp.conf (see pyproject.toml), read by Hydra as
the config source pkg://qaexp.conf from any working directory."""
