"""Training: the one loop (loop.fit), optimisers, schedules and weight averaging (optim),
a run from its folder to its last checkpoint (train), its TensorBoard export
(tensorboard_log) and the expected time per epoch (throughput)."""
