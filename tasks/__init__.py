"""Tasks: what to forget, what to keep, and how to judge it (one file per task family)."""
