"""Datasets, image loading, splits, the bundled sample and the phantom generator."""
