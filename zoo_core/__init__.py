"""brain-zoo core: train, evaluate, compare and publish brain-tumour MRI classifiers."""

__version__ = "0.1.0"
