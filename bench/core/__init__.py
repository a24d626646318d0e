"""The kernel: what methods, metrics and tasks build on (errors, registries, data and run
context, model adapters, shared training loops). Imports nothing else of the project."""
