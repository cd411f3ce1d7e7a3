"""Utilities with PyFlink's module names (``weir.util.exceptions``)."""
