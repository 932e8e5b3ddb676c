"""Test helpers: tiny offline QA pieces and a reader of offline W&B runs."""
