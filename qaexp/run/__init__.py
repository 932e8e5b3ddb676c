"""Run: one experiment from a composed config, its outcome, tracking and the Hydra job it runs in."""
