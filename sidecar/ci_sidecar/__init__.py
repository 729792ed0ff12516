"""Conversion Intelligence sidecar: data generator, demo and agent context."""
from __future__ import annotations

__all__: list[str] = []
