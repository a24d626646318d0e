"""Metrics: each names its backbone and settings in its column name."""
