"""Runtime: the process a run lives in (threads, seeds, precision, distribution strategy, malloc, the CPU's
bfloat16 support, stage timings, multi-worker roles, Slurm's preemption signal, whether a service answers). Knows
nothing of the experiment: run/ uses it, never the other way round."""
