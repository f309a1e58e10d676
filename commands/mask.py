"""Placeholder: registered by its owner."""
