"""Run: one experiment from a composed config (the recipe and its steps), its outcome, tracking, and the Hydra
job and sweep it runs in. The process plumbing under it is runtime/."""
