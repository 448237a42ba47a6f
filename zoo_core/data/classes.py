"""The four canonical classes and the folder-name variants that map to them.

The class order is fixed: a model's output index ``i`` always means
``CLASS_NAMES[i]``, and every run and checkpoint stores this list.
"""

from __future__ import annotations

import re

CLASS_NAMES = ("glioma", "meningioma", "notumor", "pituitary")

# Folder names seen in public copies of the Kaggle Brain Tumor MRI dataset and
# its sources, after lower-casing and dropping spaces, dashes and underscores.
_VARIANTS = {
    "glioma": ("glioma", "gliomatumor", "gl"),
    "meningioma": ("meningioma", "meningiomatumor", "me"),
    "notumor": ("notumor", "notumour", "normal", "healthy", "no", "negative"),
    "pituitary": ("pituitary", "pituitarytumor", "pituitarytumour", "pi"),
}
_LOOKUP = {variant: name for name, variants in _VARIANTS.items() for variant in variants}


def _normalize(folder_name: str) -> str:
    return re.sub(r"[\s_\-]+", "", folder_name.strip().lower())


def canonical_class(folder_name: str) -> str | None:
    """Return the canonical class for a folder name, or None when it maps to no class."""
    return _LOOKUP.get(_normalize(folder_name))


def accepted_folder_names() -> str:
    """Describe the accepted folder names for error messages."""
    parts = [f"{name} ({', '.join(sorted(set(v) - {name}))})" for name, v in _VARIANTS.items()]
    return "; ".join(parts) + " in any case, with or without '_', '-' or spaces"
