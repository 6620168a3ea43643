"""Carrying a queue to another table or backend: streamed, verified, swapped in."""
