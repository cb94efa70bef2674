"""greenfl's version: read by the package face, the engine and the report alike."""

__version__ = "0.1.0"
