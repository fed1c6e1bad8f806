"""Example filesystems; each runs as ``python -m fuseshim.examples.NAME``."""
