"""Submodular subset-selection attribution for Captum."""

__version__ = "0.1.0"
