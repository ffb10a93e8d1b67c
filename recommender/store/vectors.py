"""Vectors read in pgvector's binary form: many vectors per request cost less than as text."""

from __future__ import annotations

import numpy as np


def binary(column: str) -> str:
    """Select `column` (a vector or halfvec) in pgvector's binary vector form, for `from_binary`:
    where many vectors are read per request, printing and parsing their floats as text costs
    more than the query."""
    return f"vector_send({column}::vector)"


def from_binary(data: memoryview | bytes | None) -> np.ndarray | None:
    """A vector from pgvector's binary form: int16 dimensions, int16 unused, big-endian float4s."""
    if data is None:
        return None
    return np.frombuffer(data, dtype=">f4", offset=4).astype(np.float32)
