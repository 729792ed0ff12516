"""Statistics and weight learning shared by PL/Python and the sidecar."""
from __future__ import annotations

__all__: list[str] = ["plpy_adapter", "weights"]
