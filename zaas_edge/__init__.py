"""zaas-edge: the building gateway of the park's energy and facility platform."""

__version__ = "0.1.0"

__all__ = ["__version__"]
