"""Trainer interface, the default trainer, checkpoints and distributed helpers."""
