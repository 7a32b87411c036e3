"""Training: config, trainer, checkpoints, multi-process data parallelism."""
