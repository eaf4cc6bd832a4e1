"""The package version (one place: the package and its plugins read it here)."""
__version__ = "0.1.0"
