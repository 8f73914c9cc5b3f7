"""Support for optional libraries, loaded once they are imported: keras_hub's blocks
(`keras_spectral.hub`, with their pruning rules) exist only where keras_hub does, and a
model can hold them only after keras_hub was imported."""

import importlib
import sys


def hub():
    """`keras_spectral.hub` (its rules registered) once keras_hub is imported, else None."""
    if "keras_hub" not in sys.modules:
        return None
    importlib.import_module("keras_spectral.graph.rules.hub")
    return importlib.import_module("keras_spectral.hub")
