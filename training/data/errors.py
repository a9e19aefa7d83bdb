"""Errors and warnings raised by the training-data code.

`DataError` always names the file or folder and what is wrong with it, so the CLI can print it as is.
"""
from __future__ import annotations


class DataError(ValueError):
    """Training data is missing, empty, unreadable or cannot be produced (e.g. FluidSynth is absent)."""


class DataWarning(UserWarning):
    """A single file was skipped (corrupt, silent, unsupported) while the rest of the data set is usable."""
