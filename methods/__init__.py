"""Unlearning methods: one file each, registered by name (see methods.base)."""
