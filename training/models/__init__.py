"""Forecasters of per-horizon bucket distributions: one architecture per file, one interface (base.py)."""
