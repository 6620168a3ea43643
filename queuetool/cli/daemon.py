"""Commands filled in by a later issue."""

from __future__ import annotations

COMMANDS: list = []
